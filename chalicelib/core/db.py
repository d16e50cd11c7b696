"""pynamodb plumbing: the shared Meta, integer-fen attributes and the table registry.

The pynamodb models are the single description of every table: the merge template and the
local stack are both generated from `TABLES` (see infra/).
"""
from __future__ import annotations

from typing import Any, TypeVar

from pynamodb.attributes import NumberAttribute
from pynamodb.models import Model

from chalicelib.core import config

TABLES: list[type[Model]] = []
M = TypeVar("M", bound=type[Model])


def register_table(model: M) -> M:
    TABLES.append(model)
    return model


class BaseMeta:
    region = config.region()
    billing_mode = "PAY_PER_REQUEST"
    max_retry_attempts = 3
    connect_timeout_seconds = 2
    read_timeout_seconds = 5


class FenAttribute(NumberAttribute):
    """An amount of money in integer fen: refuses floats going in, returns int coming out."""

    def serialize(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"money must be integer fen, got {type(value).__name__}")
        return str(value)

    def deserialize(self, value: str) -> int:
        return int(value)


class IntAttribute(FenAttribute):
    """A whole number (counts, versions, months) stored exactly."""


def condition_failed(err: Exception) -> bool:
    """True when a pynamodb write (or a transaction) failed only because of its condition."""
    if getattr(err, "cause_response_code", None) == "ConditionalCheckFailedException":
        return True
    reasons = getattr(err, "cancellation_reasons", None) or []
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)


# AWS answers that mean "not now", not "not so": the request may be retried as it was.
TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
    "TransactionConflict", "ThrottlingError", "TransactionConflictException"})


def transient(err: BaseException) -> bool:
    """True when a DynamoDB/AWS call failed for a reason that passes (throttling, a conflict
    with another transaction, the service unavailable or unreachable): answer 503, not 500."""
    from botocore.exceptions import BotoCoreError, ClientError
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, BotoCoreError):
            return True
        if isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") in TRANSIENT_CODES:
            return True
        if getattr(err, "cause_response_code", None) in TRANSIENT_CODES:
            return True
        reasons = getattr(err, "cancellation_reasons", None) or []
        if any(r is not None and r.code in TRANSIENT_CODES for r in reasons):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1  # type: ignore[assignment]
    return False


def transact_connection():  # type: ignore[no-untyped-def]
    """pynamodb's TransactWrite needs an explicit connection: one per container, made on first
    use (never at import). A new one per transaction built a new botocore client each time,
    0.1-0.25 s. Kept with the other clients, so `aws.reset()` drops it too."""
    from chalicelib.core import aws

    def make():  # type: ignore[no-untyped-def]
        from pynamodb.connection import Connection
        return Connection(region=config.region())
    return aws.cached("pynamodb-transact-connection", make)
