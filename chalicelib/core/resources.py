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
    # Most concurrent consumer instances the event source invokes (SQS ScalingConfig, 2-1000).
    # Never reserved concurrency on the function: that throttles the poller, whose throttled
    # receives count towards maxReceiveCount and push messages to the dead-letter queue.
    max_concurrency: int
    max_receive_count: int = 5  # receives before a message goes to the dead-letter queue


@dataclass(frozen=True)
class SecretSpec:
    key: str  # the secret is `<prefix>/<key>`
    description: str
    generated: bool  # True: random value generated at creation; False: an operator sets it
    written_by_app: bool = False  # created holding {} and filled by the app itself, never by hand
    local_only: bool = False  # read by the `local` stage only; no deployed function may read it
    # A partner's settings, which an operator fills after the first deploy (created as `{}`):
    # each must be a non-empty string; a `base_url` must be https. See `chalicelib/core/settings.py`.
    fields: tuple[str, ...] = ()
    used_by: tuple[str, ...] = ()  # the functions that read it (GET /health checks the API's)


QUEUES: tuple[QueueSpec, ...] = (
    # Two payouts at a time: the bank's transfer API is the bottleneck, not the queue.
    QueueSpec(key="disbursements", consumer="disbursement_consumer", batch_size=5, max_concurrency=2),
    QueueSpec(key="notifications", consumer="notification_consumer", batch_size=10, max_concurrency=5),
    # Close of business fans out: one message per late loan (issue 17). Ten consumers at a time
    # keep DynamoDB's on-demand write rate well inside what a fresh table takes.
    QueueSpec(key="closing", consumer="close_of_business_consumer", batch_size=10, max_concurrency=10),
    # The day's reminders, one page (reminder day, index shard) per message: a page queues its
    # texts for the notification consumer, which sends them.
    QueueSpec(key="reminding", consumer="reminder_consumer", batch_size=1, max_concurrency=5),
)

SECRETS: tuple[SecretSpec, ...] = (
    SecretSpec("hmac", "Keys for keyed hashes (OTP codes, ID-number and phone lookups)", True),
    SecretSpec("ops", "Shared key for /v1/ops in the local stage only", True, local_only=True),
    # Sent by the page's CloudFront distribution to the API as X-Origin-Verify (infra/web.py):
    # only with it does the API take the viewer's address CloudFront passes (auth/routes.py).
    SecretSpec("origin", "Header value CloudFront sends the API so it trusts the viewer address", True),
    SecretSpec("wechat", "WeChat app id and secret for OAuth", False,
               fields=("app_id", "app_secret"), used_by=("api_handler",)),
    # Not generated: CloudFormation cannot make a key pair. Created holding {}, the app writes
    # the Ed25519 key set on first use (chalicelib/auth/tokens.py; needs PutSecretValue), and
    # its public halves to `jwks`, which is all that token verification (the authorizer) reads.
    SecretSpec("jwt", "Ed25519 key pairs signing access and refresh tokens (JWT)", False,
               written_by_app=True),
    SecretSpec("jwks", "Public halves of the JWT signing keys, for verification only", False,
               written_by_app=True),
    SecretSpec("realname", "Real-name verification vendor: base_url, app_id, app_secret", False,
               fields=("base_url", "app_id", "app_secret"), used_by=("api_handler",)),
    SecretSpec("payout", "Bank payout API: base_url, merchant_id, signing_key", False,
               fields=("base_url", "merchant_id", "signing_key"), used_by=("disbursement_consumer",)),
    SecretSpec("wallet", "Wallet debit API for repayments: base_url, merchant_id, signing_key", False,
               fields=("base_url", "merchant_id", "signing_key"),
               used_by=("api_handler", "repayment_reconciler")),
)

PARTNER_SECRETS: tuple[SecretSpec, ...] = tuple(spec for spec in SECRETS if spec.fields)


def secret_spec(key: str) -> SecretSpec:
    for spec in SECRETS:
        if spec.key == key:
            return spec
    raise KeyError(key)


def queue_spec(key: str) -> QueueSpec:
    for spec in QUEUES:
        if spec.key == key:
            return spec
    raise KeyError(key)
