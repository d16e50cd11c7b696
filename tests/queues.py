"""A queue and its consumer in the tests, as Lambda's SQS poller runs them on AWS: receive,
invoke the consumer with a Lambda-shaped SQS event, delete what it did not report failed, and
put the failed ones back for another try. The proof world and the route tests share it."""
from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws
from chalicelib.core.resources import QUEUES
from infra.lambda_events import sqs_event, sqs_record

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:lending-local-{key}"
CONSUMERS = {spec.key: spec.consumer for spec in QUEUES}


def receive(key: str) -> list[dict]:
    """Everything on a queue now (up to 10 per receive), each message once, taken off it."""
    sqs = aws.client("sqs")
    url = aws.queue_url(key)
    out: list[dict] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        out.extend(messages)


def consume(client: Any, key: str, messages: list[dict], batch_size: int = 10) -> set[str]:
    """Invoke the queue's consumer on `messages`, `batch_size` at a time (the event source's
    batch); returns the message ids it reported failed."""
    failed: set[str] = set()
    for start in range(0, len(messages), batch_size):
        batch = messages[start:start + batch_size]
        answer = client.lambda_.invoke(CONSUMERS[key], sqs_event([sqs_record(m, QUEUE_ARN.format(key=key))
                                                                  for m in batch])).payload
        failed |= {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    return failed


def drain(client: Any, key: str, rounds: int = 3) -> list[dict]:
    """Consume the queue, putting failed messages back for `rounds` tries; returns the
    messages still failing after that (on AWS they go on retrying, then to the DLQ)."""
    pending = receive(key)
    for _ in range(rounds):
        failed = consume(client, key, pending)
        pending = [m for m in pending if m["MessageId"] in failed] + receive(key)
        if not pending:
            break
    return pending
