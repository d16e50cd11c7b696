"""The credit decision as the loans slice asks for it: facts in, a stored-ready decision out.

Joins the model (`scorer`) and the versioned policy (`policy`). A missing, corrupt or swapped
model never approves anyone: the policy then answers `review`, and /health says why.
Everything needed to replay a decision is returned with it (`replay()` does so).

The challenger, when one is registered, scores the same inputs in shadow: its probability,
grade and whether its grade's action agrees with the champion's go into the stored decision
under `challenger` (the weekly monitor reports the agreement). It never changes the decision,
and a broken challenger only means no shadow score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from chalicelib.api import system
from chalicelib.core.observability import logger, metrics


@dataclass(frozen=True)
class ApplicationFacts:
    user_id: str
    product: Any  # chalicelib.loans.catalog.Product
    amount: int
    term_months: int
    applicant: dict
    age: int | None
    identity_verified: bool
    now: datetime
    outstanding_principal: int
    live_loans: int
    overdue_loans: int
    ever_overdue: bool
    last_decline_on: date | None
    lang: str = "zh"


def _policy_input(facts: ApplicationFacts) -> Any:
    from chalicelib.loans.catalog import apr_cap
    from chalicelib.risk import policy
    product = facts.product
    return policy.PolicyInput(
        product=policy.ProductTerms(product_id=product.product_id, min_amount=product.min_amount,
                                    max_amount=product.max_amount, apr_min=product.apr_min,
                                    apr_max=product.apr_max),
        requested_amount=facts.amount, term_months=facts.term_months,
        monthly_income=facts.applicant["monthly_income"], age=facts.age,
        identity_verified=facts.identity_verified, outstanding_principal=facts.outstanding_principal,
        live_loans=facts.live_loans, overdue_loans=facts.overdue_loans,
        last_decline_on=facts.last_decline_on, now=facts.now, apr_cap=str(apr_cap()))


def decide(facts: ApplicationFacts) -> dict:
    """Score (if the applicant can be scored) and apply the policy. The answer holds the
    decision and what it was made from: policy input, model inputs, probability, versions."""
    from chalicelib.risk import policy, scorer
    from chalicelib.risk.features import features_from_application
    inputs = score = None
    # Age is no model input (it only decides eligibility); an applicant without a verified age
    # is declined by the policy's rule, so there is nothing to score.
    if facts.age is not None:
        inputs = features_from_application(facts.applicant, facts.amount, facts.term_months,
                                            facts.ever_overdue)
        try:
            score = scorer.score(inputs)
        except scorer.ModelUnavailable as err:
            metrics.add_metric(name="ModelUnavailable", unit="Count", value=1)
            logger.error("credit model unavailable: no approvals", extra={"why": err.message})
            inputs = None
    policy_input = _policy_input(facts)
    decision = policy.decide(policy_input, score, facts.lang)
    return {**decision.to_dict(), "lang": facts.lang, "policy_input": policy_input.to_dict(),
            "model_inputs": None if inputs is None else {
                "numeric": [None if math.isnan(v) else v for v in inputs.numeric],
                "categorical": list(inputs.categorical)},
            "challenger": None if inputs is None else _shadow(inputs, policy_input, decision)}


def _shadow(inputs: Any, policy_input: Any, decision: Any) -> dict | None:
    """The challenger's view of the same application, for the record; never the decision's."""
    from chalicelib.risk import policy, scorer
    try:
        shadow = scorer.shadow_score(inputs)
    except scorer.ModelUnavailable as err:
        metrics.add_metric(name="ChallengerUnavailable", unit="Count", value=1)
        logger.warning("challenger unavailable: no shadow score", extra={"why": err.message})
        return None
    if shadow is None:
        return None
    grade = policy.grade_of(shadow.probability)
    return {"model_version": shadow.model_version, "model_sha256": shadow.model_sha256,
            "probability": shadow.probability, "grade": grade,
            "action": policy.GRADE_ACTION[grade],
            # the same action (approve / review / decline) as the champion's grade gives
            "agrees": decision.grade is not None
            and policy.GRADE_ACTION[grade] == policy.GRADE_ACTION[decision.grade],
            "same_grade": grade == decision.grade,
            # the champion's grade decided (no hard rule declined first)
            "reached_model": decision.grade is not None
            and not policy.hard_rule_failures(policy_input)}


class ReplayMismatch(Exception):
    """The model or policy loaded now is not the one the stored decision was made with."""


def replay(stored: dict) -> dict:
    """Decide again from a stored decision's own inputs, with the model that made it (the
    current one or a retired one, by SHA-256). Refuses (ReplayMismatch) when that model or the
    policy version is not available: the answer could differ."""
    from chalicelib.risk import policy, scorer
    from chalicelib.risk.features import ModelInputs
    version = stored.get("policy_version")
    if version not in policy.REPLAYABLE_VERSIONS:
        raise ReplayMismatch(f"policy {version} is not one of {policy.REPLAYABLE_VERSIONS}")
    score = None
    if stored.get("model_inputs") is not None:
        inputs = ModelInputs(numeric=tuple(float("nan") if v is None else v
                                           for v in stored["model_inputs"]["numeric"]),
                             categorical=tuple(stored["model_inputs"]["categorical"]))
        try:
            score = scorer.score_with(str(stored.get("model_sha256")), inputs)
        except scorer.ModelUnavailable as err:
            raise ReplayMismatch(f"model sha256 {stored.get('model_sha256')}: {err.message}") from None
    decision = policy.decide(policy.PolicyInput.from_dict(stored["policy_input"]), score,
                             stored.get("lang", "zh"), version=version)
    return decision.to_dict()


def _model_health() -> tuple[bool, str]:
    from chalicelib.risk import scorer
    return scorer.model_status()


system.HEALTH_CHECKS["credit_model"] = _model_health
