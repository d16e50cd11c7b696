"""Builds the OpenAPI 3 document from the routes declared with `api.http.route`."""
from __future__ import annotations

import re
from typing import Any

from chalicelib.core import config
from chalicelib.api.http import ROUTES
from chalicelib.adapters.idempotency import KEY_PATTERN

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
                422: "Breaks a business rule", 429: "Rate limited",
                500: "Our error; nothing was changed", 503: "A dependency is down; try again"}


# Success bodies, as the contract states them. Fields beyond these may appear (e.g. a loan's
# `product_id`); the listed ones are required with these types.
_FEN = {"type": "integer", "minimum": 0}
_RATE = {"type": "string", "pattern": r"^\d+\.\d+$"}
_STAMP = {"type": "string", "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_TEXT = {"type": "string"}
_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


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
    # `checks`: each readiness check (the credit model, each partner's settings) with what is
    # wrong, e.g. "missing wallet.base_url"; never a secret's value.
    ("GET", "/health"): _obj({"status": {"type": "string", "enum": ["ok", "degraded"]},
                              "checks": {"type": "object", "additionalProperties": _obj(
                                  {"ok": {"type": "boolean"}, "detail": _TEXT})}}, required=["status"]),
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
    ("GET", "/v1/me/credit-report"): _obj({
        "as_of": _STAMP,
        "grade": {"type": "string", "enum": ["A", "B", "C", "D", "E"], "nullable": True},
        "credit": {**_obj({"limit": _FEN, "available": _FEN, "apr": _RATE}), "nullable": True},
        "factors": {"type": "array", "items": _obj({
            "code": _TEXT, "message": _TEXT,
            "direction": {"type": "string", "enum": ["helps", "hurts"]}})},
        "history": _obj({name: {"type": "integer", "minimum": 0} for name in (
            "applications", "approved", "loans", "installments_on_time", "installments_late",
            "max_days_past_due")}),
        "model_version": {**_TEXT, "nullable": True}, "decided_at": {**_STAMP, "nullable": True}}),
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
    ("GET", "/v1/loans/{loan_id}/statement"): _obj({
        "loan_id": _TEXT,
        "entries": {"type": "array", "items": _obj({
            "seq": {"type": "integer", "minimum": 1}, "entry_id": _TEXT, "at": _STAMP,
            "kind": {"type": "string", "enum": ["disbursement", "repayment", "penalty"]},
            "amount": _FEN,
            "lines": {"type": "array", "items": _obj({"account": _TEXT, "debit": _FEN, "credit": _FEN})},
            "prev_hash": _HASH, "hash": _HASH})},
        "head": {**_HASH, "nullable": True},
        "anchors": {"type": "array", "items": _obj({
            "date": _DATE, "root": _HASH, "head": _HASH, "seq": {"type": "integer", "minimum": 1},
            "proof": {"type": "array", "items": _obj({
                "side": {"type": "string", "enum": ["left", "right"]}, "hash": _HASH})}})}}),
    ("GET", "/v1/ops/ledger/anchors/{date}"): _obj({
        "date": _DATE, "root": _HASH, "loans": {"type": "integer", "minimum": 0},
        "entries": {"type": "integer", "minimum": 0}}),
    ("POST", "/v1/ops/ledger/verify"): _obj({
        "checked": {"type": "integer", "minimum": 0},
        "broken": {"type": "array", "items": _obj({
            "loan_id": {**_TEXT, "nullable": True}, "entry_id": {**_TEXT, "nullable": True},
            "why": _TEXT})}}),
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
            "operationId": operation_id(doc.method, doc.path),
            "responses": {str(doc.status): {"description": "Success", "content": {
                              "application/json": {"schema": _SUCCESS.get(
                                  (doc.method, doc.path), {"type": "object"})}}},
},
        }
        params = [{"name": name, "in": "path", "required": True,
                   "schema": _PATH_SCHEMAS.get(name, {"type": "string"}),
                   **({"description": _PATH_DESCRIPTIONS[name]} if name in _PATH_DESCRIPTIONS else {})}
                  for name in re.findall(r"{(\w+)}", doc.path)]
        params += [{"name": name, "in": "query", "required": False,
                    **_QUERY_PARAMETERS.get(name, {"schema": {"type": "string"}})}
                   for name in doc.query]
        if doc.idempotent:
            params.append({"name": "Idempotency-Key", "in": "header", "required": True,
                           "description": "A new key (e.g. a UUID) for each new operation, the same "
                                          "key for a retry of it. Scoped to the user, method and "
                                          "path; a retry with the same body answers the first "
                                          "success again, another body is 409 "
                                          "IDEMPOTENCY_KEY_REUSED.",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                      "pattern": KEY_PATTERN}})
        params.append({"$ref": "#/components/parameters/AcceptLanguage"})
        operation["parameters"] = params
        links = _LINKS.get((doc.method, doc.path))
        if links:
            operation["responses"][str(doc.status)]["links"] = {
                name: _link(*target) for name, target in links.items()}
        if doc.body is not None:
            schema = doc.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update({name: _openapi30(sub) for name, sub in schema.pop("$defs", {}).items()})
            schemas[doc.body.__name__] = _openapi30(schema)
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{doc.body.__name__}"}}}}
        if doc.auth == "bearer":
            operation["security"] = [{"bearer": []}]
        elif doc.auth == "ops":
            # Locally the key `make run` prints; deployed, an IAM-signed (SigV4) request.
            operation["security"] = [{"opsKey": []}] if config.is_local() else [{"sigv4": []}]
        for status, codes in sorted(error_codes(doc).items()):
            operation["responses"][str(status)] = _error_response(status, codes)
        paths.setdefault(doc.path, {})[doc.method.lower()] = operation
    schemes: dict[str, Any] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                          "description": "The access_token of a sign-in (15 minutes)."}}
    if config.is_local():
        schemes["opsKey"] = {"type": "apiKey", "in": "header", "name": "X-Ops-Key",
                             "description": "The key `make run` prints (new on each start)."}
    else:
        schemes["sigv4"] = {"type": "apiKey", "in": "header", "name": "Authorization",
                            "description": "An AWS SigV4 signature of an operator role."}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Lending API", "version": "1", "description": _INFO},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {"AcceptLanguage": {
                "name": "Accept-Language", "in": "header", "required": False,
                "description": "Language of error messages and decision reasons: Chinese by "
                               "default, English when `en` ranks first among zh and en.",
                "schema": {"type": "string"}, "example": "en"}},
            "securitySchemes": schemes,
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
    if isinstance(out.get("examples"), list):  # JSON Schema's list; OpenAPI 3.0 has one example
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
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
_QUERY_PARAMETERS: dict[str, dict[str, Any]] = {"on": {
    "description": "The Asia/Shanghai date to quote for (YYYY-MM-DD); today by default, never "
                   "earlier (422 PAYOFF_DATE_INVALID).",
    "schema": {"type": "string", "format": "date"}, "example": "2027-01-31"}}

# Path parameters by name, where a plain string says too little.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "date": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "example": "2027-01-10"}}

_PATH_DESCRIPTIONS = {
    "date": "An Asia/Shanghai calendar date, YYYY-MM-DD.",
    "application_id": "An application of yours (another user's is 404, like one that does not exist).",
    "loan_id": "A loan of yours (another user's is 404, like one that does not exist).",
    "card_id": "A bank card of yours.",
}

_INFO = ("The consumer-lending API. Money is an integer number of fen (1 CNY = 100 fen); rates "
         "are decimal strings. Errors are `{\"error\": {\"code\", \"message\"}}`; each "
         "operation lists its codes by status in `x-error-codes`. Messages are Chinese unless "
         "`Accept-Language` prefers English. See docs/API.md in the repository.")


def operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_')}"


def _link(method: str, path: str, parameters: dict[str, str] | None = None,
          body: dict[str, str] | None = None) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": operation_id(method, path)}
    if parameters:
        link["parameters"] = parameters
    if body:
        link["requestBody"] = body
    return link


# Links between operations (OpenAPI 3 `links`): which answer supplies which later request, so a
# client (and stateful testing) goes application -> loan -> payoff -> repayment.
_APP, _LOAN, _CARD = "$response.body#/application_id", "$response.body#/loan_id", "$response.body#/card_id"
_FIRST_LOAN = "$response.body#/items/0/loan_id"
_ON_LOAN = ("/v1/loans/{loan_id}", "/v1/loans/{loan_id}/payoff", "/v1/loans/{loan_id}/repayments",
            "/v1/loans/{loan_id}/cancel")


def _loan_links(source: str) -> dict[str, tuple]:
    return {"GetLoan": ("GET", _ON_LOAN[0], {"path.loan_id": source}),
            "GetPayoff": ("GET", _ON_LOAN[1], {"path.loan_id": source}),
            "Repay": ("POST", _ON_LOAN[2], {"path.loan_id": source}),
            "Cancel": ("POST", _ON_LOAN[3], {"path.loan_id": source})}


_LINKS: dict[tuple[str, str], dict[str, tuple]] = {
    ("POST", "/v1/auth/wechat"): {"Refresh": ("POST", "/v1/auth/refresh", None,
                                              {"refresh_token": "$response.body#/refresh_token"})},
    ("POST", "/v1/auth/sms-login"): {"Refresh": ("POST", "/v1/auth/refresh", None,
                                                 {"refresh_token": "$response.body#/refresh_token"})},
    ("POST", "/v1/auth/refresh"): {"Refresh": ("POST", "/v1/auth/refresh", None,
                                               {"refresh_token": "$response.body#/refresh_token"})},
    ("GET", "/v1/me"): {
        "GetBankCard": ("GET", "/v1/me/bank-cards/{card_id}",
                        {"path.card_id": "$response.body#/bank_cards/0/card_id"}),
        "DrawLoan": ("POST", "/v1/loans", None, {"bank_card_id": "$response.body#/bank_cards/0/card_id"})},
    ("POST", "/v1/me/bank-cards"): {
        "GetBankCard": ("GET", "/v1/me/bank-cards/{card_id}", {"path.card_id": _CARD}),
        "DrawLoan": ("POST", "/v1/loans", None, {"bank_card_id": _CARD})},
    ("POST", "/v1/applications"): {
        "GetApplication": ("GET", "/v1/applications/{application_id}", {"path.application_id": _APP}),
        "DrawLoan": ("POST", "/v1/loans", None, {"application_id": _APP}),
        "Decide": ("POST", "/v1/ops/applications/{application_id}/decision",
                   {"path.application_id": _APP})},
    ("GET", "/v1/applications/{application_id}"): {
        "DrawLoan": ("POST", "/v1/loans", None, {"application_id": _APP})},
    ("POST", "/v1/loans"): {**_loan_links(_LOAN),
                            "OpsLoan": ("GET", "/v1/ops/loans/{loan_id}", {"path.loan_id": _LOAN})},
    ("GET", "/v1/loans"): _loan_links(_FIRST_LOAN),
    ("GET", "/v1/loans/{loan_id}"): {name: target for name, target in _loan_links(_LOAN).items()
                                     if name != "GetLoan"},
    ("GET", "/v1/loans/{loan_id}/payoff"): {
        "PayOff": ("POST", _ON_LOAN[2], {"path.loan_id": "$request.path.loan_id"},
                   {"amount": "$response.body#/amount"})},
    ("POST", "/v1/loans/{loan_id}/repayments"): {
        "GetLoan": ("GET", _ON_LOAN[0], {"path.loan_id": "$request.path.loan_id"}),
        "GetPayoff": ("GET", _ON_LOAN[1], {"path.loan_id": "$request.path.loan_id"})},
    ("GET", "/v1/ops/reviews"): {
        "Decide": ("POST", "/v1/ops/applications/{application_id}/decision",
                   {"path.application_id": "$response.body#/items/0/application_id"})},
}


# What every idempotent operation may answer about its key (adapters.idempotency).
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


# What `api.http.route` itself may answer, whatever the operation declares.
_EVERY_OPERATION = ("400 BODY_TOO_LARGE", "415 UNSUPPORTED_MEDIA_TYPE", "500 INTERNAL_ERROR",
                    "503 DEPENDENCY_UNAVAILABLE")
_WITH_BODY = ("400 BODY_INVALID", "400 UNKNOWN_FIELD", "400 FIELD_REQUIRED", "400 FIELD_INVALID")
_WITH_QUERY = ("400 FIELD_INVALID",)
_BEARER = ("401 TOKEN_MISSING", "401 TOKEN_INVALID", "401 TOKEN_EXPIRED", "401 TOKEN_REVOKED")
_OPS = ("403 OPS_FORBIDDEN",)


def error_codes(doc: Any) -> dict[int, list[str]]:
    """Every error code an operation may answer, by status: its declared ones and those of the
    plumbing it goes through (body parsing, authentication, idempotency)."""
    implicit = (*_EVERY_OPERATION, *(_WITH_BODY if doc.body is not None else ()),
                *(_WITH_QUERY if doc.query else ()),
                *(_BEARER if doc.auth == "bearer" else _OPS if doc.auth == "ops" else ()))
    return _codes_by_status((*implicit, *doc.errors), doc.idempotent)
