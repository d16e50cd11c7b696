"""pynamodb plumbing: the shared Meta, integer-fen attributes and the table registry.

The pynamodb models are the single description of every table: the merge template and the
local stack are both generated from `TABLES` (see infra/).
"""
from __future__ import annotations

import zlib
from typing import Any, TypeVar

from pynamodb.attributes import Attribute, NumberAttribute
from pynamodb.constants import BINARY
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


class CompressedTextAttribute(Attribute[str]):
    """Text the code reads and writes as `str`, stored as zlib-compressed binary: for a large,
    repetitive document (a loan's schedule state, about 4 KB of JSON, 0.6 KB compressed)
    written often, since DynamoDB bills every write by the started kilobyte of the item. Not
    for a key or anything a condition or an index compares."""

    attr_type = BINARY

    def serialize(self, value: str) -> bytes:
        return zlib.compress(value.encode(), 6)

    def deserialize(self, value: bytes) -> str:
        return zlib.decompress(value).decode()


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


CONFLICT_RETRIES = 4  # sends of a transaction DynamoDB cancelled for another one in flight


def conflict_only(err: Exception) -> bool:
    """True when a transaction was cancelled only because another transaction was in flight on
    one of its items (TransactionConflict): it wrote nothing, and may be sent again as it was."""
    codes = {r.code for r in (getattr(err, "cancellation_reasons", None) or []) if r is not None}
    return "TransactionConflict" in codes and codes <= {"TransactionConflict", "None"}


def transact_connection():  # type: ignore[no-untyped-def]
    """pynamodb's TransactWrite needs an explicit connection: one per container, made on first
    use (never at import). A new one per transaction built a new botocore client each time,
    0.1-0.25 s. Kept with the other clients, so `aws.reset()` drops it too.

    A transaction cancelled only by a conflict with another one in flight (the portfolio's
    counter shards are shared by every loan) is sent again, after a short random pause, up to
    CONFLICT_RETRIES times; any other failure, a condition above all, is the caller's."""
    from chalicelib.adapters import aws

    def make():  # type: ignore[no-untyped-def]
        import random
        import time

        from pynamodb.connection import Connection
        from pynamodb.exceptions import TransactWriteError

        class RetryingConnection(Connection):
            def transact_write_items(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                for attempt in range(CONFLICT_RETRIES):
                    try:
                        return super().transact_write_items(*args, **kwargs)
                    except TransactWriteError as err:
                        if attempt == CONFLICT_RETRIES - 1 or not conflict_only(err):
                            raise
                        time.sleep(random.uniform(0.005, 0.025) * (attempt + 1))
                raise AssertionError("unreachable")

        return RetryingConnection(region=config.region())
    return aws.cached("pynamodb-transact-connection", make)
