"""The decision policy: hard rules, over-borrowing guards, grades, limits and APRs.

Given an application's facts (and the model's answer, real or stand-in), when the policy
decides, then the borrower sees the status, limit, APR and the reason codes below.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.risk import policy, scorer
from chalicelib.risk.features import FEATURES
from chalicelib.risk.policy import PolicyInput, ProductTerms

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)   # 10:00 in Shanghai
TODAY = date(2027, 1, 10)
REVOLVING = ProductTerms("revolving-credit", 50000, 20000000, "0.0720", "0.2400")
CASH = ProductTerms("cash-advance", 50000, 500000, "0.1080", "0.2400")

GOOD = {"monthly_income": 1500000, "monthly_expenses": 400000, "assets": 50000000, "debt": 0,
        "job_type": "fixed", "job_seniority_years": 10, "home": "owner", "marital_status": "married"}
BAD = {"monthly_income": 300000, "monthly_expenses": 250000, "assets": 0, "debt": 2000000,
       "job_type": "partime", "job_seniority_years": 0, "home": "rent", "marital_status": "single"}


@dataclass(frozen=True)
class FakeScore:
    probability: float
    contributions: dict = field(default_factory=lambda: {f: 0.0 for f in FEATURES})
    model_version: str = "test-model"
    model_sha256: str = "0" * 64


def facts(**changes) -> PolicyInput:
    base = PolicyInput(product=REVOLVING, requested_amount=5000000, term_months=12,
                       monthly_income=1500000, age=38, identity_verified=True,
                       outstanding_principal=0, live_loans=0, overdue_loans=0,
                       last_decline_on=None, now=NOW, apr_cap="0.24")
    return replace(base, **changes)


def codes(decision) -> list[str]:
    return [r["code"] for r in decision.reasons]


pytestmark = pytest.mark.usefixtures("packaged_model")  # tests/unit/conftest.py


def real_score(applicant: dict, amount: int, term: int, has_records: bool):
    return scorer.score_application(applicant, amount, term, has_records)[1]


# ------------------------------------------------------------------- profiles, real model

def test_a_good_applicant_is_approved_at_the_best_grade_and_rate_with_no_risk_reason():
    score = real_score(GOOD, 5000000, 12, False)
    decision = policy.decide(facts(), score)
    assert decision.status == "approved" and decision.grade == "A"
    assert decision.credit_limit == 6000000          # 4 months of 15,000 CNY income, 100 % for A
    assert decision.apr == "0.0720"                  # the product's floor
    assert decision.model_version == "credit-additive-gbm-2.0.0"
    assert decision.policy_version == policy.POLICY_VERSION == "policy-1.1.0"
    assert any(v > 0 for v in score.contributions.values())  # something still weighed against...
    assert codes(decision) == []                               # ...but an approval lists no reason


def top_up(score, n=3) -> list[str]:
    """The codes of the n features that pushed the risk up most, from the contributions."""
    from chalicelib.risk.reasons import FEATURE_REASONS
    up = sorted(((v, k) for k, v in score.contributions.items() if v > 0), key=lambda t: (-t[0], t[1]))
    return [FEATURE_REASONS[k][0] for _, k in up[:n]]


def test_a_bad_applicant_is_declined_with_the_features_that_pushed_risk_up():
    score = real_score(BAD, 900000, 24, True)
    decision = policy.decide(facts(requested_amount=900000, term_months=24, monthly_income=300000,
                                   age=22), score)
    assert decision.status == "declined" and decision.grade == "E"
    assert codes(decision)[0] == "RISK_GRADE_DECLINE"
    assert codes(decision)[1:] == top_up(score) and len(codes(decision)) == 4
    assert "RISK_PAST_OVERDUE" in codes(decision)   # the overdue record weighs among the most
    assert decision.credit_limit == 0 and decision.apr is None
    assert decision.probability > 0.55


def test_reasons_speak_chinese_when_asked():
    score = real_score(BAD, 900000, 24, True)
    decision = policy.decide(facts(requested_amount=900000, term_months=24, monthly_income=300000,
                                   age=22), score, lang="zh")
    overdue = next(r for r in decision.reasons if r["code"] == "RISK_PAST_OVERDUE")
    assert overdue["message"] == "您在本平台的历史逾期记录提高了评估风险。"


@pytest.mark.parametrize("p", [0.05, 0.15, 0.30, 0.40, 0.70])
def test_no_reason_ever_names_a_personal_characteristic(p):
    """Even a score whose contributions came from an age or marital-status input (a model of
    before 2.0.0) gives no such reason in a new decision; approvals list no risk reason."""
    contributions = {f: 0.0 for f in FEATURES}
    contributions.update({"age_years": 2.0, "marital_status": 1.5, "debt_cny": 0.1})
    decision = policy.decide(facts(), FakeScore(p, contributions))
    assert not {"RISK_AGE", "RISK_MARITAL_STATUS"} & set(codes(decision))
    if decision.status == "approved":
        assert not any(c.startswith("RISK_") for c in codes(decision))
    else:
        assert "RISK_DEBT" in codes(decision)


def test_every_reason_code_a_new_decision_can_give_is_free_of_personal_characteristics():
    from chalicelib.risk import reasons
    live = set(reasons.all_codes())
    assert "AGE_NOT_ELIGIBLE" in live                       # the eligibility rule, and only it
    assert not live & {"RISK_AGE", "RISK_MARITAL_STATUS"}
    for code in live - {"AGE_NOT_ELIGIBLE"}:
        texts = " ".join(reasons.localise([{"code": code, "message": ""}], lang)[0]["message"]
                         for lang in ("en", "zh")).lower()
        assert not any(word in texts for word in ("age", "marital", "婚", "年龄")), code


# -------------------------------------------------------------------------- hard rules

@pytest.mark.parametrize("changes, code", [
    ({"identity_verified": False}, "IDENTITY_NOT_VERIFIED"),
    ({"age": 17}, "AGE_NOT_ELIGIBLE"),
    ({"age": 66}, "AGE_NOT_ELIGIBLE"),
    ({"age": None}, "AGE_NOT_ELIGIBLE"),
    ({"overdue_loans": 1, "live_loans": 1, "outstanding_principal": 100000}, "LOAN_OVERDUE"),
    ({"live_loans": 3, "outstanding_principal": 300000}, "TOO_MANY_ACTIVE_LOANS"),
    ({"last_decline_on": TODAY - timedelta(days=29)}, "REAPPLY_COOL_DOWN"),
])
def test_each_hard_rule_declines_with_its_own_code_whatever_the_model_says(changes, code):
    decision = policy.decide(facts(**changes), FakeScore(0.01))
    assert decision.status == "declined"
    assert codes(decision) == [code]
    assert decision.credit_limit == 0 and decision.apr is None


def test_rules_at_their_edges_let_the_application_through():
    for changes in ({"age": 18}, {"age": 65}, {"live_loans": 2, "outstanding_principal": 100000},
                    {"last_decline_on": TODAY - timedelta(days=30)}):
        assert policy.decide(facts(**changes), FakeScore(0.01)).status == "approved", changes


def test_cool_down_counts_shanghai_dates():
    late_evening_utc = datetime(2027, 1, 9, 17, 0, tzinfo=timezone.utc)  # 01:00 on the 10th in Shanghai
    decision = policy.decide(facts(now=late_evening_utc, last_decline_on=date(2026, 12, 11)),
                             FakeScore(0.01))
    assert decision.status == "approved"  # 30 Shanghai days have passed


def test_every_failing_rule_is_reported():
    decision = policy.decide(facts(identity_verified=False, age=70, overdue_loans=1, live_loans=4,
                                   outstanding_principal=400000), None)
    assert codes(decision) == ["IDENTITY_NOT_VERIFIED", "AGE_NOT_ELIGIBLE", "LOAN_OVERDUE",
                               "TOO_MANY_ACTIVE_LOANS"]


# ---------------------------------------------------------------- over-borrowing guards

def test_outstanding_above_a_third_of_annual_income_declines():
    # income 15,000 CNY a month: a third of a year's income is 60,000 CNY = 6,000,000 fen
    decision = policy.decide(facts(outstanding_principal=1000000, requested_amount=5000001),
                             FakeScore(0.01))
    assert codes(decision) == ["DEBT_TO_INCOME_EXCEEDED"]
    edge = policy.decide(facts(outstanding_principal=1000000, requested_amount=5000000,
                               live_loans=1), FakeScore(0.01))
    assert edge.status == "approved"


def test_outstanding_above_200000_cny_per_person_declines():
    rich = dict(monthly_income=10000000)    # 100,000 CNY a month: the income rule is far away
    decision = policy.decide(facts(outstanding_principal=15000000, requested_amount=5000001,
                                   live_loans=1, **rich), FakeScore(0.01))
    assert codes(decision) == ["TOTAL_DEBT_CAP_EXCEEDED"]
    edge = policy.decide(facts(outstanding_principal=15000000, requested_amount=5000000,
                               live_loans=1, **rich), FakeScore(0.01))
    assert edge.status == "approved"
    assert edge.credit_limit == 20000000   # never more than 200,000 CNY in all


def test_both_guards_can_fail_together():
    decision = policy.decide(facts(monthly_income=100000, requested_amount=20000001), FakeScore(0.01))
    assert codes(decision) == ["DEBT_TO_INCOME_EXCEEDED", "TOTAL_DEBT_CAP_EXCEEDED"]


def test_no_limit_ever_lets_outstanding_pass_either_cap():
    for income in (100000, 777777, 1500000, 5000001, 10000000):
        for grade_p in (0.01, 0.15, 0.30):
            d = policy.decide(facts(monthly_income=income, requested_amount=50000, product=REVOLVING),
                              FakeScore(grade_p))
            if d.status == "approved":
                assert d.credit_limit * 3 <= income * 12 and d.credit_limit <= 20000000
                assert isinstance(d.credit_limit, int) and d.credit_limit % 10000 == 0


# ------------------------------------------------------------------ grades, limit, APR

@pytest.mark.parametrize("p, grade, status", [
    (0.0999, "A", "approved"), (0.10, "B", "approved"), (0.3499, "C", "approved"),
    (0.35, "D", "review"), (0.5499, "D", "review"), (0.55, "E", "declined"), (0.999, "E", "declined")])
def test_probability_maps_to_grade_and_action(p, grade, status):
    decision = policy.decide(facts(), FakeScore(p))
    assert (decision.grade, decision.status) == (grade, status)


def test_review_leaves_limit_and_apr_to_an_operator_but_suggests_them():
    decision = policy.decide(facts(), FakeScore(0.40))
    assert decision.status == "review" and codes(decision)[0] == "MANUAL_REVIEW"
    assert decision.credit_limit == 0 and decision.apr is None
    assert decision.suggested_limit == 1800000 and decision.suggested_apr == "0.2400"


def test_apr_rises_with_the_grade_within_the_product_and_never_above_the_cap():
    aprs = [policy.decide(facts(), FakeScore(p)).apr for p in (0.05, 0.15, 0.30)]
    assert aprs == ["0.0720", "0.1280", "0.1840"]
    wide = ProductTerms("wide", 50000, 20000000, "0.1000", "0.3600")
    for p in (0.05, 0.15, 0.30, 0.45):
        d = policy.decide(facts(product=wide), FakeScore(p))
        apr = d.apr or d.suggested_apr
        assert Decimal("0.1000") <= Decimal(apr) <= Decimal("0.2400")
    assert policy.decide(facts(product=wide, apr_cap="0.2"), FakeScore(0.45)).suggested_apr == "0.2000"


def test_a_product_that_cannot_be_priced_under_the_cap_declines():
    dear = ProductTerms("dear", 50000, 20000000, "0.2500", "0.3000")
    assert codes(policy.decide(facts(product=dear), FakeScore(0.01))) == ["APR_CAP_EXCEEDED"]


def test_limit_shrinks_with_grade_is_capped_by_the_product_and_rounded_down():
    a = policy.decide(facts(monthly_income=1234567, requested_amount=100000), FakeScore(0.05))
    b = policy.decide(facts(monthly_income=1234567, requested_amount=100000), FakeScore(0.15))
    assert a.credit_limit == 4930000          # 4 x 12,345.67 CNY = 49,382.68 -> 49,300 CNY
    assert b.credit_limit == 2960000          # 60 % of 49,382.68 = 29,629.61 -> 29,600 CNY
    cash = policy.decide(facts(product=CASH, requested_amount=300000), FakeScore(0.05))
    assert cash.credit_limit == 500000        # the product's maximum


def test_a_lower_limit_than_asked_is_still_an_approval_and_says_so():
    decision = policy.decide(facts(requested_amount=5000000), FakeScore(0.30))   # grade C: 30 %
    assert decision.status == "approved" and decision.credit_limit == 1800000
    assert codes(decision)[0] == "LIMIT_REDUCED"


def test_no_room_left_under_the_grade_limit_declines():
    decision = policy.decide(facts(requested_amount=100000, outstanding_principal=1790000,
                                   live_loans=1), FakeScore(0.30))
    assert decision.status == "declined"
    assert codes(decision)[0] == "INSUFFICIENT_CREDIT_CAPACITY"


# ------------------------------------------------------------ no model, no approvals

def test_without_a_model_no_one_is_approved():
    for income in (300000, 1500000, 10000000):
        d = policy.decide(facts(monthly_income=income, requested_amount=100000), None)
        assert d.status == "review" and codes(d) == ["MODEL_UNAVAILABLE"]
        assert d.credit_limit == 0 and d.apr is None and d.probability is None


def test_without_a_model_a_hard_rule_still_declines():
    assert policy.decide(facts(age=17), None).status == "declined"


def test_a_broken_model_file_means_zero_approvals_for_good_profiles(tmp_path, monkeypatch):
    import shutil
    broken = tmp_path / "artifacts"
    shutil.copytree(ROOT / "chalicelib" / "risk" / "artifacts", broken)
    (broken / "credit_model.onnx").write_bytes(b"not a model")
    monkeypatch.setenv("RISK_MODEL_DIR", str(broken))
    scorer.reset()
    statuses = []
    for income in (800000, 1500000, 3000000):
        try:
            score = real_score({**GOOD, "monthly_income": income}, 1000000, 12, False)
        except scorer.ModelUnavailable:
            score = None
        statuses.append(policy.decide(facts(monthly_income=income, requested_amount=1000000),
                                      score).status)
    assert statuses == ["review"] * 3


# ------------------------------------------------------------------ replay and purity

def test_a_replayed_decision_is_the_same_decision():
    inp = facts(outstanding_principal=500000, live_loans=1)
    score = real_score(GOOD, 5000000, 12, False)
    first = policy.decide(inp, score)
    stored = json.loads(json.dumps({"input": inp.to_dict(), "decision": first.to_dict()}))
    again = policy.decide(PolicyInput.from_dict(stored["input"]),
                          real_score(GOOD, 5000000, 12, False))
    assert again.to_dict() == stored["decision"] == first.to_dict()


def test_the_policy_is_pure_python():
    code = ("import sys; sys.path.insert(0, %r); import chalicelib.risk.policy, chalicelib.risk.reasons;"
            "print(sorted(m for m in ('boto3', 'botocore', 'pynamodb', 'chalice', "
            "'aws_lambda_powertools', 'onnxruntime', 'numpy') if m in sys.modules))" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
