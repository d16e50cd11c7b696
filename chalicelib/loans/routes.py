"""HTTP routes and event handlers of the loans slice."""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from chalice import Blueprint, Cron, Rate
from pydantic import Field

from chalicelib.auth import hooks as auth_hooks
from chalicelib import wiring
from chalicelib.core import config
from chalicelib.core.clock import parse_instant
from chalicelib.api.events import partial_batch
from chalicelib.api.http import ApiModel, request_language, route
from chalicelib.adapters.idempotency import money_key
from chalicelib.core.observability import observed
from chalicelib.core.resources import queue_spec
from chalicelib.loans import applications, catalog, credit, disbursement, ops, report, service
from chalicelib.loans.applications import USCC_PATTERN

bp = Blueprint(__name__)

# Answers to the auth slice's questions (see chalicelib.auth.hooks).
auth_hooks.OUTSTANDING_LOAN_CHECKS.append(service.has_live_loan)
auth_hooks.CREDIT_SUMMARIES.append(credit.summary)


def _now() -> datetime:
    return wiring.clock().now()


def _lang(request: Any) -> str:
    """Messages meant for a person: Chinese, or English with `Accept-Language: en`."""
    return request_language(request)


@route(bp, "/v1/products", "GET", summary="Loan products with their APR range", tag="loans")
def list_products(request: Any) -> dict[str, Any]:
    return {"items": [p.to_api() for p in catalog.list_products()]}


@route(bp, "/v1/me/offers", "GET", summary="Products the user's credit line qualifies for",
       tag="loans", auth="bearer")
def offers(request: Any, principal: str) -> dict[str, Any]:
    return {"items": credit.offers(principal, catalog.list_products(), _now())}


@route(bp, "/v1/me/credit-report", "GET", summary="Your credit report (信用报告): the latest "
       "decision's grade and factors, your credit line and your record with us", tag="loans",
       auth="bearer")
def credit_report(request: Any, principal: str) -> dict[str, Any]:
    return report.credit_report(principal, _now(), _lang(request))


_FEN = "in fen (1 CNY = 100 fen)"


class Applicant(ApiModel):
    monthly_income: int = Field(ge=0, le=10**10, description=f"Monthly income {_FEN}.",
                                examples=[2_000_000])
    monthly_expenses: int = Field(ge=0, le=10**10, description=f"Monthly expenses {_FEN}.",
                                  examples=[400_000])
    assets: int = Field(ge=0, le=10**12, description=f"Assets {_FEN}.", examples=[50_000_000])
    debt: int = Field(ge=0, le=10**12, description=f"Debt outstanding {_FEN}.", examples=[0])
    job_type: Literal["fixed", "freelance", "partime", "others"] = Field(examples=["fixed"])
    job_seniority_years: int = Field(ge=0, le=60, examples=[8])
    home: Literal["owner", "rent", "parents", "priv", "other"] = Field(examples=["owner"])
    # Accepted, optional, and never read: no decision rests on marital status (contract).
    marital_status: Literal["single", "married", "widow", "separated", "divorced"] | None = Field(
        default=None, examples=["married"])


class ApplicationBody(ApiModel):
    product_id: str = Field(min_length=1, max_length=64, examples=["revolving-credit"],
                            description="A product of GET /v1/products (else 422 PRODUCT_NOT_FOUND).")
    amount: int = Field(gt=0, examples=[5_000_000], description=(
        f"The amount asked for, {_FEN}: within the product's min_amount..max_amount "
        "(else 422 AMOUNT_OUT_OF_RANGE)."))
    term_months: int = Field(ge=1, le=36, examples=[12], description=(
        "One of the product's term_months (else 422 TERM_NOT_OFFERED)."))
    purpose: str = Field(min_length=1, max_length=200, examples=["装修"])
    applicant: Applicant
    # Only for business loans to sole proprietors (个体工商户): the 18-character unified social
    # credit code (GB 32100) of the business.
    business_credit_code: str | None = Field(
        default=None, min_length=18, max_length=18, json_schema_extra={"pattern": USCC_PATTERN},
        description="Only for business loans (kind `business_loan`): the business's unified social "
                    "credit code (统一社会信用代码). Other products refuse it (422 "
                    "BUSINESS_CREDIT_CODE_NOT_ACCEPTED).")


@route(bp, "/v1/applications", "POST", summary="Apply for credit; decided at once", tag="loans",
       body=ApplicationBody, auth="bearer", status=201, idempotent=True,
       errors=("403 IDENTITY_REQUIRED", "409 CREDIT_LINE_BUSY", "422 AMOUNT_OUT_OF_RANGE",
               "422 TERM_NOT_OFFERED", "422 PRODUCT_NOT_FOUND", "422 BUSINESS_CREDIT_CODE_INVALID",
               "422 BUSINESS_CREDIT_CODE_NOT_ACCEPTED"))
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
    application_id: str = Field(
        min_length=1, max_length=64, examples=["6f1c2a9e-3b7d-4c1e-9a51-0d2f8e4b7c13"],
        description="The approved application that set your credit line (an older one is 409 "
                    "APPLICATION_SUPERSEDED).")
    amount: int = Field(gt=0, examples=[1_000_000], description=(
        f"The principal to draw, {_FEN}: at most the line's available amount (422 "
        "CREDIT_LIMIT_EXCEEDED) and within the product's min_amount..max_amount."))
    term_months: int = Field(ge=1, le=36, examples=[6],
                             description="One of the product's term_months.")
    repayment_method: Literal["equal_installment", "equal_principal", "interest_first"] = Field(
        examples=["equal_installment"], description="等额本息, 等额本金 or 先息后本; one the product offers.")
    bank_card_id: str = Field(
        min_length=1, max_length=64, examples=["0b9d4c7e-52a1-4f3e-8d6a-7c2e1f9b3a58"],
        description="One of your cards (POST /v1/me/bank-cards): the payout goes there.")
    disburse_at: str | None = Field(default=None, max_length=64, json_schema_extra={"format": "date-time"},
                                    examples=["2027-01-10T09:00:00+08:00"], description=(
        "When to pay out: an RFC 3339 time with its offset, from now to 7 days ahead (else 422 "
        "DISBURSE_AT_INVALID). Default: now."))


# RFC 3339 date-time (the OpenAPI `date-time` format): date, T, time, optional fraction, offset.
_RFC3339 = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _parse_instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    from chalicelib.core.errors import RuleViolation
    found = _RFC3339.fullmatch(text)
    try:
        if not found:
            raise ValueError(text)
        day, clock, fraction, offset = found.groups()
        offset = "+00:00" if offset in ("Z", "z") else offset
        return datetime.fromisoformat(f"{day}T{clock}{(fraction or '')[:7]}{offset}")
    except ValueError:
        raise RuleViolation("disburse_at must be an RFC 3339 time with an offset, e.g. "
                            "2027-01-10T09:00:00+08:00.", code="DISBURSE_AT_INVALID") from None


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
    status: Literal["approved", "declined"] = Field(examples=["approved"])
    credit_limit: int | None = Field(default=None, gt=0, examples=[3_000_000], description=(
        "Needed to approve: the credit limit in fen, at most the product's max_amount."))
    note: str = Field(min_length=1, max_length=500, examples=["收入证明已核实"],
                      description="Internal; never shown to the borrower.")


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


# 03:00 Asia/Shanghai = 19:00 UTC, once close of business (00:05) has moved the buckets.
@bp.schedule(Cron(0, 19, "*", "*", "?", "*"))
@observed
def portfolio_check(event: Any) -> dict[str, Any]:
    """Nightly: the portfolio's counters against a recount of every loan; any difference is
    logged cell by cell and counted in `PortfolioDrift`, whose alarm pages."""
    return ops.check_portfolio(parse_instant(event.time))


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
