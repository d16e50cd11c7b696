"""Messages that must wait until a time (an SMS held back by quiet hours).

The time is in the application, not in the queue: the message body carries its
`deliver_after` (an ISO instant), and its consumer compares it with the service's clock and
defers the message again while that time has not come. How a message waits depends on the
stage:

- deployed: on its queue, with SQS DelaySeconds, at most 15 minutes; a message held overnight
  comes back every 15 minutes and is deferred again until its time;
- local: parked in the local stack's table until the local stack's clock passes its time
  (`chalicelib.adapters.testclock`): SQS delays run on moto's wall clock, which `make jobs` does
  not move, so a delayed message would neither wait for that clock nor let `make jobs` drain.
"""
from __future__ import annotations

import math
from datetime import datetime

from chalicelib.adapters import aws
from chalicelib.core import config

MAX_SQS_DELAY = 900  # seconds: SQS's limit


def parks_locally() -> bool:
    return config.is_local()


def sqs_delay(until: datetime, now: datetime) -> int:
    """The DelaySeconds that brings a message back at `until`, or after 15 minutes."""
    return max(1, min(MAX_SQS_DELAY, math.ceil((until - now).total_seconds())))


def defer(queue_key: str, body: str, until: datetime, now: datetime) -> None:
    """Send `body` (which must carry `until` itself) to the queue `queue_key` so that its
    consumer gets it again no earlier than `until` by the service's clock, or, deployed, up to
    15 minutes earlier for another deferral."""
    if parks_locally():
        from chalicelib.adapters import testclock
        testclock.park(queue_key, body, until)
        return
    aws.client("sqs").send_message(QueueUrl=aws.queue_url(queue_key), DelaySeconds=sqs_delay(until, now),
                                   MessageBody=body)
