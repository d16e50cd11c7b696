"""The local event pump against SQS (moto): consumption, partial failures, the DLQ."""
from __future__ import annotations

import json

from app import app
from chalicelib.adapters import aws
from infra.pump import QueuePump


def send(body) -> None:
    aws.client("sqs").send_message(QueueUrl=aws.queue_url("notifications"),
                                   MessageBody=body if isinstance(body, str) else json.dumps(body))


def dlq_count() -> int:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName="lending-local-notifications-dlq")["QueueUrl"]
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"])


def test_good_messages_are_consumed_and_a_poison_one_reaches_the_dlq(aws_stack, outbox):
    good = {"notification_id": "n-1", "user_id": "u-1", "kind": "disbursed", "channel": "push",
            "to": "endpoint-1", "text": "放款成功", "loan_id": "loan-1"}
    send(good)
    send("poison")
    pump = QueuePump(app, retry_delay=0)
    pump.drain(timeout_seconds=30)
    assert [json.loads(line)["text"] for line in outbox.read_text().splitlines()] == ["放款成功"]
    assert pump.pending() == 0
    assert dlq_count() == 1
