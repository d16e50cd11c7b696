"""Decisions made before 2.0.0 still replay exactly, with the model and policy that made them.

`fixtures/legacy_decisions.json` holds decisions as the code of main made and stored them
before issue 15 (models credit-additive-gbm 1.0.0 and 1.1.0, policy-1.0.0, whose inputs and
reasons included age and marital status). Today's code must replay each one to the same
decision, and a borrower reading one of them must no longer see those reasons.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.risk import policy, reasons, scorer, service

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy_decisions.json"
LEGACY = json.loads(FIXTURE.read_text(encoding="utf-8"))["decisions"]


pytestmark = pytest.mark.usefixtures("packaged_model")  # tests/unit/conftest.py


def decision_part(stored: dict) -> dict:
    return {k: v for k, v in stored.items()
            if k not in ("lang", "policy_input", "model_inputs", "challenger")}


def test_the_fixture_covers_both_old_models_and_their_personal_reasons():
    versions = {d["model_version"] for d in LEGACY if d["model_version"]}
    assert versions == {"credit-additive-gbm-1.0.0", "credit-additive-gbm-1.1.0"}
    assert {d["policy_version"] for d in LEGACY} == {"policy-1.0.0"}
    codes = {r["code"] for d in LEGACY for r in d["reasons"]}
    assert {"RISK_AGE", "RISK_MARITAL_STATUS"} <= codes
    assert {d["status"] for d in LEGACY} == {"approved", "review", "declined"}
    assert scorer.model_info()["model_version"] not in versions   # none of them is current


@pytest.mark.parametrize("stored", LEGACY, ids=lambda d: f"{d['model_version']}-{d['status']}-"
                         f"{'-'.join(r['code'] for r in d['reasons'])}")
def test_a_decision_of_an_old_model_and_policy_replays_to_the_same_decision(stored):
    again = service.replay(json.loads(json.dumps(stored)))
    assert json.loads(json.dumps(again)) == decision_part(stored)


def test_a_borrower_no_longer_sees_personal_or_approval_risk_reasons_of_old_decisions():
    for stored in LEGACY:
        shown = [r["code"] for r in reasons.shown(stored["status"], stored["reasons"])]
        assert not {"RISK_AGE", "RISK_MARITAL_STATUS"} & set(shown)
        if stored["status"] == "approved":
            assert not any(c in reasons.FEATURE_CODES for c in shown)
        else:  # a decline or review keeps its other adverse reasons, in order
            kept = [r["code"] for r in stored["reasons"] if r["code"] not in reasons.RETIRED_CODES]
            assert shown == kept


def test_an_unknown_policy_version_is_refused():
    stored = json.loads(json.dumps(LEGACY[0]))
    stored["policy_version"] = "policy-0.9.0"
    with pytest.raises(service.ReplayMismatch):
        service.replay(stored)
    with pytest.raises(ValueError):
        policy.decide(policy.PolicyInput.from_dict(stored["policy_input"]), None,
                      version="policy-0.9.0")
