"""HTTP routes and event handlers of the loans slice."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from chalice import Blueprint, Rate
from pydantic import Field

from chalicelib.core import config
from chalicelib.core.http import ApiModel, route
from chalicelib.core.observability import observed
from chalicelib.core.resources import queue_spec
from chalicelib.loans import catalog, disbursement, service

bp = Blueprint(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@route(bp, "/v1/products", "GET", summary="Loan products with their APR range", tag="loans")
def list_products(request: Any) -> dict[str, Any]:
    return {"items": [p.to_api() for p in catalog.list_products()]}


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
       errors=("404 APPLICATION_NOT_FOUND", "409 APPLICATION_NOT_APPROVED", "422 CREDIT_LIMIT_EXCEEDED",
               "422 AFFORDABILITY", "422 DISBURSE_AT_INVALID"))
def draw_loan(request: Any, body: DrawBody, principal: str) -> dict[str, Any]:
    return service.draw(principal, service.DrawRequest(
        application_id=body.application_id, amount=body.amount, term_months=body.term_months,
        repayment_method=body.repayment_method, bank_card_id=body.bank_card_id,
        disburse_at=_parse_instant(body.disburse_at)), _now())


@route(bp, "/v1/loans", "GET", summary="The user's loans", tag="loans", auth="bearer")
def list_loans(request: Any, principal: str) -> dict[str, Any]:
    return {"items": service.list_loans(principal)}


@route(bp, "/v1/loans/{loan_id}", "GET", summary="One loan with its schedule", tag="loans",
       auth="bearer", errors=("404 LOAN_NOT_FOUND",))
def get_loan(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    return service.get_loan(principal, loan_id)


@route(bp, "/v1/loans/{loan_id}/cancel", "POST", summary="Cancel a loan not yet paid out",
       tag="loans", auth="bearer", errors=("404 LOAN_NOT_FOUND", "409 LOAN_NOT_CANCELLABLE"))
def cancel_loan(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    return service.cancel(principal, loan_id, _now())


@bp.schedule(Rate(1, unit=Rate.MINUTES))
@observed
def disbursement_sweep(event: Any) -> dict[str, int]:
    """Every minute: queue the loans whose disbursement time has come (as of the event time)."""
    return disbursement.sweep(datetime.fromisoformat(event.time.replace("Z", "+00:00")))


_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _handle_disbursement(record: Any) -> None:
    loan_id = json.loads(record.body)["loan_id"]
    disbursement.disburse(loan_id, _now())


@bp.on_sqs_message(queue=config.queue_name("disbursements"),
                   batch_size=queue_spec("disbursements").batch_size)
@observed
def disbursement_consumer(event: Any) -> dict[str, Any]:
    """Pays out each queued loan at most once; failed records are retried, then dead-lettered."""
    return process_partial_response(event=event.to_dict(), record_handler=_handle_disbursement,
                                    processor=_processor, context=event.context)
