"""The local stack's one clock, and the messages that wait for it (stage `local` only).

Like a payment provider's test clock: the clock starts at the wall clock and runs on from
there; `make jobs AT=...` moves it forward to AT (`advance_to`), never back. Everything in the
local stack reads it through `wiring.clock()`: the API, the consumers and the scheduler in the
`make run` process, and the jobs and the queue drain in the `make jobs` process. Deployed
stages never use it: `wiring.clock()` is the wall clock there.

Where it lives: the two processes share only the embedded AWS (moto), so the clock is one
item there, in the local-only DynamoDB table `<prefix>-stack`, i.e. `lending-local-stack`
(`infra/bootstrap.py` creates it for the local stage only; it is no pynamodb model, so
neither the deploy template nor the IAM policies know it). The item holds the clock's offset from the wall clock in
microseconds: now = wall clock + offset. Each process caches the offset for `CACHE_SECONDS`;
`make jobs` waits that long after moving the clock, so that every reader has the new time
before any job runs.

Messages that wait: an SMS held back by quiet hours must go out once *this* clock passes its
time, but SQS's DelaySeconds runs on moto's wall clock. So in the local stage a deferred
message is parked in the same table (pk `deferred#<queue key>`, sk `<deliver_after as fixed-
width UTC>#<id>`, the body as sent) and the event pump puts each parked message whose time
has come back on its queue (`release_due`): every second in the `make run` process, and in
`make jobs`' drain, which then returns with the later ones still parked. See
`chalicelib.adapters.deferral` for the deployed path.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.adapters import aws
from chalicelib.core import config

CACHE_SECONDS = 0.5
_CLOCK_KEY = {"pk": {"S": "clock"}, "sk": {"S": "offset"}}


def table_name() -> str:
    return config.table_name("stack")


def create_table() -> str:
    """The local stack's own table (the local stage's bootstrap calls it; nothing else)."""
    ddb = aws.client("dynamodb")
    name = table_name()
    try:
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
    except ddb.exceptions.ResourceInUseException:
        pass
    return name


def _wall() -> datetime:
    return datetime.now(timezone.utc)


def read_offset() -> timedelta:
    """The clock's offset from the wall clock as stored (zero before the first move)."""
    ddb = aws.client("dynamodb")
    try:
        item = ddb.get_item(TableName=table_name(), Key=_CLOCK_KEY, ConsistentRead=True).get("Item")
    except ddb.exceptions.ResourceNotFoundException:
        return timedelta(0)
    return timedelta(microseconds=int(item["offset_us"]["N"])) if item else timedelta(0)


class TestClock:
    """`now()` = the wall clock + the shared offset, read at most every CACHE_SECONDS."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._read_at = float("-inf")

    def offset(self) -> timedelta:
        with self._lock:
            if time.monotonic() - self._read_at >= CACHE_SECONDS:
                self._offset = read_offset()
                self._read_at = time.monotonic()
            return self._offset

    def now(self) -> datetime:
        return _wall() + self.offset()

    def forget(self) -> None:
        """Read the offset again at the next `now()`."""
        with self._lock:
            self._read_at = float("-inf")

    def advance_to(self, at: datetime) -> bool:
        """Move the clock forward to `at`; False (and no change) when the clock is already at
        or past it. Atomic, so two `make jobs` at once can never move it back."""
        if at.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        ddb = aws.client("dynamodb")
        wanted = at - _wall()
        offset_us = (wanted.days * 86_400 + wanted.seconds) * 1_000_000 + wanted.microseconds
        try:
            ddb.update_item(TableName=table_name(), Key=_CLOCK_KEY,
                            UpdateExpression="SET offset_us = :o",
                            ConditionExpression="attribute_not_exists(offset_us) OR offset_us < :o",
                            ExpressionAttributeValues={":o": {"N": str(offset_us)}})
        except ddb.exceptions.ConditionalCheckFailedException:
            moved = False
        else:
            moved = True
        self.forget()
        return moved


CLOCK = TestClock()


# ---------------------------------------------------------------- messages parked until a time

def _sort_stamp(at: datetime) -> str:
    """Fixed-width UTC text, so that the table's sort order is time order."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def park(queue_key: str, body: str, deliver_after: datetime) -> None:
    """Keep a message out of its queue until the clock passes `deliver_after`."""
    aws.client("dynamodb").put_item(TableName=table_name(), Item={
        "pk": {"S": f"deferred#{queue_key}"}, "sk": {"S": f"{_sort_stamp(deliver_after)}#{uuid.uuid4()}"},
        "body": {"S": body}})


def parked(queue_key: str) -> list[dict[str, Any]]:
    """Every message parked for a queue, earliest first: {"deliver_after", "body"}."""
    ddb = aws.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table_name(), "KeyConditionExpression": "pk = :pk",
                              "ExpressionAttributeValues": {":pk": {"S": f"deferred#{queue_key}"}},
                              "ConsistentRead": True}
    while True:
        page = ddb.query(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [{"deliver_after": item["sk"]["S"].split("#", 1)[0], "body": item["body"]["S"]} for item in items]


def release_due(queue_key: str, now: datetime) -> int:
    """Put every parked message whose time has come by `now` on its queue; returns how many.
    Sent first, then unparked, so a drain never finds a message in neither place; two
    processes releasing at once may both send it (consumers are idempotent, as SQS's
    at-least-once delivery requires anyway)."""
    ddb = aws.client("dynamodb")
    pk = f"deferred#{queue_key}"
    try:
        due = ddb.query(TableName=table_name(), ConsistentRead=True,
                        KeyConditionExpression="pk = :pk AND sk <= :upto",
                        ExpressionAttributeValues={":pk": {"S": pk},
                                                   ":upto": {"S": _sort_stamp(now) + "#~"}}).get("Items", [])
    except ddb.exceptions.ResourceNotFoundException:
        return 0
    for item in due:
        aws.client("sqs").send_message(QueueUrl=aws.queue_url(queue_key), MessageBody=item["body"]["S"])
        ddb.delete_item(TableName=table_name(), Key={"pk": item["pk"], "sk": item["sk"]})
    return len(due)


# ---------------------------------------------------------------- GET /v1/ops/clock

def blueprint(now: Any) -> Any:
    """The route `GET /v1/ops/clock` -> {"now"} (Asia/Shanghai), for the local stage only:
    `app.py` calls this only there, so deployed stages have neither the route nor its entry
    in the OpenAPI document. `now` is the service's clock (`wiring.clock().now`)."""
    from chalice import Blueprint

    from chalicelib.core.clock import SHANGHAI
    from chalicelib.api.http import route

    bp = Blueprint(__name__)

    @route(bp, "/v1/ops/clock", "GET", summary="The local stack's clock (local stage only)",
           tag="ops", auth="ops")
    def ops_clock(request: Any, principal: str) -> dict[str, str]:
        return {"now": now().astimezone(SHANGHAI).isoformat(timespec="seconds")}

    return bp
