"""The contract's `Idempotency-Key` semantics, on Powertools Idempotency with DynamoDB.

Scope: the user, the method and the concrete path. The same key with the same body (compared
as parsed JSON) returns the first successful response and does nothing more; another body is
409 IDEMPOTENCY_KEY_REUSED; a duplicate that arrives while the first still runs is 409
IDEMPOTENCY_IN_PROGRESS; an attempt that did not succeed is not remembered (Powertools deletes
the record when the function raises, so non-2xx answers are raised through it).

Powertools writes its record after the function, outside the function's transaction: a
container that dies in between, or a failed record write, would let a retry act again. So a
route that moves money also keeps a `MoneyKey`: an item of the same table, keyed by the same
scope, written in the money write's own DynamoDB transaction with the answer it gave. A retry
that gets past Powertools finds it and answers the first result without acting.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError, IdempotencyValidationError)
from chalice import Response
from pynamodb.attributes import TTLAttribute, UnicodeAttribute
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, register_table
from chalicelib.core.errors import BadRequest, Conflict
from chalicelib.core.observability import logger

HEADER = "idempotency-key"
REMEMBER_SECONDS = 24 * 3600


@register_table
class IdempotencyRecord(Model):
    """Schema of Powertools' idempotency table (Powertools reads and writes the items)."""

    class Meta(BaseMeta):
        table_name = config.table_name("idempotency")

    id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(null=True)
    expiration = TTLAttribute(null=True)  # epoch seconds, written by Powertools
    # A money key's own attributes (items whose id starts with MONEY_PREFIX; see MoneyKey)
    body_hash = UnicodeAttribute(null=True)
    answer = UnicodeAttribute(null=True)  # JSON body of the first successful answer
    ref = UnicodeAttribute(null=True)  # the id of the attempt in flight (a repayment's id)


_persistence: DynamoDBPersistenceLayer | None = None
_lock = threading.Lock()


def _store() -> DynamoDBPersistenceLayer:
    """Created on first use (never at import, so moto and lazy clients work)."""
    global _persistence
    with _lock:
        if _persistence is None:
            _persistence = DynamoDBPersistenceLayer(table_name=IdempotencyRecord.Meta.table_name,
                                                    boto3_client=aws.client("dynamodb"))
        return _persistence


def reset() -> None:
    global _persistence
    with _lock:
        _persistence = None


class _NotRemembered(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# 1-255 visible ASCII characters (spaces inside only: HTTP strips them at the ends), e.g. a UUID.
KEY_PATTERN = r"^[!-~](?:[ -~]{0,253}[!-~])?$"
_KEY = re.compile(KEY_PATTERN)


def idempotency_key(request: Any) -> str:
    key = request.headers.get(HEADER)
    if key is None or not _KEY.fullmatch(key):
        raise BadRequest("Send an Idempotency-Key header (1-255 visible ASCII characters, e.g. a "
                         "UUID) so a retry cannot act twice.", code="IDEMPOTENCY_KEY_REQUIRED")
    return key


def concrete_path(request: Any) -> str:
    """`/v1/loans/L1/repayments`, not chalice's `/v1/loans/{loan_id}/repayments`."""
    path = request.path
    for name, value in (request.uri_params or {}).items():
        path = path.replace("{" + name + "}", value)
    return path


def _request_body(request: Any) -> Any:
    try:
        return json.loads(request.raw_body or b"null")
    except ValueError:
        return (request.raw_body or b"").decode("utf-8", "replace")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


MONEY_PREFIX = "money#"
OPEN, DONE = "OPEN", "DONE"


@dataclass(frozen=True)
class MoneyKey:
    """A money write's Idempotency-Key, committed in the write's own transaction.

    `DONE` holds the first success's answer (a retry replays it); `OPEN` holds the id of an
    attempt whose outcome is not known yet (a repayment between the wallet debit and the
    posting), so a retry waits for it instead of acting again. Another body under the same
    key is 409 IDEMPOTENCY_KEY_REUSED, as Powertools answers it.
    """
    item_id: str
    body_hash: str

    @classmethod
    def of(cls, request: Any, principal: str) -> MoneyKey:
        scope = json.dumps([principal, request.method, concrete_path(request), idempotency_key(request)])
        body = json.dumps(_request_body(request), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        return cls(MONEY_PREFIX + _sha256(scope), _sha256(body))

    def record(self) -> IdempotencyRecord | None:
        try:
            return IdempotencyRecord.get(self.item_id, consistent_read=True)
        except IdempotencyRecord.DoesNotExist:
            return None

    def check_body(self, record: IdempotencyRecord) -> None:
        if record.body_hash != self.body_hash:
            raise Conflict("This Idempotency-Key was already used with a different body.",
                           code="IDEMPOTENCY_KEY_REUSED")

    def replay(self, record: IdempotencyRecord | None = None) -> dict[str, Any] | None:
        """The first success's answer when this key's money write committed, else None."""
        record = record or self.record()
        if record is None or record.status != DONE:
            return None
        self.check_body(record)
        return json.loads(record.answer)

    def _item(self, **fields: Any) -> IdempotencyRecord:
        return IdempotencyRecord(id=self.item_id, body_hash=self.body_hash,
                                 expiration=timedelta(seconds=REMEMBER_SECONDS), **fields)

    def open_in(self, tx: TransactWrite, ref: str, replacing: str | None = None) -> None:
        """Mark attempt `ref` in flight, in `tx`: only if the key is new, or still names the
        failed attempt `replacing` (which a concurrent retry may have replaced already)."""
        condition = (IdempotencyRecord.id.does_not_exist() if replacing is None else
                     (IdempotencyRecord.status == OPEN) & (IdempotencyRecord.ref == replacing))
        tx.save(self._item(status=OPEN, ref=ref), condition=condition)

    def done_in(self, tx: TransactWrite, answer: dict[str, Any], ref: str | None = None) -> None:
        """Keep `answer` as this key's result, in `tx`: only if the key is new, or (with `ref`)
        still names that attempt as in flight."""
        condition = (IdempotencyRecord.id.does_not_exist() if ref is None else
                     (IdempotencyRecord.status == OPEN) & (IdempotencyRecord.ref == ref))
        tx.save(self._item(status=DONE, answer=json.dumps(answer, ensure_ascii=False)),
                condition=condition)


def money_key(request: Any, principal: str) -> MoneyKey:
    return MoneyKey.of(request, principal)


def run_once(request: Any, principal: str, execute: Callable[[], Response]) -> Response:
    """Run `execute` at most once per (principal, method, path, key) with the same body."""
    key = idempotency_key(request)
    body = _request_body(request)
    scope = {"user": principal, "method": request.method, "path": concrete_path(request),
             "key": key, "body": body}
    settings = IdempotencyConfig(event_key_jmespath="[user, method, path, key]",
                                 payload_validation_jmespath="body",
                                 raise_on_no_idempotency_key=True,
                                 expires_after_seconds=REMEMBER_SECONDS, hash_function="sha256")
    context = getattr(request, "lambda_context", None)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        settings.register_lambda_context(context)

    succeeded: list[dict[str, Any]] = []

    @idempotent_function(data_keyword_argument="scope", persistence_store=_store(), config=settings,
                         key_prefix="http")
    def once(scope: dict[str, Any]) -> dict[str, Any]:
        response = execute()
        if not 200 <= response.status_code < 300:
            raise _NotRemembered(response)
        succeeded.append({"status": response.status_code, "body": response.body})
        return succeeded[-1]

    try:
        done = once(scope=scope)
    except _NotRemembered as failed:
        return failed.response
    except IdempotencyPersistenceLayerError:
        if not succeeded:
            raise
        # The work succeeded but its record could not be written: answer what was done (a
        # money write's own key already holds this answer for any retry).
        logger.exception("idempotency record not saved after a success")
        done = succeeded[-1]
    except IdempotencyValidationError:
        raise Conflict("This Idempotency-Key was already used with a different body.",
                       code="IDEMPOTENCY_KEY_REUSED") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("A request with this Idempotency-Key is still being processed; retry "
                       "shortly.", code="IDEMPOTENCY_IN_PROGRESS") from None
    return Response(body=done["body"], status_code=done["status"])
