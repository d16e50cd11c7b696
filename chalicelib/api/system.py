"""Service-level routes: health and the OpenAPI document."""
from __future__ import annotations

from typing import Any, Callable

from chalice import Blueprint, Response

from chalicelib.api import openapi
from chalicelib.api.http import route

bp = Blueprint(__name__)

# name -> check returning (ok, detail). Slices register theirs (e.g. the credit model).
HEALTH_CHECKS: dict[str, Callable[[], tuple[bool, str]]] = {}


@route(bp, "/health", "GET", summary="Liveness and readiness of the service", tag="system")
def health(request: Any) -> Response:
    checks = {}
    healthy = True
    for name, check in sorted(HEALTH_CHECKS.items()):
        ok, detail = check()
        healthy = healthy and ok
        checks[name] = {"ok": ok, "detail": detail}
    body: dict[str, Any] = {"status": "ok" if healthy else "degraded"}
    if checks:
        body["checks"] = checks
    return Response(body=body, status_code=200)


@route(bp, "/openapi.json", "GET", summary="This API's OpenAPI 3 document", tag="system")
def openapi_document(request: Any) -> dict[str, Any]:
    return openapi.document()
