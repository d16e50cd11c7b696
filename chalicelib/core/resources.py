"""The one description of queues and secrets; tables are the pynamodb models themselves.

`infra/template.py` turns these into CloudFormation, `infra/local_stack.py` creates them in
moto, and `infra/policy.py` scopes the IAM policies to them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueSpec:
    key: str  # short name; the queue is `<prefix>-<key>`, its DLQ `<prefix>-<key>-dlq`
    consumer: str  # name of the Lambda function that consumes it
    batch_size: int
    max_receive_count: int = 5  # receives before a message goes to the dead-letter queue


@dataclass(frozen=True)
class SecretSpec:
    key: str  # the secret is `<prefix>/<key>`
    description: str
    generated: bool  # True: random value generated at creation; False: an operator sets it


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(key="disbursements", consumer="disbursement_consumer", batch_size=5),
    QueueSpec(key="notifications", consumer="notification_consumer", batch_size=10),
)

SECRETS: tuple[SecretSpec, ...] = (
    SecretSpec("hmac", "Keys for keyed hashes (OTP codes, ID-number and phone lookups)", True),
    SecretSpec("ops", "Shared key for /v1/ops in the local stage only", True),
    SecretSpec("wechat", "WeChat app id and secret for OAuth", False),
)


def queue_spec(key: str) -> QueueSpec:
    for spec in QUEUES:
        if spec.key == key:
            return spec
    raise KeyError(key)
