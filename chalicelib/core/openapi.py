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
                415: "Content-Type other than application/json",
                422: "Breaks a business rule", 429: "Rate limited", 503: "A dependency is down"}


# Success bodies, as the contract states them. Fields beyond these may appear (e.g. a loan's
# `product_id`); the listed ones are required with these types.
_FEN = {"type": "integer", "minimum": 0}
_RATE = {"type": "string", "pattern": r"^\d+\.\d+$"}
_STAMP = {"type": "string", "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_TEXT = {"type": "string"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(props) if required is None else required,
            "properties": props}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": schema}})


_COUNTS = _obj({"count": {"type": "integer", "minimum": 0}, "outstanding_principal": _FEN})
_BODIES: dict[str, dict[str, Any]] = {
    "Tokens": _obj({"access_token": _TEXT, "refresh_token": _TEXT,
                    "expires_in": {"type": "integer", "minimum": 1}, "user_id": _TEXT,
                    "new_user": {"type": "boolean"}}),
    "BankCard": _obj({"card_id": _TEXT, "bank_name": _TEXT,
                      "last4": {"type": "string", "pattern": r"^\d{4}$"}}),
    "Product": _obj({"product_id": _TEXT, "name": _TEXT, "institution": _TEXT, "kind": _TEXT,
                     "min_amount": _FEN, "max_amount": _FEN,
                     "term_months": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                     "repayment_methods": {"type": "array", "items": {
                         "type": "string",
                         "enum": ["equal_installment", "equal_principal", "interest_first"]}},
                     "apr_min": _RATE, "apr_max": _RATE}),
    "Application": _obj({
        "application_id": _TEXT, "status": {"type": "string",
                                            "enum": ["approved", "declined", "review"]},
        "credit_limit": {**_FEN, "nullable": True}, "apr": {**_RATE, "nullable": True},
        "reasons": {"type": "array", "items": _obj({"code": _TEXT, "message": _TEXT})},
        "model_version": {**_TEXT, "nullable": True}, "decided_at": {**_STAMP, "nullable": True}},
        ["application_id", "status", "credit_limit", "apr", "reasons", "model_version"]),
    "Installment": _obj({
        "installment": {"type": "integer", "minimum": 1}, "due_date": _DATE, "principal": _FEN,
        "interest": _FEN, "penalty": _FEN, "total": _FEN, "paid": _FEN,
        "status": {"type": "string", "enum": ["pending", "partially_paid", "paid", "overdue"]}}),
    "Loan": _obj({
        "loan_id": _TEXT, "status": {"type": "string", "enum": [
            "scheduled", "disbursing", "active", "overdue", "closed", "cancelled", "failed"]},
        "principal": _FEN, "outstanding_principal": _FEN, "apr": _RATE,
        "repayment_method": {"type": "string",
                             "enum": ["equal_installment", "equal_principal", "interest_first"]},
        "term_months": {"type": "integer", "minimum": 1}, "disburse_at": _STAMP,
        "disbursed_at": {**_STAMP, "nullable": True},
        "schedule": {"type": "array", "items": _ref("Installment")},
        "total_interest": _FEN, "total_repayment": _FEN,
        # Why a `failed` or `cancelled` loan shows no bill (empty schedule, zero totals);
        # null for every other loan.
        "status_reason": {**_obj({"code": {"type": "string", "enum": [
            "CARD_REFUSED", "CARD_REMOVED", "CANCELLED_BY_BORROWER"]}, "message": _TEXT}),
            "nullable": True}}),
}
_SUCCESS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/health"): _obj({"status": {"type": "string", "enum": ["ok", "degraded"]}}),
    ("GET", "/openapi.json"): _obj({"openapi": _TEXT, "paths": {"type": "object"}}),
    ("POST", "/v1/auth/wechat"): _ref("Tokens"),
    ("POST", "/v1/auth/sms-codes"): _obj({"expires_in": {"type": "integer", "minimum": 1}}),
    ("POST", "/v1/auth/sms-login"): _ref("Tokens"),
    ("POST", "/v1/auth/refresh"): _ref("Tokens"),
    ("GET", "/v1/me"): _obj({
        "user_id": _TEXT, "phone_masked": {**_TEXT, "nullable": True},
        "identity_verified": {"type": "boolean"},
        "bank_cards": {"type": "array", "items": _ref("BankCard")},
        "credit": {**_obj({"limit": _FEN, "available": _FEN, "apr": _RATE}), "nullable": True}}),
    ("POST", "/v1/me/phone"): _obj({"user_id": _TEXT, "phone_masked": _TEXT}),
    ("POST", "/v1/me/phone/current-code"): _obj({"expires_in": {"type": "integer", "minimum": 1}}),
    ("POST", "/v1/me/identity"): _obj({"verified": {"type": "boolean", "enum": [True]},
                                       "name_masked": _TEXT, "id_number_masked": _TEXT}),
    ("POST", "/v1/me/bank-cards"): _ref("BankCard"),
    ("GET", "/v1/me/bank-cards/{card_id}"): _ref("BankCard"),
    ("GET", "/v1/products"): _items(_ref("Product")),
    ("GET", "/v1/me/offers"): _items({"allOf": [_ref("Product"), _obj({
        "apr": _RATE, "max_amount": _FEN})]}),
    ("POST", "/v1/applications"): _ref("Application"),
    ("GET", "/v1/applications/{application_id}"): _ref("Application"),
    ("POST", "/v1/loans"): _ref("Loan"),
    ("GET", "/v1/loans"): _items(_ref("Loan")),
    ("GET", "/v1/loans/{loan_id}"): _ref("Loan"),
    ("POST", "/v1/loans/{loan_id}/cancel"): _ref("Loan"),
    ("GET", "/v1/loans/{loan_id}/payoff"): _obj({"amount": _FEN, "principal": _FEN,
                                                 "interest": _FEN, "penalty": _FEN,
                                                 "as_of": _DATE}),
    ("POST", "/v1/loans/{loan_id}/repayments"): _obj({
        "repayment_id": _TEXT, "amount": {"type": "integer", "minimum": 1},
        "allocation": _obj({"penalty": _FEN, "interest": _FEN, "principal": _FEN}),
        "loan": _obj({"status": _TEXT, "outstanding_principal": _FEN})}),
    ("GET", "/v1/me/notifications"): _items(_obj({
        "notification_id": _TEXT, "kind": _TEXT, "text": _TEXT,
        "loan_id": {**_TEXT, "nullable": True}, "created_at": _STAMP})),
    ("GET", "/v1/ops/reviews"): _items(_ref("Application")),
    ("POST", "/v1/ops/applications/{application_id}/decision"): _ref("Application"),
    ("GET", "/v1/ops/loans/{loan_id}"): {"allOf": [_ref("Loan"), _obj({
        "ledger": {"type": "array", "items": {"type": "object"}}})]},
    ("GET", "/v1/ops/portfolio"): _obj({
        "by_status": {"type": "object", "additionalProperties": _COUNTS},
        "by_days_past_due": _obj({bucket: _COUNTS
                                  for bucket in ("0", "1-30", "31-60", "61-90", "90+")})}),
    # The latest weekly figures (null until the first `model_monitor` run for this model).
    ("GET", "/v1/ops/model"): _obj({
        "model_version": _TEXT, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "drift": _obj({"psi": {"type": "number", "minimum": 0, "nullable": True},
                       "window": {**_TEXT, "nullable": True},
                       "baseline": {**_TEXT, "nullable": True},
                       # each input's PSI, the largest of them, the week's scored decisions
                       "inputs": {"type": "object", "nullable": True,
                                  "additionalProperties": {"type": "number", "minimum": 0}},
                       "max_input_psi": {"type": "number", "minimum": 0, "nullable": True},
                       "scored": {"type": "integer", "minimum": 0, "nullable": True},
                       "alarm_psi": {"type": "number", "minimum": 0}},
                      ["psi", "window", "baseline"]),
        "approval_rate": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        "challenger": {**_obj({"model_version": _TEXT,
                               "agreement": {"type": "number", "minimum": 0, "maximum": 1,
                                             "nullable": True}}), "nullable": True}}),
}


def _error_response(status: int, codes: list[str] | None = None) -> dict[str, Any]:
    """An error response; with the operation's declared `codes` for this status listed (in the
    description for people, in `x-error-codes` for tools)."""
    text = _STATUS_TEXT.get(status, "Error")
    response: dict[str, Any] = {
        "description": f"{text}: {', '.join(codes)}" if codes else text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if codes:
        response["x-error-codes"] = list(codes)
    if status == 429:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again", "required": True,
            "schema": {"type": "integer", "minimum": 1}}}
    elif codes and "SECURITY_HOLD" in codes:
        response["headers"] = {"Retry-After": {
            "description": "SECURITY_HOLD: seconds until the hold ends", "required": False,
            "schema": {"type": "integer", "minimum": 1}}}
    return response


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, **_BODIES}
    for doc in ROUTES:
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "tags": [doc.tag],
            "operationId": f"{doc.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', doc.path).strip('_')}",
            "responses": {str(doc.status): {"description": "Success", "content": {
                              "application/json": {"schema": _SUCCESS.get(
                                  (doc.method, doc.path), {"type": "object"})}}},
                          "400": _error_response(400), "415": _error_response(415),
                          "500": _error_response(500), "503": _error_response(503)},
        }
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", doc.path)]
        params += [{"name": name, "in": "query", "required": False,
                    "schema": dict(_QUERY_SCHEMAS.get(name, {"type": "string"}))}
                   for name in doc.query]
        if doc.idempotent:
            params.append({"name": "Idempotency-Key", "in": "header", "required": True,
                           "description": "Scoped to the user, method and path; a retry with the "
                                          "same body answers the first success again.",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
            operation["responses"]["409"] = _error_response(409)  # key reused / in progress
        if params:
            operation["parameters"] = params
        if doc.body is not None:
            schema = doc.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update({name: _openapi30(sub) for name, sub in schema.pop("$defs", {}).items()})
            schemas[doc.body.__name__] = _openapi30(schema)
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{doc.body.__name__}"}}}}
        if doc.auth == "bearer":
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = _error_response(401)
            operation["responses"]["404"] = _error_response(404)
        elif doc.auth == "ops":
            operation["security"] = [{"opsKey": []}, {"sigv4": []}]
            operation["responses"]["403"] = _error_response(403)
        for status, codes in sorted(_codes_by_status(doc.errors, doc.idempotent).items()):
            operation["responses"][str(status)] = _error_response(status, codes)
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


def _openapi30(schema: Any) -> Any:
    """Pydantic's JSON Schema 2020-12 in OpenAPI 3.0's dialect: numeric `exclusiveMinimum`
    becomes `minimum` + `exclusiveMinimum: true`, `anyOf [X, null]` becomes X with
    `nullable: true`. (3.0, not 3.1: under 3.1 an integer field also admits `5.0`, which the
    API rejects as a float, as the contract says.)"""
    if isinstance(schema, list):
        return [_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _openapi30(value) for key, value in schema.items()}
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out[bound], bool):
            out[inclusive], out[bound] = out[bound], True
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        if len(rest) == 1:
            del out["anyOf"]
            only = rest[0]
            out.update({"allOf": [only]} if "$ref" in only else only)
            out["nullable"] = True
    return out


# Query parameters by name, where a plain string says too little.
_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {"on": {"type": "string", "format": "date"}}


# What every idempotent operation may answer about its key (core.idempotency).
_IDEMPOTENCY_ERRORS = ("400 IDEMPOTENCY_KEY_REQUIRED", "409 IDEMPOTENCY_KEY_REUSED",
                       "409 IDEMPOTENCY_IN_PROGRESS")


def _codes_by_status(errors: tuple[str, ...], idempotent: bool = False) -> dict[int, list[str]]:
    """`errors` entries are "422 CARD_INVALID" style strings: the status, then the code."""
    out: dict[int, list[str]] = {}
    for entry in (*errors, *(_IDEMPOTENCY_ERRORS if idempotent else ())):
        status, code = entry.split()
        if code not in out.setdefault(int(status), []):
            out[int(status)].append(code)
    return out
