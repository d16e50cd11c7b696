"""Delivering a notification exactly once per `notification_id`, and the in-app inbox."""
from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pynamodb.exceptions import PutError

from chalicelib import wiring
from chalicelib.adapters import aws
from chalicelib.adapters import deferral
from chalicelib.core.clock import SHANGHAI, parse_instant, shanghai_iso
from chalicelib.core.observability import logger, metrics
from chalicelib.repay.models import NotificationRecord

LEASE_SECONDS = 60
KINDS = ("due_soon", "due_today", "overdue", "disbursed", "disbursement_failed",
         "repayment_received", "loan_closed")


class NotificationMessage(BaseModel):
    """Body of a message on the notifications queue."""
    model_config = ConfigDict(extra="forbid")

    notification_id: str = Field(min_length=1, max_length=200)
    user_id: str = Field(min_length=1, max_length=64)
    kind: Literal[KINDS]  # type: ignore[valid-type]
    channel: Literal["sms", "push"]
    to: str | None = Field(default=None, min_length=1, max_length=256)  # resolved when absent
    text: str = Field(min_length=1, max_length=500)
    loan_id: str | None = None
    # Not before this instant (ISO 8601 with an offset): set when quiet hours hold an SMS back.
    deliver_after: str | None = Field(default=None, max_length=40)



def quiet_hours() -> tuple[time, time] | None:
    """Beijing-time window without SMS, from `SMS_QUIET_HOURS` ("21:00-08:00" by default;
    empty turns it off, e.g. for a test stack)."""
    raw = os.environ.get("SMS_QUIET_HOURS", "21:00-08:00").strip()
    if not raw:
        return None
    start, end = raw.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def quiet_until(now: datetime) -> datetime | None:
    """When SMS may be sent again, if `now` is in the quiet hours; else None."""
    window = quiet_hours()
    if window is None:
        return None
    start, end = window
    local = now.astimezone(SHANGHAI)
    if end <= local.time() < start:
        return None
    resume = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if local.time() >= start:
        resume += timedelta(days=1)
    return resume


def defer(message: "NotificationMessage", until: datetime, now: datetime) -> None:
    """Hold the message back until `until` by the service's clock (`chalicelib.adapters.deferral`:
    re-queued with an SQS delay of at most 15 minutes when deployed, and deferred again until
    its time; parked until the local stack's clock passes it locally)."""
    held = message.model_copy(update={"deliver_after": until.isoformat()})
    deferral.defer("notifications", held.model_dump_json(exclude_none=True), until, now)


class DeliveryInProgress(Exception):
    """Another consumer holds the lease on this notification: retry the message later."""


def _recipient(message: NotificationMessage) -> str:
    """The user's phone for SMS (looked up at send time, so the queue carries no phone
    number), or their in-app push address."""
    if message.channel == "sms":
        from chalicelib.loans.people import sms_phone
        phone = sms_phone(message.user_id)
        if phone:
            return phone
    return f"user:{message.user_id}"


def enqueue(*, notification_id: str, user_id: str, kind: str, text: str,
            loan_id: str | None = None, channel: str = "sms") -> None:
    """Put a notification on the notifications queue (the consumer sends it once)."""
    enqueue_many([NotificationMessage(notification_id=notification_id, user_id=user_id, kind=kind,
                                      channel=channel, text=text, loan_id=loan_id)])


def enqueue_many(messages: list[NotificationMessage]) -> None:
    """Queue messages ten to a request (SQS's batch size); raise if any is not accepted."""
    sqs = aws.client("sqs")
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        answer = sqs.send_message_batch(QueueUrl=aws.queue_url("notifications"), Entries=[
            {"Id": str(n), "MessageBody": m.model_dump_json(exclude_none=True)} for n, m in enumerate(chunk)])
        if answer.get("Failed"):
            raise RuntimeError(f"{len(answer['Failed'])} notifications were not queued")


def deliver(message: NotificationMessage, now: datetime | None = None) -> str:
    """Send once and file in the inbox. Returns "sent", "duplicate" or "deferred"."""
    now = now or wiring.clock().now()
    if message.deliver_after is not None and parse_instant(message.deliver_after) > now:
        defer(message, parse_instant(message.deliver_after), now)
        return "deferred"
    if message.channel == "sms":
        until = quiet_until(now)
        if until is not None:
            defer(message, until, now)
            return "deferred"
    epoch = int(now.timestamp())
    record = NotificationRecord(
        user_id=message.user_id, notification_id=message.notification_id, kind=message.kind,
        channel=message.channel, text=message.text, loan_id=message.loan_id,
        created_at=now.isoformat(), status="sending", lease_until=epoch + LEASE_SECONDS)
    claimable = NotificationRecord.notification_id.does_not_exist() | (
        (NotificationRecord.status != "sent") & (NotificationRecord.lease_until < epoch))
    try:
        record.save(condition=claimable)
    except PutError as err:
        if err.cause_response_code != "ConditionalCheckFailedException":
            raise
        existing = NotificationRecord.get(message.user_id, message.notification_id,
                                          consistent_read=True)
        if existing.status == "sent":
            metrics.add_metric(name="NotificationDuplicate", unit="Count", value=1)
            return "duplicate"
        raise DeliveryInProgress(message.notification_id) from None
    wiring.message_sender().send(message.channel, message.to or _recipient(message), message.text)
    record.update(actions=[NotificationRecord.status.set("sent")])
    logger.info("notification sent", extra={"notification_id": message.notification_id,
                                            "kind": message.kind, "channel": message.channel})
    metrics.add_metric(name="NotificationSent", unit="Count", value=1)
    return "sent"


INBOX_PAGE = 50


def inbox(user_id: str) -> list[dict]:
    """The user's latest notifications, newest first (texts are masked when written)."""
    records = NotificationRecord.inbox_by_created.query(user_id, scan_index_forward=False, limit=INBOX_PAGE)
    return [{"notification_id": r.notification_id, "kind": r.kind, "text": r.text,
             "loan_id": r.loan_id, "created_at": shanghai_iso(r.created_at)} for r in records]
