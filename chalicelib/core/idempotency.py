"""The contract's `Idempotency-Key` semantics, on Powertools Idempotency with DynamoDB.

Scope: the user, the method and the concrete path. The same key with the same body (compared
as parsed JSON) returns the first successful response and does nothing more; another body is
409 IDEMPOTENCY_KEY_REUSED; a duplicate that arrives while the first still runs is 409
IDEMPOTENCY_IN_PROGRESS; an attempt that did not succeed is not remembered (Powertools deletes
the record when the function raises, so non-2xx answers are raised through it).
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError, IdempotencyValidationError)
from chalice import Response
from pynamodb.attributes import TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.core import aws, config
from chalicelib.core.db import BaseMeta, register_table
from chalicelib.core.errors import BadRequest, Conflict

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


def idempotency_key(request: Any) -> str:
    key = request.headers.get(HEADER)
    if key is None or not (1 <= len(key) <= 255):
        raise BadRequest("Send an Idempotency-Key header (1-255 characters) so a retry cannot "
                         "act twice.", code="IDEMPOTENCY_KEY_REQUIRED")
    return key


def concrete_path(request: Any) -> str:
    """`/v1/loans/L1/repayments`, not chalice's `/v1/loans/{loan_id}/repayments`."""
    path = request.path
    for name, value in (request.uri_params or {}).items():
        path = path.replace("{" + name + "}", value)
    return path


def run_once(request: Any, principal: str, execute: Callable[[], Response]) -> Response:
    """Run `execute` at most once per (principal, method, path, key) with the same body."""
    key = idempotency_key(request)
    try:
        body = json.loads(request.raw_body or b"null")
    except ValueError:
        body = (request.raw_body or b"").decode("utf-8", "replace")
    scope = {"user": principal, "method": request.method, "path": concrete_path(request),
             "key": key, "body": body}
    settings = IdempotencyConfig(event_key_jmespath="[user, method, path, key]",
                                 payload_validation_jmespath="body",
                                 raise_on_no_idempotency_key=True,
                                 expires_after_seconds=REMEMBER_SECONDS, hash_function="sha256")
    context = getattr(request, "lambda_context", None)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        settings.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="scope", persistence_store=_store(), config=settings,
                         key_prefix="http")
    def once(scope: dict[str, Any]) -> dict[str, Any]:
        response = execute()
        if not 200 <= response.status_code < 300:
            raise _NotRemembered(response)
        return {"status": response.status_code, "body": response.body}

    try:
        done = once(scope=scope)
    except _NotRemembered as failed:
        return failed.response
    except IdempotencyValidationError:
        raise Conflict("This Idempotency-Key was already used with a different body.",
                       code="IDEMPOTENCY_KEY_REUSED") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("A request with this Idempotency-Key is still being processed; retry "
                       "shortly.", code="IDEMPOTENCY_IN_PROGRESS") from None
    return Response(body=done["body"], status_code=done["status"])
