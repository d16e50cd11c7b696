"""HTTP plumbing shared by every blueprint: body parsing, the error body, route metadata.

`route()` is the only way the slices declare endpoints. It parses and validates the JSON body
with a strict pydantic model (unknown fields are 400), calls the view, and maps any
`LendingError` to the contract's error body. The same metadata feeds `GET /openapi.json`, so
the document cannot drift from the routes.
"""
from __future__ import annotations

import functools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from chalice import Blueprint, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.core import idempotency
from chalicelib.core.db import transient
from chalicelib.core.errors import BadRequest, LendingError
from chalicelib.core.observability import logger, metrics

MAX_BODY_BYTES = 16 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ApiModel(BaseModel):
    """Base of every request body: unknown fields rejected, no silent type coercion."""
    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class RouteDoc:
    path: str
    method: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    auth: str | None  # None, "bearer" or "ops"
    status: int
    errors: tuple[str, ...] = ()
    query: tuple[str, ...] = field(default_factory=tuple)
    idempotent: bool = False


ROUTES: list[RouteDoc] = []

# Authenticators by scheme name ("bearer", "ops"), registered by the slice that owns them
# (core imports no slice). Each takes the chalice request and returns the principal's id, or
# raises a LendingError (401/403). `route(auth=...)` passes the id to the view as `principal`.
AUTHENTICATORS: dict[str, Callable[[Any], str]] = {}
# API Gateway authorizers by scheme, attached to the routes in AWS (chalice's test client and
# `chalice local` do not enforce IAM ones, hence the in-function check above as well).
AUTHORIZERS: dict[str, Any] = {}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(body=error_body(code, message), status_code=status, headers=dict(headers or {}))


def _describe_validation_error(err: ValidationError) -> BadRequest:
    first = err.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    kind = first["type"]
    if kind == "extra_forbidden":
        return BadRequest(f"Field '{where}' is not accepted in this request.", code="UNKNOWN_FIELD")
    if kind == "missing":
        return BadRequest(f"Field '{where}' is required.", code="FIELD_REQUIRED")
    return BadRequest(f"Field '{where}': {first['msg']}.", code="FIELD_INVALID")


def check_body_size(raw: bytes | None) -> None:
    """Every route, with or without a body model, refuses more than MAX_BODY_BYTES before it
    authenticates or parses anything (the contract's 400: the request is not one we accept)."""
    if raw and len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"The request body is too large (at most {MAX_BODY_BYTES} bytes).",
                         code="BODY_TOO_LARGE")


def parse_body(raw: bytes | None, model: type[BaseModel]) -> BaseModel:
    check_body_size(raw)
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # RecursionError: `[[[[...` nested past the stack
        raise BadRequest("The request body is not valid JSON.", code="BODY_INVALID") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="BODY_INVALID")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise _describe_validation_error(err) from None


def route(bp: Blueprint, path: str, method: str, *, summary: str, tag: str,
          body: type[BaseModel] | None = None, auth: str | None = None, status: int = 200,
          errors: tuple[str, ...] = (), query: tuple[str, ...] = (),
          idempotent: bool = False) -> Callable:
    """Declare an endpoint. The view gets the chalice request, the path params, `body=` (the
    validated model) when `body` is given, and `principal=` (user or operator id) when `auth`
    is given; authentication runs before the body is even parsed. `idempotent` routes need an
    `Idempotency-Key` header and answer a retry with the first success (core.idempotency)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append(RouteDoc(path, method, summary, tag, body, auth, status, errors, query,
                               idempotent))
        if idempotent and auth is None:
            raise ValueError("idempotency keys are scoped to a principal: idempotent needs auth")

        @functools.wraps(view)
        def endpoint(**params: str) -> Response:
            request = bp.current_request

            def answer() -> Response:
                result = view(request, **params)
                return result if isinstance(result, Response) else Response(body=result,
                                                                            status_code=status)

            try:
                check_body_size(request.raw_body)
                if auth is not None:
                    authenticate = AUTHENTICATORS.get(auth)
                    if authenticate is None:
                        raise RuntimeError(f"no authenticator registered for {auth!r}")
                    params["principal"] = authenticate(request)
                if idempotent:
                    idempotency.idempotency_key(request)
                if body is not None:
                    params["body"] = parse_body(request.raw_body, body)  # type: ignore[assignment]
                if idempotent:
                    return idempotency.run_once(request, params["principal"], lambda: _guard(answer))
                return answer()
            except LendingError as err:
                return error_response(err.status, err.code, err.message, err.headers)
            except Exception as err:  # noqa: BLE001 - the contract never shows a stack trace
                if transient(err):
                    return _dependency_down(method, path)
                return _internal_error(method, path)

        options = {"authorizer": AUTHORIZERS[auth]} if auth in AUTHORIZERS else {}
        bp.route(path, methods=[method], **options)(endpoint)
        return view

    return decorate


def _dependency_down(method: str, path: str) -> Response:
    logger.exception("dependency unavailable", extra={"route": f"{method} {path}"})
    metrics.add_metric(name="DependencyUnavailable", unit="Count", value=1)
    return error_response(503, "DEPENDENCY_UNAVAILABLE", "A service we depend on is busy or "
                          "unavailable; please try again shortly.", {"Retry-After": "1"})


def _internal_error(method: str, path: str) -> Response:
    logger.exception("unhandled error", extra={"route": f"{method} {path}"})
    metrics.add_metric(name="UnhandledError", unit="Count", value=1)
    return error_response(500, "INTERNAL_ERROR", "Something went wrong on our side; "
                          "nothing was changed. Please try again.")


def _guard(answer: Callable[[], Response]) -> Response:
    """Domain errors become responses inside the idempotent section, so they are not kept."""
    try:
        return answer()
    except LendingError as err:
        return error_response(err.status, err.code, err.message, err.headers)


def _snake_upper(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out).removesuffix("_ERROR") or "ERROR"


def normalise_error(response: Response) -> Response:
    """Chalice answers some requests itself (405, 415, its own 500) as `{"Code", "Message"}`:
    rewrite those to the contract's error body."""
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        if response.status_code >= 500:
            response.body = error_body("INTERNAL_ERROR", "Something went wrong on our side; "
                                       "nothing was changed. Please try again.")
        else:
            response.body = error_body(_snake_upper(str(body["Code"])), str(body["Message"]))
    return response


def http_middleware(request: Any, get_response: Callable[[Any], Response]) -> Response:
    """Correlation id, access log, latency metric and error normalisation for every request."""
    supplied = request.headers.get("x-request-id") or ""
    # A client's id is echoed and logged on every line: only a short token of safe characters.
    correlation_id = (supplied if _REQUEST_ID.fullmatch(supplied) else
                      (request.context or {}).get("requestId") or str(uuid.uuid4()))
    logger.set_correlation_id(correlation_id)
    started = time.perf_counter()
    response = normalise_error(get_response(request))
    elapsed_ms = (time.perf_counter() - started) * 1000
    response.headers["X-Request-Id"] = correlation_id
    resource = (request.context or {}).get("resourcePath", request.path)
    logger.info("request", extra={"method": request.method, "resource": resource,
                                  "status": response.status_code, "ms": round(elapsed_ms, 2)})
    metrics.add_metric(name="Latency", unit="Milliseconds", value=elapsed_ms)
    if response.status_code >= 500:
        metrics.add_metric(name="ServerError", unit="Count", value=1)
    metrics.flush_metrics()
    return response
