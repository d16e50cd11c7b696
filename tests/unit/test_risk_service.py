"""The risk service as the loans slice calls it: facts in, a stored-ready decision out.

(The service itself is the lead's; these check what it promises on top of scorer + policy.)"""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from chalicelib.core.observability import metrics
from chalicelib.risk import policy, scorer, service
from chalicelib.risk.features import NUMERIC_FEATURES

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = SimpleNamespace(product_id="revolving-credit", min_amount=50000, max_amount=20000000,
                          apr_min="0.0720", apr_max="0.2400")
GOOD = {"monthly_income": 1500000, "monthly_expenses": 400000, "assets": 50000000, "debt": 0,
        "job_type": "fixed", "job_seniority_years": 10, "home": "owner", "marital_status": "married"}


def facts(**changes) -> service.ApplicationFacts:
    base = dict(user_id="u-1", product=PRODUCT, amount=5000000, term_months=12, applicant=GOOD,
                age=38, identity_verified=True, now=datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc),
                outstanding_principal=0, live_loans=0, overdue_loans=0, ever_overdue=False,
                last_decline_on=None, lang="en")
    base.update(changes)
    return service.ApplicationFacts(**base)


@pytest.fixture(autouse=True)
def packaged_model(monkeypatch):
    monkeypatch.delenv("RISK_MODEL_DIR", raising=False)
    monkeypatch.delenv("APR_CAP", raising=False)
    scorer.reset()
    metrics.clear_metrics()
    yield
    scorer.reset()
    metrics.clear_metrics()


def test_a_good_application_is_approved_and_records_what_was_scored():
    decision = service.decide(facts())
    assert decision["status"] == "approved" and decision["credit_limit"] == 6000000
    assert decision["apr"] == "0.0720"
    assert decision["model_version"] == "credit-additive-gbm-2.0.0" and decision["reasons"] == []
    assert len(decision["model_sha256"]) == 64 and decision["policy_version"]
    income = decision["model_inputs"]["numeric"][NUMERIC_FEATURES.index("monthly_income_cny")]
    assert income == 15000.0
    assert decision["policy_input"]["requested_amount"] == 5000000
    json.dumps(decision)  # storable as is


def test_an_overdue_history_reaches_the_model_as_records():
    clean = service.decide(facts())
    marked = service.decide(facts(ever_overdue=True))
    assert marked["model_inputs"]["numeric"][NUMERIC_FEATURES.index("has_records")] == 1.0
    assert marked["probability"] > clean["probability"]


def decision_part(stored: dict) -> dict:
    """What replay recomputes: the decision, not its inputs nor the challenger's shadow score."""
    return {k: v for k, v in stored.items()
            if k not in ("lang", "policy_input", "model_inputs", "challenger")}


def test_replaying_a_stored_decision_gives_the_same_decision():
    stored = json.loads(json.dumps(service.decide(facts(outstanding_principal=300000, live_loans=1))))
    assert json.loads(json.dumps(service.replay(stored))) == decision_part(stored)


def test_a_missing_model_sends_everyone_to_review_and_is_counted(tmp_path, monkeypatch):
    broken = tmp_path / "artifacts"
    shutil.copytree(ROOT / "chalicelib" / "risk" / "artifacts", broken)
    (broken / "credit_model.onnx").unlink()
    monkeypatch.setenv("RISK_MODEL_DIR", str(broken))
    scorer.reset()
    decisions = [service.decide(facts(applicant={**GOOD, "monthly_income": income}))
                 for income in (1500000, 3000000, 9000000)]
    assert [d["status"] for d in decisions] == ["review"] * 3
    assert all(d["reasons"][0]["code"] == "MODEL_UNAVAILABLE" and d["credit_limit"] == 0
               for d in decisions)
    assert metrics.metric_set["ModelUnavailable"]["Value"] == [1.0, 1.0, 1.0]
    # replaying a decision made without a model needs no model either
    stored = json.loads(json.dumps(decisions[0]))
    assert json.loads(json.dumps(service.replay(stored))) == decision_part(stored)


def test_the_configured_apr_cap_applies(monkeypatch):
    monkeypatch.setenv("APR_CAP", "0.2000")
    decision = service.decide(facts(applicant={**GOOD, "job_type": "partime",
                                               "job_seniority_years": 0, "home": "rent"},
                                    term_months=24))
    assert decision["policy_input"]["apr_cap"] == "0.2000"
    apr = decision["apr"] or decision["suggested_apr"]
    assert apr is None or apr <= "0.2000"


def test_cool_down_after_a_decline_for_this_product():
    decision = service.decide(facts(last_decline_on=date(2027, 1, 1)))
    assert decision["status"] == "declined"
    assert [r["code"] for r in decision["reasons"]] == ["REAPPLY_COOL_DOWN"]


def test_the_challenger_scores_in_shadow_and_never_decides(monkeypatch):
    challenger = scorer.challenger_info()
    assert challenger and challenger["model_version"].startswith("credit-woe-scorecard-")
    # a good applicant, and a riskier one whose amount still passes the hard rules
    for applicant, amount in ((GOOD, 5000000), ({**GOOD, "monthly_income": 600000, "job_seniority_years": 0,
                                                 "home": "rent", "job_type": "partime"}, 2000000)):
        with_shadow = service.decide(facts(applicant=applicant, amount=amount))
        shadow = with_shadow["challenger"]
        assert shadow["model_sha256"] == challenger["model_sha256"]
        assert 0 < shadow["probability"] < 1 and shadow["probability"] != with_shadow["probability"]
        assert shadow["agrees"] == (shadow["action"] == policy.GRADE_ACTION[with_shadow["grade"]])
        assert shadow["reached_model"] is True
        monkeypatch.setenv("RISK_CHALLENGER", "off")
        scorer.reset()
        without = service.decide(facts(applicant=applicant, amount=amount))
        monkeypatch.delenv("RISK_CHALLENGER")
        scorer.reset()
        assert without["challenger"] is None
        assert decision_part(without) == decision_part(with_shadow)


def test_a_broken_challenger_changes_no_decision_and_is_counted(tmp_path, monkeypatch):
    copy = tmp_path / "artifacts"
    shutil.copytree(ROOT / "chalicelib" / "risk" / "artifacts", copy)
    (copy / "challenger" / "credit_model.onnx").write_bytes(b"not a model")
    expected = service.decide(facts())
    monkeypatch.setenv("RISK_MODEL_DIR", str(copy))
    scorer.reset()
    decision = service.decide(facts())
    assert decision["challenger"] is None and decision_part(decision) == decision_part(expected)
    assert metrics.metric_set["ChallengerUnavailable"]["Value"] == [1.0]
    assert scorer.challenger_info() is None


def test_a_hard_rule_decline_is_not_counted_as_reaching_the_model():
    decision = service.decide(facts(overdue_loans=1, live_loans=1))
    assert decision["status"] == "declined" and decision["challenger"]["reached_model"] is False


def test_replay_refuses_a_model_that_is_neither_current_nor_retired():
    stored = json.loads(json.dumps(service.decide(facts())))
    stored["model_sha256"] = "f" * 64
    with pytest.raises(service.ReplayMismatch, match="No retired credit model"):
        service.replay(stored)


@pytest.mark.parametrize("sha", ["../" * 21 + "x", "80a2ba22d5a70a8a/../../../../..", "", "F" * 64])
def test_a_stored_model_hash_never_reaches_the_file_system_unless_it_is_a_hash(sha):
    stored = json.loads(json.dumps(service.decide(facts())))
    stored["model_sha256"] = sha
    with pytest.raises(service.ReplayMismatch, match="64 hex digits"):
        service.replay(stored)
