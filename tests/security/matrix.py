"""The security matrix, derived from the route registry (`chalicelib.api.http.ROUTES`).

A route added with `api.http.route()` joins every table here by itself: its auth kind picks
the attacks, its path parameters and body model pick the objects and fields to tamper with.
What cannot be derived (a realistic body, which object a parameter names) is looked up in the
small maps below, and a route or a parameter missing from them fails the suite loudly instead
of being skipped.
"""
from __future__ import annotations

import re
import types
import typing
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from pydantic import BaseModel

import app as app_module
from chalicelib.api.http import ROUTES, RouteDoc
from tests.journeys import GOOD_APPLICANT, card_ending, resident_id

APP = app_module.app


def routes() -> list[RouteDoc]:
    return [r for r in ROUTES if r.path != "/probe"]  # /probe: a unit test's temporary route


def rid(route: RouteDoc) -> str:
    return f"{route.method} {route.path}"


def path_params(route: RouteDoc) -> list[str]:
    return re.findall(r"{(\w+)}", route.path)


def bearer_routes() -> list[RouteDoc]:
    return [r for r in routes() if r.auth == "bearer"]


def ops_routes() -> list[RouteDoc]:
    return [r for r in routes() if r.auth == "ops"]


def body_routes() -> list[RouteDoc]:
    return [r for r in routes() if r.body is not None]


def by_id(items: list[RouteDoc]) -> dict[str, Any]:
    """pytest.mark.parametrize arguments with readable ids."""
    return {"argvalues": items, "ids": [rid(r) for r in items]}


# ------------------------------------------------------------------ the contract's auth rule

def expected_auth(path: str) -> str | None:
    """CONTRACT.md: a bearer token on every /v1/me*, /v1/applications* and /v1/loans* route; ops
    credentials on /v1/ops/*; only sign-in, products, health and the document are public."""
    if path.startswith(("/v1/me", "/v1/applications", "/v1/loans")):
        return "bearer"
    if path.startswith("/v1/ops/"):
        return "ops"
    if path in ("/health", "/openapi.json", "/v1/products") or path.startswith("/v1/auth/"):
        return None
    raise AssertionError(f"{path}: the contract does not say who may call it; extend matrix.py")


# ------------------------------------------------------------------ which object a parameter names

# path parameter / body field -> the key of a borrower's objects in the world (conftest.World).
OBJECT_OF = {"card_id": "card_id", "bank_card_id": "card_id", "application_id": "application_id",
             "loan_id": "loan_id"}
PUBLIC_IDS = {"product_id"}  # ids of things everyone may see (the product catalog)
# path parameters that name no one's object: a realistic value each
PLAIN_VALUES = {"date": "2027-01-10"}  # GET /v1/ops/ledger/anchors/{date}: a day, anyone's


def object_ids(name: str, owner: dict[str, Any], route: RouteDoc | None = None) -> list[str]:
    """Every id of `owner` that parameter `name` can name (a loan: its active and its
    scheduled one, so both a read and a state change would show if they were allowed)."""
    if name in PLAIN_VALUES:
        return [PLAIN_VALUES[name]]
    if name not in OBJECT_OF:
        raise AssertionError(f"parameter {name!r} names an object unknown to tests/security/matrix.py")
    if route is not None and route.auth == "ops" and name == "application_id":
        return [owner["review_application_id"]]
    if name == "loan_id":
        return [owner["loan_id"], owner["scheduled_loan_id"]]
    return [owner[OBJECT_OF[name]]]


def fill(route: RouteDoc, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], route.path)


# ------------------------------------------------------------------ realistic bodies

Body = Callable[[Any, dict[str, Any]], dict[str, Any]]  # (world, owner) -> body

SAMPLE_BODIES: dict[str, Body] = {
    "POST /v1/auth/wechat": lambda w, o: {"code": "dev-o_sample"},
    "POST /v1/auth/sms-codes": lambda w, o: {"phone": "13900009999"},
    "POST /v1/auth/sms-login": lambda w, o: {"phone": "13900009999", "code": "123456"},
    "POST /v1/auth/refresh": lambda w, o: {"refresh_token": o["tokens"]["refresh_token"]},
    "POST /v1/me/phone": lambda w, o: {"phone": "13900009999", "code": "123456"},
    "POST /v1/me/identity": lambda w, o: {"name": "李四", "id_number": resident_id(date(1990, 1, 1),
                                                                                sequence=555)},
    "POST /v1/me/bank-cards": lambda w, o: {"card_number": card_ending("4444")},
    "POST /v1/applications": lambda w, o: {"product_id": "revolving-credit", "amount": 1_000_000,
                                           "term_months": 12, "purpose": "装修",
                                           "applicant": dict(GOOD_APPLICANT)},
    "POST /v1/loans": lambda w, o: {"application_id": o["application_id"], "amount": 50_000,
                                    "term_months": 12, "repayment_method": "equal_installment",
                                    "bank_card_id": o["card_id"]},
    "POST /v1/loans/{loan_id}/repayments": lambda w, o: {"amount": 1_000},
    "POST /v1/ops/applications/{application_id}/decision":
        lambda w, o: {"status": "approved", "credit_limit": 500_000, "note": "收入证明已核实"},
    "POST /v1/ops/ledger/verify": lambda w, o: {"loan_id": o["loan_id"]},
}


def sample_body(route: RouteDoc, world: Any, owner: dict[str, Any]) -> dict[str, Any] | None:
    if route.body is None:
        return None
    make = SAMPLE_BODIES.get(rid(route))
    if make is None:
        raise AssertionError(f"{rid(route)} takes a body: add a realistic one to SAMPLE_BODIES")
    return make(world, owner)


# ------------------------------------------------------------------ the models' fields

@dataclass(frozen=True)
class FieldInfo:
    path: tuple[str, ...]      # ("applicant", "monthly_income")
    kind: str                  # "str", "int", "literal", "model", "other"
    max_length: int | None
    upper: int | None          # le / lt bound of an int, if any
    model: type[BaseModel] | None = None


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def fields_of(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[FieldInfo]:
    found = []
    for name, info in model.model_fields.items():
        path = prefix + (name,)
        annotation = _strip_optional(info.annotation)
        max_length = upper = None
        for meta in info.metadata:
            max_length = getattr(meta, "max_length", None) or max_length
            le, lt = getattr(meta, "le", None), getattr(meta, "lt", None)
            upper = le if le is not None else (lt - 1 if lt is not None else upper)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.append(FieldInfo(path, "model", None, None, annotation))
            found.extend(fields_of(annotation, path))
        elif annotation is str:
            found.append(FieldInfo(path, "str", max_length, None))
        elif annotation is int:
            found.append(FieldInfo(path, "int", None, upper))
        elif typing.get_origin(annotation) is typing.Literal:
            found.append(FieldInfo(path, "literal", None, None))
        else:
            found.append(FieldInfo(path, "other", None, None))
    return found


def models_of(model: type[BaseModel]) -> list[type[BaseModel]]:
    return [model] + [f.model for f in fields_of(model) if f.kind == "model" and f.model]


def with_value(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `body` with the field at `path` set to `value` (nested dicts copied)."""
    copy = dict(body)
    if len(path) == 1:
        copy[path[0]] = value
    else:
        copy[path[0]] = with_value(dict(copy.get(path[0]) or {}), path[1:], value)
    return copy


# Fields a client never owns: who it belongs to, its state, the lender's numbers, server ids.
OWNED_FIELDS: dict[str, Any] = {
    "user_id": "u-victim", "owner": "u-victim", "sub": "u-victim", "principal_id": "u-victim",
    "status": "approved", "state": "active", "decision": "approved",
    "credit_limit": 99_999_999, "limit": 99_999_999, "available": 99_999_999, "drawn": 0,
    "apr": "0.0001", "rate": "0.0001", "principal": 1, "outstanding_principal": 0,
    "total_interest": 0, "penalty": 0, "paid": 99_999_999,
    "application_id": "a-forged", "loan_id": "l-forged", "card_id": "c-forged",
    "repayment_id": "r-forged", "notification_id": "n-forged", "id": "forged",
    "identity_verified": True, "verified": True, "phone_verified": True, "new_user": False,
    "role": "admin", "is_admin": True, "operator": "ops-jane", "reviewed_by": "ops-jane",
    "model_version": "forged", "decided_at": "2027-01-01T00:00:00+08:00",
    "created_at": "2027-01-01T00:00:00+08:00", "disbursed_at": "2027-01-01T00:00:00+08:00",
    "last4": "0000", "bank_name": "forged", "name_masked": "*三", "fam": "f-forged",
}


def as_owner(route, world, owner=None, credentials=True):
    """The route called by its rightful caller (`owner`, A by default) on her own objects, so
    only what the test changes stands between the request and a change. Without `credentials`
    the request carries no token or operator key (the test adds the one it tries)."""
    owner = owner or world.a
    headers = ({} if not credentials or not route.auth else
               world.ops() if route.auth == "ops" else dict(owner["headers"]))
    if route.idempotent:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    path = fill(route, {p: object_ids(p, owner, route)[0] for p in path_params(route)})
    return path, sample_body(route, world, owner), headers
