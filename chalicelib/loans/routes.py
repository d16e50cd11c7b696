"""HTTP routes and event handlers of the loans slice."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from chalice import Blueprint, Rate
from pydantic import Field

from chalicelib.auth import hooks as auth_hooks
from chalicelib import wiring
from chalicelib.core import config
from chalicelib.core.clock import parse_instant
from chalicelib.core.events import partial_batch
from chalicelib.core.http import ApiModel, route
from chalicelib.core.idempotency import money_key
from chalicelib.core.observability import observed
from chalicelib.core.resources import queue_spec
from chalicelib.loans import applications, catalog, credit, disbursement, ops, service

bp = Blueprint(__name__)

# Answers to the auth slice's questions (see chalicelib.auth.hooks).
auth_hooks.OUTSTANDING_LOAN_CHECKS.append(service.has_live_loan)
auth_hooks.CREDIT_SUMMARIES.append(credit.summary)


def _now() -> datetime:
    return wiring.clock().now()


def _lang(request: Any) -> str:
    """Messages meant for a person: Chinese, or English with `Accept-Language: en`."""
    return "en" if (request.headers.get("accept-language") or "").lower().startswith("en") else "zh"


@route(bp, "/v1/products", "GET", summary="Loan products with their APR range", tag="loans")
def list_products(request: Any) -> dict[str, Any]:
    return {"items": [p.to_api() for p in catalog.list_products()]}


@route(bp, "/v1/me/offers", "GET", summary="Products the user's credit line qualifies for",
       tag="loans", auth="bearer")
def offers(request: Any, principal: str) -> dict[str, Any]:
    return {"items": credit.offers(principal, catalog.list_products(), _now())}


class Applicant(ApiModel):
    monthly_income: int = Field(ge=0, le=10**10)
    monthly_expenses: int = Field(ge=0, le=10**10)
    assets: int = Field(ge=0, le=10**12)
    debt: int = Field(ge=0, le=10**12)
    job_type: Literal["fixed", "freelance", "partime", "others"]
    job_seniority_years: int = Field(ge=0, le=60)
    home: Literal["owner", "rent", "parents", "priv", "other"]
    # Accepted, optional, and never read: no decision rests on marital status (contract).
    marital_status: Literal["single", "married", "widow", "separated", "divorced"] | None = None


class ApplicationBody(ApiModel):
    product_id: str = Field(min_length=1, max_length=64)
    amount: int = Field(gt=0)
    term_months: int = Field(ge=1, le=36)
    purpose: str = Field(min_length=1, max_length=200)
    applicant: Applicant
    # Only for business loans to sole proprietors (个体工商户): the 18-character unified social
    # credit code (GB 32100) of the business.
    business_credit_code: str | None = Field(default=None, min_length=18, max_length=18)


@route(bp, "/v1/applications", "POST", summary="Apply for credit; decided at once", tag="loans",
       body=ApplicationBody, auth="bearer", status=201, idempotent=True,
       errors=("403 IDENTITY_REQUIRED", "409 CREDIT_LINE_BUSY", "422 AMOUNT_OUT_OF_RANGE",
               "422 TERM_NOT_OFFERED", "422 PRODUCT_NOT_FOUND", "422 BUSINESS_CREDIT_CODE_INVALID"))
def apply(request: Any, body: ApplicationBody, principal: str) -> dict[str, Any]:
    return applications.apply(principal, product_id=body.product_id, amount=body.amount,
                              term_months=body.term_months, purpose=body.purpose,
                              # marital status is not even stored (data minimisation)
                              applicant=body.applicant.model_dump(exclude={"marital_status"}),
                              now=_now(), lang=_lang(request),
                              business_credit_code=body.business_credit_code)


@route(bp, "/v1/applications/{application_id}", "GET", summary="One application and its decision",
       tag="loans", auth="bearer", errors=("404 APPLICATION_NOT_FOUND",))
def get_application(request: Any, application_id: str, principal: str) -> dict[str, Any]:
    return applications.get(principal, application_id, _lang(request))


class DrawBody(ApiModel):
    application_id: str = Field(min_length=1, max_length=64)
    amount: int = Field(gt=0)
    term_months: int = Field(ge=1, le=36)
    repayment_method: Literal["equal_installment", "equal_principal", "interest_first"]
    bank_card_id: str = Field(min_length=1, max_length=64)
    disburse_at: str | None = Field(default=None, max_length=40)


def _parse_instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    from chalicelib.core.errors import RuleViolation
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise RuleViolation("disburse_at must be an ISO 8601 time with an offset.",
                            code="DISBURSE_AT_INVALID") from None


@route(bp, "/v1/loans", "POST", summary="Draw a loan on the approved credit line", tag="loans",
       body=DrawBody, auth="bearer", status=201, idempotent=True,
       errors=("404 APPLICATION_NOT_FOUND", "404 CARD_NOT_FOUND", "409 APPLICATION_NOT_APPROVED",
               "409 APPLICATION_SUPERSEDED", "409 NO_CREDIT_LINE", "409 CREDIT_LINE_EXPIRED",
               "409 CREDIT_LINE_BUSY", "422 CREDIT_LIMIT_EXCEEDED", "422 AFFORDABILITY",
               "422 DISBURSE_AT_INVALID", "422 LOAN_OVERDUE", "422 TOO_MANY_LOANS",
               "422 AMOUNT_OUT_OF_RANGE", "422 TERM_NOT_OFFERED",
               "422 REPAYMENT_METHOD_NOT_OFFERED", "403 SECURITY_HOLD"))
def draw_loan(request: Any, body: DrawBody, principal: str) -> dict[str, Any]:
    return service.draw(principal, service.DrawRequest(
        application_id=body.application_id, amount=body.amount, term_months=body.term_months,
        repayment_method=body.repayment_method, bank_card_id=body.bank_card_id,
        disburse_at=_parse_instant(body.disburse_at)), _now(), key=money_key(request, principal))


@route(bp, "/v1/loans", "GET", summary="The user's loans", tag="loans", auth="bearer")
def list_loans(request: Any, principal: str) -> dict[str, Any]:
    return {"items": service.list_loans(principal, _lang(request))}


@route(bp, "/v1/loans/{loan_id}", "GET", summary="One loan with its schedule", tag="loans",
       auth="bearer", errors=("404 LOAN_NOT_FOUND",))
def get_loan(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    return service.get_loan(principal, loan_id, _lang(request))


@route(bp, "/v1/loans/{loan_id}/cancel", "POST", summary="Cancel a loan not yet paid out",
       tag="loans", auth="bearer", errors=("404 LOAN_NOT_FOUND", "409 LOAN_NOT_CANCELLABLE"))
def cancel_loan(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    return service.cancel(principal, loan_id, _now(), _lang(request))


@route(bp, "/v1/ops/reviews", "GET", summary="Applications waiting for an operator", tag="ops",
       auth="ops")
def ops_reviews(request: Any, principal: str) -> dict[str, Any]:
    return {"items": applications.in_review()}


class OperatorDecisionBody(ApiModel):
    status: Literal["approved", "declined"]
    credit_limit: int | None = Field(default=None, gt=0)
    note: str = Field(min_length=1, max_length=500)


@route(bp, "/v1/ops/applications/{application_id}/decision", "POST", tag="ops", auth="ops",
       summary="Approve or decline an application in review", body=OperatorDecisionBody,
       errors=("404 APPLICATION_NOT_FOUND", "409 APPLICATION_NOT_IN_REVIEW", "409 CREDIT_LINE_BUSY",
               "422 CREDIT_LIMIT_REQUIRED", "422 CREDIT_LIMIT_OUT_OF_RANGE"))
def ops_decide(request: Any, application_id: str, body: OperatorDecisionBody,
               principal: str) -> dict[str, Any]:
    return applications.operator_decision(application_id, operator=principal, status=body.status,
                                          credit_limit=body.credit_limit, note=body.note, now=_now(),
                                          lang=_lang(request))


@route(bp, "/v1/ops/loans/{loan_id}", "GET", summary="A loan with its ledger entries and events",
       tag="ops", auth="ops", errors=("404 LOAN_NOT_FOUND",))
def ops_loan(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    return ops.loan_detail(loan_id, _lang(request))


@route(bp, "/v1/ops/portfolio", "GET", summary="Counts and outstanding principal by status and "
       "days past due", tag="ops", auth="ops")
def ops_portfolio(request: Any, principal: str) -> dict[str, Any]:
    return ops.portfolio(_now())


@bp.schedule(Rate(1, unit=Rate.MINUTES))
@observed
def disbursement_sweep(event: Any) -> dict[str, int]:
    """Every minute: queue the loans whose disbursement time has come (as of the event time)."""
    return disbursement.sweep(parse_instant(event.time))


def _handle_disbursement(record: Any) -> None:
    loan_id = json.loads(record.body)["loan_id"]
    disbursement.disburse(loan_id, _now())


@bp.on_sqs_message(queue=config.queue_name("disbursements"),
                   batch_size=queue_spec("disbursements").batch_size)
@observed
def disbursement_consumer(event: Any) -> dict[str, Any]:
    """Pays out each queued loan at most once; failed records are retried, then dead-lettered."""
    return partial_batch(event, _handle_disbursement)
