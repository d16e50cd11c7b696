"""Nobody can buy an approval: raising one API field moves the risk one way only (issue 15).

Given many applicants, when one field of the application runs over an increasing grid with
the others fixed, scored through the packaged artifact by the scorer exactly as an
application is, then the probability of default never moves against the field's direction:
more income, assets or years in the job never raise it; more expenses, debt, a larger amount
or a past overdue record never lower it. One violating step fails the test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.risk import features as F
from chalicelib.risk import scorer
from models import monotonicity as M

ROOT = Path(__file__).resolve().parents[2]
CARD = json.loads((ROOT / "chalicelib" / "risk" / "artifacts" / "model_card.json").read_text())
MONOTONE = {f["name"]: f["monotone"] for f in CARD["features"]}
BASES = M.random_bases(60)


pytestmark = pytest.mark.usefixtures("packaged_model")  # tests/unit/conftest.py


def through_the_scorer(rows: list[F.ModelInputs]) -> list[float]:
    return [scorer.score(row).probability for row in rows]


@pytest.mark.parametrize("field", list(M.FIELDS))
def test_no_step_of_any_field_moves_the_risk_against_its_direction(field):
    result = M.sweep(through_the_scorer, BASES, fields={field: M.FIELDS[field]}, points=60)
    assert result["steps_checked"] >= 60 * len(BASES) or field == "has_records"
    assert result["violations"] == 0, result["examples"]


def test_the_sweep_would_catch_a_model_that_rewards_asking_for_more():
    """The check itself: a stand-in model whose risk falls as the amount rises fails it."""
    j = F.NUMERIC_FEATURES.index("amount_cny")

    def gameable(rows: list[F.ModelInputs]) -> list[float]:
        return [1 / (1 + row.numeric[j]) for row in rows]

    result = M.sweep(gameable, BASES[:3], fields={"amount": 1}, points=20)
    assert result["violations"] > 0 and result["examples"][0]["field"] == "amount"


@pytest.mark.parametrize("field", list(M.FIELDS))
def test_every_model_input_moves_with_each_field_the_way_its_constraint_needs(field):
    """Why the sweep holds between grid points too: each input's step function is monotone in
    its card direction, and each input moves one way with the field, so their sum cannot turn."""
    direction = M.FIELDS[field]
    for base in BASES[:25]:
        moves = M.input_directions(base, field, M.grid(field, M.base_value(base, field), 40))
        for name, move in moves.items():
            assert move is not None, (field, name)
            assert move * MONOTONE[name] in (0, direction), (field, name, move, MONOTONE[name])


def test_zero_income_never_scores_better_than_any_positive_income():
    for base in BASES[:30]:
        zero = scorer.score(M.application(base, "monthly_income", 0)).probability
        for income in (1, 100, 10_000, 300_000, 800_000, 5_000_000, 100_000_000):
            assert scorer.score(M.application(base, "monthly_income", income)).probability <= zero


def test_the_issue_example_asking_for_25_cny_more_never_lowers_the_risk():
    applicant = {"monthly_income": 2_500_000, "monthly_expenses": 600_000, "assets": 30_000_000,
                 "debt": 0, "job_type": "fixed", "job_seniority_years": 4, "home": "rent"}
    base = {"applicant": applicant, "amount": 4_935_000, "term_months": 24, "has_records": False}
    p = [scorer.score(M.application(base, "amount", a)).probability
         for a in range(4_900_000, 5_000_001, 2_500)]
    assert all(b >= a for a, b in zip(p, p[1:]))


def test_age_and_marital_status_change_nothing_in_a_decision():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from chalicelib.risk import service
    product = SimpleNamespace(product_id="revolving-credit", min_amount=50000, max_amount=20000000,
                              apr_min="0.0720", apr_max="0.2400")
    seen = set()
    for base in BASES[:20]:
        decisions = []
        for age, marital in ((22, "single"), (40, "married"), (64, "separated"), (33, None)):
            applicant = {**base["applicant"], "marital_status": marital}
            facts = service.ApplicationFacts(
                user_id="u", product=product, amount=base["amount"], term_months=12,
                applicant=applicant, age=age, identity_verified=True,
                now=datetime(2027, 1, 10, 2, tzinfo=timezone.utc), outstanding_principal=0,
                live_loans=0, overdue_loans=0, ever_overdue=False, last_decline_on=None, lang="en")
            d = service.decide(facts)
            decisions.append({k: d[k] for k in ("status", "credit_limit", "apr", "reasons",
                                                 "probability", "model_inputs")})
        assert all(d == decisions[0] for d in decisions)
        seen.add(decisions[0]["status"])
    assert len(seen) >= 2  # the applicants span more than one outcome
