"""Builds the OpenAPI 3 document from the routes declared with `core.http.route`."""
from __future__ import annotations

import re
from typing import Any

from chalicelib.core.http import ROUTES

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                       "message": {"type": "string"}},
    }},
}
_STATUS_TEXT = {400: "Malformed request or unknown field", 401: "Missing, invalid or expired token",
                403: "Not allowed yet", 404: "Not found or not yours", 409: "State conflict",
                422: "Breaks a business rule", 429: "Rate limited", 503: "A dependency is down"}


def _error_response(status: int) -> dict[str, Any]:
    return {"description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for doc in ROUTES:
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "tags": [doc.tag],
            "operationId": f"{doc.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', doc.path).strip('_')}",
            "responses": {str(doc.status): {"description": "Success",
                                            "content": {"application/json": {"schema": {"type": "object"}}}},
                          "400": _error_response(400), "500": _error_response(500)},
        }
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", doc.path)]
        params += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                   for name in doc.query]
        if params:
            operation["parameters"] = params
        if doc.body is not None:
            schema = doc.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[doc.body.__name__] = schema
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{doc.body.__name__}"}}}}
        if doc.auth == "bearer":
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = _error_response(401)
            operation["responses"]["404"] = _error_response(404)
        elif doc.auth == "ops":
            operation["security"] = [{"opsKey": []}, {"sigv4": []}]
            operation["responses"]["403"] = _error_response(403)
        for status in sorted({int(code) for code in _codes_to_statuses(doc.errors)}):
            operation["responses"].setdefault(str(status), _error_response(status))
        paths.setdefault(doc.path, {})[doc.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "Lending API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "opsKey": {"type": "apiKey", "in": "header", "name": "X-Ops-Key"},
                "sigv4": {"type": "apiKey", "in": "header", "name": "Authorization"},
            },
        },
    }


def _codes_to_statuses(errors: tuple[str, ...]) -> list[int]:
    """`errors` entries are "422 CARD_INVALID" style strings: the status is the first word."""
    return [int(e.split()[0]) for e in errors]
