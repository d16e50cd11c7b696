"""The credit model in production (issue 15): every application is also scored by the challenger
in shadow, the weekly job measures drift against the training baseline, and operators read it
all at `GET /v1/ops/model`."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.loans import applications
from chalicelib.loans.models import ApplicationRecord
from chalicelib.risk import drift, scorer
from chalicelib.risk.models import ModelMonitorRecord
from infra.lambda_events import scheduled_event
from tests.routes.conftest import verified_people

SUNDAY = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)        # 10:00 in Shanghai
WEEKLY_RUN = datetime(2027, 1, 10, 18, 0, tzinfo=timezone.utc)   # Monday 02:00 in Shanghai


@pytest.fixture()
def ops(client, aws_stack, monkeypatch):
    verified_people(monkeypatch)
    monkeypatch.delenv("RISK_MODEL_DIR", raising=False)
    scorer.reset()
    key = json.loads(aws_stack["secrets"]["ops"])["key"]

    def get(path):
        response = client.http.get(path, headers={"X-Ops-Key": key})
        return response.status_code, json.loads(response.body)

    yield get
    scorer.reset()


def applicant(rng: random.Random, shifted: bool = False) -> dict:
    income = rng.choice([600_000, 900_000, 1_500_000, 3_000_000])
    return {"monthly_income": income * (4 if shifted else 1),
            "monthly_expenses": rng.choice([100_000, 300_000, 500_000]),
            "assets": rng.choice([0, 5_000_000, 50_000_000]) * (20 if shifted else 1),
            "debt": rng.choice([0, 0, 1_000_000]),
            "job_type": rng.choice(["fixed", "freelance", "partime"]),
            "job_seniority_years": rng.choice([0, 2, 6, 15]), "home": rng.choice(["owner", "rent"])}


def apply_many(n: int, first_day: datetime, days: int, shifted: bool = False) -> list[dict]:
    rng = random.Random(15)
    out = []
    for i in range(n):
        at = first_day + timedelta(days=i % days, minutes=i)
        out.append(applications.apply(f"u-{shifted}-{i}", product_id="revolving-credit",
                                      amount=rng.choice([200_000, 1_000_000, 3_000_000]),
                                      term_months=12, purpose="家装", applicant=applicant(rng, shifted),
                                      now=at, lang="en"))
    return out


def stored(application_id: str) -> dict:
    return json.loads(ApplicationRecord.get(application_id).decision)


def test_every_decision_stores_the_challengers_shadow_score_and_it_never_decides(ops):
    answers = apply_many(12, SUNDAY - timedelta(days=2), 2)
    challenger = scorer.challenger_info()
    for answer in answers:
        decision = stored(answer["application_id"])
        shadow = decision["challenger"]
        assert shadow["model_version"] == challenger["model_version"]
        assert 0 < shadow["probability"] < 1 and shadow["grade"] in "ABCDE"
        assert answer["status"] == decision["status"]                # the champion decided
        assert answer["model_version"] == scorer.model_info()["model_version"]
        assert shadow["agrees"] == (shadow["action"] == {"A": "approved", "B": "approved",
                                                         "C": "approved", "D": "review",
                                                         "E": "declined"}[decision["grade"]])


def test_before_the_first_weekly_run_the_view_shows_the_model_and_no_figures(ops):
    status, body = ops("/v1/ops/model")
    assert status == 200
    assert body["model_version"] == scorer.model_info()["model_version"]
    assert body["sha256"] == scorer.model_info()["model_sha256"]
    assert body["drift"]["psi"] is None and body["drift"]["window"] is None
    assert "development split" in body["drift"]["baseline"]
    assert body["approval_rate"] is None
    assert body["challenger"] == {"model_version": scorer.challenger_info()["model_version"],
                                  "agreement": None}


def test_the_weekly_job_measures_the_last_seven_days_and_the_view_shows_it(ops, client, last_metrics):
    # Given a week of applications (Monday 4 to Sunday 10 January, Shanghai), and some outside it
    week = apply_many(70, datetime(2027, 1, 3, 17, 0, tzinfo=timezone.utc), 7)   # Jan 4, 01:00 Shanghai on
    before = apply_many(5, datetime(2027, 1, 2, 2, 0, tzinfo=timezone.utc), 1)
    after = apply_many(5, datetime(2027, 1, 11, 2, 0, tzinfo=timezone.utc), 1)
    assert before and after
    # When the weekly schedule fires on Monday 11 January at 02:00 Shanghai
    result = client.lambda_.invoke("model_monitor", scheduled_event(WEEKLY_RUN, "model_monitor")).payload
    # Then it measured exactly that week
    status, body = ops("/v1/ops/model")
    assert status == 200 and body["drift"]["window"] == "2027-01-04/2027-01-10"
    approved = sum(a["status"] == "approved" for a in week)
    assert body["approval_rate"] == pytest.approx(round(approved / len(week), 4))
    decisions = [stored(a["application_id"]) for a in week]
    compared = [d["challenger"] for d in decisions if d["challenger"]["reached_model"]]
    assert compared and body["challenger"]["agreement"] == pytest.approx(
        round(sum(c["agrees"] for c in compared) / len(compared), 4))
    # and the PSI is the one of these scores against the card's baseline
    card = scorer.current_card()
    expected = drift.baseline_psi(card["monitoring"]["score"], [d["probability"] for d in decisions])
    assert body["drift"]["psi"] == pytest.approx(round(expected, 4))
    assert set(body["drift"]["inputs"]) == set(card["monitoring"]["inputs"])
    assert last_metrics["ModelScorePSI"] == body["drift"]["psi"]
    assert last_metrics["ModelDriftPSI"] == max(body["drift"]["psi"], *body["drift"]["inputs"].values())
    assert result["scored"] == len(week)
    # A rerun of the same week rewrites its one record
    client.lambda_.invoke("model_monitor", scheduled_event(WEEKLY_RUN, "model_monitor"))
    records = list(ModelMonitorRecord.query(body["sha256"]))
    assert [r.window_end for r in records] == ["2027-01-10"]


def test_a_shifted_population_raises_the_drift_metric_above_the_alarm(ops, client, last_metrics):
    # Given a week whose applicants earn four times and own twenty times what they used to
    apply_many(60, datetime(2027, 1, 3, 17, 0, tzinfo=timezone.utc), 7, shifted=True)
    # When the weekly job runs
    client.lambda_.invoke("model_monitor", scheduled_event(WEEKLY_RUN, "model_monitor"))
    # Then the inputs' PSI crosses the alarm threshold the template alarms on
    status, body = ops("/v1/ops/model")
    assert body["drift"]["inputs"]["monthly_income_cny"] > drift.ALARM
    assert last_metrics["ModelDriftPSI"] > drift.ALARM


def test_a_quiet_week_stores_its_figures_but_raises_no_drift_metric(ops, client, last_metrics):
    apply_many(5, datetime(2027, 1, 3, 17, 0, tzinfo=timezone.utc), 5)
    client.lambda_.invoke("model_monitor", scheduled_event(WEEKLY_RUN, "model_monitor"))
    status, body = ops("/v1/ops/model")
    assert body["drift"]["scored"] == 5 and body["drift"]["psi"] is not None
    assert "ModelDriftPSI" not in last_metrics and "ModelApprovalRate" in last_metrics


def test_a_borrower_token_cannot_read_the_model_view(client, aws_stack):
    response = client.http.get("/v1/ops/model", headers={"X-Ops-Key": "wrong"})
    assert response.status_code == 403
