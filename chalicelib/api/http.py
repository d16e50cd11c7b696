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
from datetime import date
from typing import Any, Callable

from chalice import Blueprint, CORSConfig, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.adapters import idempotency
from chalicelib.core import messages
from chalicelib.adapters.db import transient
from chalicelib.core.errors import BadRequest, LendingError
from chalicelib.core.observability import logger, metrics

MAX_BODY_BYTES = 16 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Browsers (an H5 page in the super-app's web view, API explorers) may call the borrower API
# from any origin: it authenticates with a bearer token, never a cookie, so a foreign page
# gains nothing it could not do with the token itself. API Gateway answers the preflight
# (`OPTIONS`) from this same configuration when deployed; the local server does the same.
# Operator routes get no CORS: no web page should drive them.
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Idempotency-Key", "Accept-Language", "X-Request-Id"],
    expose_headers=["Retry-After", "X-Request-Id", "Allow"],
    max_age=600,
)


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
    params = {"field": where}
    if kind == "extra_forbidden":
        return BadRequest(f"Field '{where}' is not accepted in this request.", code="UNKNOWN_FIELD",
                          params=params)
    if kind == "missing":
        return BadRequest(f"Field '{where}' is required.", code="FIELD_REQUIRED", params=params)
    return BadRequest(f"Field '{where}': {first['msg']}.", code="FIELD_INVALID", params=params)


def request_language(request: Any) -> str:
    """`zh` (the default) or `en`, from the request's Accept-Language."""
    headers = getattr(request, "headers", None) or {}
    return messages.language(headers.get("accept-language"))


def lending_error_response(err: LendingError, lang: str) -> Response:
    """A domain error as the contract's error body, its message in the client's language."""
    return error_response(err.status, err.code, messages.message(err.code, lang, err.message, err.params),
                          err.headers)


def check_body_size(raw: bytes | None) -> None:
    """Every route, with or without a body model, refuses more than MAX_BODY_BYTES before it
    authenticates or parses anything (the contract's 400: the request is not one we accept)."""
    if raw and len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"The request body is too large (at most {MAX_BODY_BYTES} bytes).",
                         code="BODY_TOO_LARGE", params={"limit": MAX_BODY_BYTES})


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def date_param(raw: str, field: str) -> date:
    """A path or query parameter that is a calendar date, exactly the OpenAPI `date` format
    (date.fromisoformat alone also takes 20270131); else 400 FIELD_INVALID naming `field`."""
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"`{field}` must be a date like 2027-01-31.", code="FIELD_INVALID",
                         params={"field": field}) from None


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
    `Idempotency-Key` header and answer a retry with the first success (adapters.idempotency)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append(RouteDoc(path, method, summary, tag, body, auth, status, errors, query,
                               idempotent))
        if idempotent and auth is None:
            raise ValueError("idempotency keys are scoped to a principal: idempotent needs auth")

        @functools.wraps(view)
        def endpoint(**params: str) -> Response:
            request = bp.current_request
            lang = request_language(request)

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
                    return idempotency.run_once(request, params["principal"],
                                                lambda: _guard(answer, lang))
                return answer()
            except LendingError as err:
                return lending_error_response(err, lang)
            except Exception as err:  # noqa: BLE001 - the contract never shows a stack trace
                if transient(err):
                    return _dependency_down(method, path, lang)
                return _internal_error(method, path, lang)

        options: dict[str, Any] = {"authorizer": AUTHORIZERS[auth]} if auth in AUTHORIZERS else {}
        if auth != "ops":
            options["cors"] = CORS
        # HEAD answers what GET would, without the body (API Gateway has a method for it too).
        methods = [method, "HEAD"] if method == "GET" else [method]
        bp.route(path, methods=methods, **options)(endpoint)
        return view

    return decorate


_INTERNAL = "Something went wrong on our side; nothing was changed. Please try again."


def _dependency_down(method: str, path: str, lang: str) -> Response:
    logger.exception("dependency unavailable", extra={"route": f"{method} {path}"})
    metrics.add_metric(name="DependencyUnavailable", unit="Count", value=1)
    code = "DEPENDENCY_UNAVAILABLE"
    return error_response(503, code, messages.message(code, lang, "A service we depend on is busy "
                          "or unavailable; please try again shortly."), {"Retry-After": "1"})


def _internal_error(method: str, path: str, lang: str) -> Response:
    logger.exception("unhandled error", extra={"route": f"{method} {path}"})
    metrics.add_metric(name="UnhandledError", unit="Count", value=1)
    return error_response(500, "INTERNAL_ERROR", messages.message("INTERNAL_ERROR", lang, _INTERNAL))


def _guard(answer: Callable[[], Response], lang: str) -> Response:
    """Domain errors become responses inside the idempotent section, so they are not kept."""
    try:
        return answer()
    except LendingError as err:
        return lending_error_response(err, lang)


def allowed_methods(path: str) -> list[str]:
    """What a resource answers (its `Allow`): the declared methods, HEAD beside GET, and
    OPTIONS where browsers may call it (CORS). The local server and the deployed API's answer
    to an undeclared method (infra/template.py) both use this list."""
    declared = [doc for doc in ROUTES if doc.path == path]
    methods = [doc.method for doc in declared]
    if "GET" in methods:
        methods.append("HEAD")
    if any(doc.auth != "ops" for doc in declared):
        methods.append("OPTIONS")
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(set(methods), key=lambda m: order.index(m) if m in order else len(order))


def cors_enabled(path: str) -> bool:
    return "OPTIONS" in allowed_methods(path)


def _snake_upper(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out).removesuffix("_ERROR") or "ERROR"


def normalise_error(response: Response, lang: str = "en", method: str = "",
                    resource: str = "") -> Response:
    """Chalice answers some requests itself (405, 415, its own 500) as `{"Code", "Message"}`:
    rewrite those to the contract's error body, in the client's language."""
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        if response.status_code >= 500:
            response.body = error_body("INTERNAL_ERROR", messages.message("INTERNAL_ERROR", lang, _INTERNAL))
        else:
            code, text = _snake_upper(str(body["Code"])), str(body["Message"])
            if code == "METHOD_NOT_ALLOWED" and resource:
                allowed = allowed_methods(resource)
                response.headers["Allow"] = ", ".join(allowed)
                text = f"This path takes no {method}; it takes {', '.join(allowed)} (see Allow)."
            response.body = error_body(code, messages.message(code, lang, text, {"method": method}))
    return response


def http_middleware(request: Any, get_response: Callable[[Any], Response]) -> Response:
    """Correlation id, access log, latency metric and error normalisation for every request."""
    supplied = request.headers.get("x-request-id") or ""
    # A client's id is echoed and logged on every line: only a short token of safe characters.
    correlation_id = (supplied if _REQUEST_ID.fullmatch(supplied) else
                      (request.context or {}).get("requestId") or str(uuid.uuid4()))
    logger.set_correlation_id(correlation_id)
    started = time.perf_counter()
    resource = (request.context or {}).get("resourcePath", request.path)
    response = normalise_error(get_response(request), request_language(request), request.method,
                               resource)
    elapsed_ms = (time.perf_counter() - started) * 1000
    response.headers["X-Request-Id"] = correlation_id
    logger.info("request", extra={"method": request.method, "resource": resource,
                                  "status": response.status_code, "ms": round(elapsed_ms, 2)})
    metrics.add_metric(name="Latency", unit="Milliseconds", value=elapsed_ms)
    if response.status_code >= 500:
        metrics.add_metric(name="ServerError", unit="Count", value=1)
    metrics.flush_metrics()
    return response
