"""The local stack's event pump: what Lambda's SQS pollers and EventBridge do in AWS.

Consumers get Lambda-shaped SQS events with each message's own id; records a handler reports
in `batchItemFailures` (or all of them, if it raises) stay on the queue and come back after
`retry_delay` seconds, so the queue's redrive policy moves a poison message to its DLQ after
`maxReceiveCount` receives. Messages parked until a time (`chalicelib.adapters.testclock`) go back
on their queue once the service's clock passes it. Schedules fire at their cron/rate times by
the service's clock (the local stack's one clock).
"""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from chalice.app import SQSEventConfig, ScheduledEventConfig

from chalicelib import wiring
from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.observability import logger
from chalicelib.core.resources import QUEUES
from infra.lambda_events import LambdaContext, scheduled_event, sqs_event, sqs_record
from infra.stage import function_setting


class QueuePump:
    def __init__(self, chalice_app: Any, stage: str = "local", retry_delay: int = 1) -> None:
        self.app = chalice_app
        self.stage = stage
        self.retry_delay = retry_delay
        known = {config.queue_name(spec.key): spec for spec in QUEUES}
        self.consumers = []
        for source in chalice_app.event_sources:
            if isinstance(source, SQSEventConfig) and source.queue in known:
                self.consumers.append((known[source.queue], source))

    def _invoke(self, source: SQSEventConfig, event: dict[str, Any]) -> set[str]:
        """Run the consumer; return the message ids that failed."""
        handler = self.app.handler_map[source.name]
        timeout = int(function_setting(self.stage, source.name, "lambda_timeout", 60))
        try:
            result = handler(event, LambdaContext(source.name, timeout, region=config.region()))
        except Exception:  # noqa: BLE001 - a crashed invocation fails the whole batch
            logger.exception("consumer crashed", extra={"function": source.name})
            return {r["messageId"] for r in event["Records"]}
        failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
        return {f["itemIdentifier"] for f in failures}

    def poll_once(self, spec: Any, source: SQSEventConfig, wait_seconds: int = 0) -> int:
        sqs = aws.client("sqs")
        url = aws.queue_url(spec.key)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, source.batch_size),
                                       WaitTimeSeconds=wait_seconds, AttributeNames=["All"])
        messages = received.get("Messages", [])
        if not messages:
            return 0
        arn = f"arn:aws:sqs:{config.region()}:123456789012:{source.queue}"
        failed = self._invoke(source, sqs_event([sqs_record(m, arn, config.region()) for m in messages]))
        for message in messages:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=self.retry_delay)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def pending(self) -> int:
        """Messages visible or in flight on all consumed queues."""
        sqs = aws.client("sqs")
        total = 0
        for spec, _ in self.consumers:
            attrs = sqs.get_queue_attributes(
                QueueUrl=aws.queue_url(spec.key),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
            total += sum(int(v) for v in attrs.values())
        return total

    @staticmethod
    def _dlq_url(key: str) -> str:
        return aws.client("sqs").get_queue_url(QueueName=config.queue_name(key) + "-dlq")["QueueUrl"]

    def dead_letters(self) -> dict[str, int]:
        """Messages in each consumed queue's dead-letter queue, by queue key."""
        sqs = aws.client("sqs")
        return {spec.key: int(sqs.get_queue_attributes(
            QueueUrl=self._dlq_url(spec.key), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]) for spec, _ in self.consumers}

    def dead_ids(self, key: str) -> list[str]:
        """The ids (`loan_id`, `repayment_id`, else the message id) of up to 10 messages in a
        dead-letter queue, read without taking them: an operator redrives or reads them."""
        ids = []
        for message in aws.client("sqs").receive_message(QueueUrl=self._dlq_url(key), MaxNumberOfMessages=10,
                                           VisibilityTimeout=0).get("Messages", []):
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = {}
            ids.append(str(body.get("loan_id") or body.get("repayment_id") or message["MessageId"])
                       if isinstance(body, dict) else message["MessageId"])
        return sorted(set(ids))

    def release_due(self) -> int:
        """Put the parked messages whose time has come by the service's clock on their queues."""
        from chalicelib.adapters import testclock
        now = wiring.clock().now()
        return sum(testclock.release_due(spec.key, now) for spec, _ in self.consumers)

    def drain(self, timeout_seconds: float = 120.0) -> None:
        """Consume until every queue is empty with nothing in flight, as of the service's
        clock: a message parked until a later time stays parked (or raise TimeoutError)."""
        deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout_seconds)
        while True:
            moved = self.release_due()
            moved += sum(self.poll_once(spec, source) for spec, source in self.consumers)
            if not moved and self.pending() == 0:
                return
            if datetime.now(timezone.utc) > deadline:
                raise TimeoutError(f"queues not drained after {timeout_seconds}s")
            if not moved:
                threading.Event().wait(0.2)

    def run(self, stop: threading.Event) -> list[threading.Thread]:
        threads = []
        for spec, source in self.consumers:
            def loop(spec: Any = spec, source: SQSEventConfig = source) -> None:
                while not stop.is_set():
                    try:
                        self.poll_once(spec, source, wait_seconds=1)
                    except Exception:  # noqa: BLE001 - keep pumping; the error is logged
                        logger.exception("pump error", extra={"queue": spec.key})
                        stop.wait(1)
            thread = threading.Thread(target=loop, name=f"pump-{spec.key}", daemon=True)
            thread.start()
            threads.append(thread)

        def release() -> None:
            while not stop.wait(1):
                try:
                    self.release_due()
                except Exception:  # noqa: BLE001 - keep releasing; the error is logged
                    logger.exception("pump error releasing parked messages")
        thread = threading.Thread(target=release, name="pump-parked", daemon=True)
        thread.start()
        threads.append(thread)
        return threads


def schedules(chalice_app: Any) -> list[ScheduledEventConfig]:
    return [s for s in chalice_app.event_sources if isinstance(s, ScheduledEventConfig)]


def expression_text(source: ScheduledEventConfig) -> str:
    expression = source.schedule_expression
    return expression.to_string() if hasattr(expression, "to_string") else str(expression)


# Lambda retries a failed asynchronous invocation (an EventBridge schedule's) twice, about one
# and then two more minutes later, with the same event; the local stack does the same.
ASYNC_RETRIES = 2
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))


def invoke_schedule(chalice_app: Any, source: ScheduledEventConfig, at: datetime) -> Any:
    """One invocation of a scheduled function with the event of `at`, with the function's
    configured timeout and memory in its context."""
    handler = chalice_app.handler_map[source.name]
    context = LambdaContext(source.name, int(function_setting("local", source.name, "lambda_timeout", 60)),
                            int(function_setting("local", source.name, "lambda_memory_size", 128)),
                            region=config.region())
    return handler(scheduled_event(at, source.name, config.region()), context)


def invoke_with_retries(chalice_app: Any, source: ScheduledEventConfig, at: datetime,
                        retries: int = ASYNC_RETRIES) -> Any:
    """What `make jobs` does for each schedule: the invocation, then Lambda's asynchronous
    retries of the same event at once (a job redoes only what failed). Raises the last error
    if every attempt failed."""
    for attempt in range(retries + 1):
        try:
            return invoke_schedule(chalice_app, source, at)
        except Exception:  # noqa: BLE001 - retried like Lambda; the last failure is raised
            logger.exception("schedule failed", extra={"schedule": source.name, "attempt": attempt + 1,
                                                       "of": retries + 1})
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def next_fire(expression: str, after: datetime) -> datetime:
    """Next time an EventBridge `rate(...)` or `cron(...)` expression fires after `after` (UTC)."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if rate:
        unit = rate.group(2).rstrip("s")
        step = timedelta(**{f"{unit}s": int(rate.group(1))})
        base = after.replace(second=0, microsecond=0)
        return base + step
    cron = re.fullmatch(r"cron\((.+)\)", expression)
    if not cron:
        raise ValueError(f"unsupported schedule expression {expression!r}")
    from croniter import croniter
    minute, hour, dom, month, dow, _year = cron.group(1).split()
    fields = " ".join(f.replace("?", "*") for f in (minute, hour, dom, month, dow))
    return croniter(fields, after.astimezone(timezone.utc)).get_next(datetime)


class Scheduler:
    """Fires every schedule of the app at its times by the service's clock (EventBridge's job
    in AWS), and retries a failed invocation with the same event a minute and then two minutes
    later, as Lambda retries an asynchronous invocation.

    When `make jobs` moves the clock forward, the fire times it jumps over are not fired (more
    than `JUMP` late): `make jobs` ran every job as of its AT; the schedules go on from there."""

    JUMP = timedelta(minutes=2)

    def __init__(self, chalice_app: Any) -> None:
        self.app = chalice_app

    def run(self, stop: threading.Event) -> threading.Thread:
        retrying: dict[str, tuple[datetime, int, datetime]] = {}  # name -> (event time, retry, when)

        def fire(source: ScheduledEventConfig, at: datetime, retry: int, now: datetime) -> None:
            retrying.pop(source.name, None)
            try:
                invoke_schedule(self.app, source, at)
            except Exception:  # noqa: BLE001 - logged; retried like Lambda, then left to the next run
                logger.exception("schedule failed", extra={"schedule": source.name, "retry": retry})
                if retry < ASYNC_RETRIES:
                    retrying[source.name] = (at, retry + 1, now + RETRY_DELAYS[retry])

        def loop() -> None:
            now = wiring.clock().now()
            due = {s.name: next_fire(expression_text(s), now) for s in schedules(self.app)}
            while not stop.is_set():
                now = wiring.clock().now()
                for source in schedules(self.app):
                    if source.name in retrying and retrying[source.name][2] <= now:
                        at, retry, _when = retrying[source.name]
                        fire(source, at, retry, now)
                    if due[source.name] <= now:
                        if now - due[source.name] <= self.JUMP:
                            fire(source, due[source.name], 0, now)
                        due[source.name] = next_fire(expression_text(source), now)
                stop.wait(1)
        thread = threading.Thread(target=loop, name="scheduler", daemon=True)
        thread.start()
        return thread
