"""Limits on what a request may carry, over every route of the registry.

- Body size: more than `MAX_BODY_BYTES` is 400 BODY_TOO_LARGE on every route, with or without
  a body model and before authentication (no token check, no database read is spent on it).
  The contract's statuses have no 413; its 400 is "a request we do not accept as sent".
- JSON nested past the parser's depth is 400 BODY_INVALID (it was a 500).
- Every string field declares a max length, and one character more is 400 FIELD_INVALID.
- Every integer field refuses floats, strings, booleans and negatives (400) and absurd sizes
  (400 or 422), and never answers 2xx or 5xx to them.
- Query parameters: the contract defines no paging, so no list route takes `limit`; the
  inbox is capped at `INBOX_PAGE` by the server, and an unknown `limit` changes nothing.
Nothing changes in any table, queue or the outbox for any of these.
"""
from __future__ import annotations

import json
import pytest

from chalicelib.api.http import MAX_BODY_BYTES
from tests.security.conftest import assert_error, assert_unchanged, snapshot
from tests.security.matrix import (as_owner, bearer_routes, body_routes, by_id, fields_of, path_params,
                                   rid, routes, with_value)


def _padded(body, size: int) -> bytes:
    """`body` (or {}) as JSON with a `pad` field making it exactly `size` bytes."""
    base = json.dumps({**(body or {}), "pad": ""}).encode()
    raw = json.dumps({**(body or {}), "pad": "x" * (size - len(base))}).encode()
    assert len(raw) == size
    return raw


# ------------------------------------------------------------------ body size

@pytest.mark.parametrize("route", **by_id(routes()))
def test_an_oversized_body_is_refused_on_every_route_before_anything_else(world, route):
    path, body, headers = as_owner(route, world)
    before = snapshot()
    for who, sent in (("anonymous", {}), ("caller", headers)):
        status, answer, _ = world.call(route.method, path, raw=_padded(body, MAX_BODY_BYTES + 1),
                                       headers=sent)
        assert_error(status, answer, 400, ("BODY_TOO_LARGE",), f"{rid(route)} as {who}")
    status, answer, _ = world.call(route.method, path, raw=b"[" * (10 * MAX_BODY_BYTES), headers=headers)
    assert_error(status, answer, 400, ("BODY_TOO_LARGE",), rid(route))
    assert_unchanged(before, snapshot(), rid(route))


@pytest.mark.parametrize("route", **by_id(body_routes()))
def test_a_body_at_the_limit_is_read_and_judged_on_its_fields(world, route):
    path, body, headers = as_owner(route, world)
    before = snapshot()
    status, answer, _ = world.call(route.method, path, raw=_padded(body, MAX_BODY_BYTES), headers=headers)
    assert_error(status, answer, 400, ("UNKNOWN_FIELD",), rid(route))  # `pad`, not the size
    assert_unchanged(before, snapshot(), rid(route))


@pytest.mark.parametrize("route", **by_id(body_routes()))
def test_json_nested_past_the_parsers_depth_is_400_not_500(world, route):
    path, _, headers = as_owner(route, world)
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000, b"[" * 16000):
        status, answer, _ = world.call(route.method, path, raw=raw, headers=headers)
        assert_error(status, answer, 400, ("BODY_INVALID",), rid(route))


# ------------------------------------------------------------------ fields

def _fields(kind):
    return [pytest.param(r, f, id=f"{rid(r)} {'.'.join(f.path)}")
            for r in body_routes() for f in fields_of(r.body) if f.kind == kind]


@pytest.mark.parametrize("route, field", _fields("str"))
def test_every_string_field_has_a_max_length_and_one_more_is_400(world, route, field):
    assert field.max_length is not None and field.max_length <= 4096, \
        f"{rid(route)} {field.path}: give the string a max_length"
    path, body, headers = as_owner(route, world)
    before = snapshot()
    status, answer, _ = world.call(route.method, path, headers=headers,
                                   body=with_value(body, field.path, "x" * (field.max_length + 1)))
    assert_error(status, answer, 400, ("FIELD_INVALID",), f"{rid(route)} {field.path}")
    assert "x" * 20 not in answer["error"]["message"]  # the input is not echoed back
    assert_unchanged(before, snapshot(), rid(route))


@pytest.mark.parametrize("route, field", _fields("int"))
def test_integer_fields_refuse_other_types_and_absurd_sizes(world, route, field):
    path, body, headers = as_owner(route, world)
    before = snapshot()
    for bad in (1.5, 100.0, "100", True, [1], {"fen": 1}, -1):
        status, answer, _ = world.call(route.method, path, headers=headers,
                                       body=with_value(body, field.path, bad))
        assert_error(status, answer, 400, ("FIELD_INVALID",), f"{rid(route)} {field.path}={bad!r}")
    for huge in (10**40, 2**63, 10**18):
        status, answer, _ = world.call(route.method, path, headers=headers,
                                       body=with_value(body, field.path, huge))
        assert status in (400, 422), (rid(route), field.path, huge, status, answer)
        assert_error(status, answer, status, what=f"{rid(route)} {field.path}={huge}")
    digits = json.dumps(body)[:-1] + ', "x": ' + "9" * 5000 + "}"
    status, answer, _ = world.call(route.method, path, headers=headers, raw=digits.encode())
    assert_error(status, answer, 400, what=rid(route))  # past Python's int-parsing limit
    assert_unchanged(before, snapshot(), rid(route))


def test_operators_cannot_open_a_line_above_the_products_ceiling(world):
    """An operator's approval has the same ceiling as an automatic one: the product's
    max_amount (the credit line would otherwise be unbounded: 10**40 fen was accepted)."""
    from chalicelib.loans import catalog
    ceiling = catalog.get_product("revolving-credit").max_amount
    path = f"/v1/ops/applications/{world.a['review_application_id']}/decision"
    before = snapshot()
    for limit in (ceiling + 1, 10**15):
        status, answer, _ = world.call("POST", path, headers=world.ops(), body={
            "status": "approved", "credit_limit": limit, "note": "fat finger"})
        assert_error(status, answer, 422, ("CREDIT_LIMIT_OUT_OF_RANGE",))
    assert_unchanged(before, snapshot(), "operator decision above the ceiling")


# ------------------------------------------------------------------ query parameters and pages

@pytest.mark.parametrize("route", **by_id([r for r in routes() if r.query]))
def test_declared_query_parameters_refuse_garbage(world, route):
    path, _, headers = as_owner(route, world)
    before = snapshot()
    for name in route.query:
        for bad in ("x", "2027-02-30", "9" * 5000, "%00", "2027-01-10T00:00:00+08:00"):
            status, answer, _ = world.call(route.method, f"{path}?{name}={bad}", headers=headers)
            assert_error(status, answer, 400, what=f"{rid(route)} ?{name}={bad[:20]}")
    assert_unchanged(before, snapshot(), rid(route))


def test_no_route_takes_a_page_size_the_contract_does_not_define():
    assert not [rid(r) for r in routes() if {"limit", "page_size", "per_page"} & set(r.query)]


@pytest.mark.parametrize("route", **by_id([r for r in bearer_routes()
                                            if r.method == "GET" and not path_params(r)]))
def test_a_page_size_in_the_query_changes_nothing(world, route):
    _, plain, _ = world.call("GET", route.path, headers=world.a["headers"])
    for limit in ("100000", "-1", "0", "x"):
        status, asked, _ = world.call("GET", f"{route.path}?limit={limit}", headers=world.a["headers"])
        assert status == 200 and asked == plain, (rid(route), limit)


def test_the_inbox_answers_at_most_one_page(world):
    from chalicelib.repay.models import NotificationRecord
    from chalicelib.repay.notifications import INBOX_PAGE
    made = []
    for k in range(INBOX_PAGE + 5):
        record = NotificationRecord(user_id=world.a["user_id"], notification_id=f"bulk-{k:03d}",
                                    kind="due_soon", channel="push", text="还款提醒",
                                    created_at=f"2027-01-09T00:{k // 60:02d}:{k % 60:02d}+08:00",
                                    status="sent", lease_until=0)
        record.save()
        made.append(record)
    try:
        status, inbox, _ = world.call("GET", "/v1/me/notifications?limit=100000",
                                      headers=world.a["headers"])
        assert status == 200 and len(inbox["items"]) == INBOX_PAGE
    finally:
        for record in made:
            record.delete()


# ------------------------------------------------------------------ headers and unknown routes

def test_a_correlation_id_is_echoed_only_when_it_is_a_short_safe_token(world):
    for bad in ("x" * 129, "a b", "id\u2028two", "<script>", "a;b=c"):
        _, _, headers = world.call("GET", "/health", headers={"X-Request-Id": bad})
        assert headers["X-Request-Id"] != bad and len(headers["X-Request-Id"]) <= 128, bad
    _, _, headers = world.call("GET", "/health", headers={"X-Request-Id": "req-123.abc:9"})
    assert headers["X-Request-Id"] == "req-123.abc:9"


@pytest.mark.parametrize("method, path", [("DELETE", "/v1/loans/l-1"), ("PUT", "/v1/me"),
                                          ("PATCH", "/v1/ops/portfolio")])
def test_a_method_a_route_does_not_have_answers_the_contracts_error_body(world, method, path):
    status, answer, _ = world.call(method, path, headers=world.a["headers"])
    assert_error(status, answer, 405, ("METHOD_NOT_ALLOWED",), f"{method} {path}")


def test_unknown_paths_get_the_contracts_404_from_api_gateway():
    """An unknown path never reaches the function: API Gateway answers it (403 "Missing
    Authentication Token", echoing the Authorization header) unless the deploy template maps
    its gateway responses to the contract's body. (`chalice local` emulates the raw answer.)"""
    from infra.template import GATEWAY_RESPONSES
    mapped = {kind: (status, code) for kind, status, code, _ in GATEWAY_RESPONSES}
    assert mapped["MISSING_AUTHENTICATION_TOKEN"] == ("404", "NOT_FOUND")
    assert mapped["DEFAULT_5XX"][1] == "INTERNAL_ERROR"
    assert {"UNAUTHORIZED", "ACCESS_DENIED"} <= set(mapped)
    # The gateway's own throttling, size limit and any other refusal also take the contract's body.
    assert mapped["THROTTLED"] == ("429", "RATE_LIMITED")
    assert mapped["REQUEST_TOO_LARGE"][0] == "413" and "DEFAULT_4XX" in mapped
