"""Routes, schedules and queue consumers of the repay slice."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from chalice import Blueprint, Cron, Rate
from pydantic import Field

from chalicelib import wiring
from chalicelib.core import config, jobs
from chalicelib.core.clock import parse_instant, shanghai_date
from chalicelib.api.events import partial_batch
from chalicelib.api.http import ApiModel, date_param, route
from chalicelib.adapters.idempotency import money_key
from chalicelib.core.observability import logger, metrics, observed
from chalicelib.core.resources import queue_spec
from chalicelib.ledger import anchors
from chalicelib.repay import notifications, service

bp = Blueprint(__name__)


def _now() -> datetime:
    return wiring.clock().now()


@route(bp, "/v1/loans/{loan_id}/payoff", "GET", summary="What it takes to close the loan on a day",
       tag="repay", auth="bearer", query=("on",), errors=("404 LOAN_NOT_FOUND", "409 LOAN_NOT_ACTIVE",
                                                          "422 PAYOFF_DATE_INVALID"))
def payoff(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    raw = (request.query_params or {}).get("on")
    on = None if raw is None else date_param(raw, "on")
    return service.payoff(principal, loan_id, on, _now())


class RepaymentBody(ApiModel):
    amount: int = Field(gt=0, le=10**12, examples=[30_000], description=(
        "What you pay, in fen (1 CNY = 100 fen): what is due first (penalty, interest, principal), "
        "then the installment accruing now, then the rest prepays later principal. At most the "
        "payoff of today (GET /v1/loans/{loan_id}/payoff; else 422 OVERPAYMENT)."))


@route(bp, "/v1/loans/{loan_id}/repayments", "POST", summary="Repay part or all of a loan",
       tag="repay", body=RepaymentBody, auth="bearer", status=201, idempotent=True,
       errors=("404 LOAN_NOT_FOUND", "409 LOAN_NOT_ACTIVE", "409 LOAN_BUSY", "409 PAYMENT_PENDING",
               "422 OVERPAYMENT", "422 PAYMENT_DECLINED", "503 PAYMENT_PENDING",
               "503 REPAYMENT_UNAVAILABLE"))
def repay(request: Any, loan_id: str, body: RepaymentBody, principal: str) -> dict[str, Any]:
    return service.repay(principal, loan_id, body.amount, _now(), key=money_key(request, principal))


@route(bp, "/v1/me/notifications", "GET", summary="The user's in-app inbox", tag="repay", auth="bearer")
def inbox(request: Any, principal: str) -> dict[str, Any]:
    return {"items": notifications.inbox(principal)}


# 00:05 and 09:00 Asia/Shanghai (UTC+8, no daylight saving) = 16:05 and 01:00 UTC.
@bp.schedule(Cron(5, 16, "*", "*", "?", "*"))
@observed
def close_of_business(event: Any) -> dict[str, Any]:
    """Daily close for the Asia/Shanghai date of the event's time: a sweep that queues one
    message per late loan for `close_of_business_consumer` (overdue marks, penalties), then the
    ledger anchor of the day before. Neither grows with the book in one invocation beyond the
    late loans' ids (issue 17). A loan that fails is its message's business: retried by SQS,
    then in the `closing` dead-letter queue, whose alarm pages; tomorrow's sweep queues it
    again and its close catches up every day it missed."""
    at = parse_instant(event.time)
    business_date = shanghai_date(at)
    summary = service.queue_close_of_business(business_date, at)
    # The day just ended is anchored (docs/LEDGER.md); its own failure fails the run too, so
    # Lambda retries it: every step of both is idempotent.
    try:
        summary["anchored"] = [a["date"] for a in anchors.anchor_through(business_date - timedelta(days=1), at)
                               if a["written"]]
    except Exception:  # noqa: BLE001
        logger.exception("ledger anchoring failed", extra={"business_date": business_date.isoformat()})
        metrics.add_metric(name="LedgerAnchorFailed", unit="Count", value=1)
        summary["failed_anchors"] = [(business_date - timedelta(days=1)).isoformat()]
    return jobs.raise_if_incomplete("close of business: ledger anchor", summary, "failed_anchors")


def _handle_closing(record: Any) -> None:
    body = json.loads(record.body)
    last_try = int(record.attributes.approximate_receive_count) >= queue_spec("closing").max_receive_count
    service.close_one(body["loan_id"], date.fromisoformat(body["business_date"]), parse_instant(body["at"]),
                      last_try=last_try)


@bp.on_sqs_message(queue=config.queue_name("closing"), batch_size=queue_spec("closing").batch_size)
@observed
def close_of_business_consumer(event: Any) -> dict[str, Any]:
    """Closes each queued loan for its business date; failed records come back alone."""
    return partial_batch(event, _handle_closing)


@bp.schedule(Cron(0, 1, "*", "*", "?", "*"))
@observed
def reminders(event: Any) -> dict[str, int]:
    """Daily reminders for the Asia/Shanghai date of the event's time: a sweep that queues
    one page per (reminder day, index shard) for `reminder_consumer` (issue 17)."""
    return service.queue_reminders(shanghai_date(parse_instant(event.time)))


def _handle_reminder_page(record: Any) -> None:
    page = json.loads(record.body)
    service.remind_page(date.fromisoformat(page["business_date"]), int(page["offset"]), int(page["shard"]))


@bp.on_sqs_message(queue=config.queue_name("reminding"), batch_size=queue_spec("reminding").batch_size)
@observed
def reminder_consumer(event: Any) -> dict[str, Any]:
    """Queues the reminders of each page; a page that fails comes back alone."""
    return partial_batch(event, _handle_reminder_page)


@bp.schedule(Rate(5, unit=Rate.MINUTES))
@observed
def repayment_reconciler(event: Any) -> dict[str, Any]:
    """Every 5 minutes: settle repayments a dead function left between the debit and the write.
    An intent that cannot be settled is retried, then reported by raising once the others
    are done (see `chalicelib.core.jobs`); the next run tries it again."""
    return jobs.raise_if_incomplete("repayment reconciler",
                                    service.reconcile_repayments(parse_instant(event.time)),
                                    "failed_repayments")


def _handle_notification(record: Any) -> None:
    notifications.deliver(notifications.NotificationMessage.model_validate(json.loads(record.body)))


@bp.on_sqs_message(queue=config.queue_name("notifications"),
                   batch_size=queue_spec("notifications").batch_size)
@observed
def notification_consumer(event: Any) -> dict[str, Any]:
    """Sends each queued notification once; failed records are reported, not the whole batch."""
    return partial_batch(event, _handle_notification)
