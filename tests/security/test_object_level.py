"""Object-level authorization: borrower A, signed in for real, reaches for borrower B's objects.

Every bearer route with an id in its path, and every body field that names an object, answers
A exactly as it answers an id that never existed (404, same code, same message), so an id
leaks nothing, and nothing changes. Lists show A only A's own objects, and an idempotency key
of B's replays nothing of B's to A.
"""
from __future__ import annotations

import json
import uuid

import pytest

from tests.journeys import with_key
from tests.security.conftest import assert_error, assert_unchanged, snapshot
from tests.security.matrix import (OBJECT_OF, PUBLIC_IDS, bearer_routes, body_routes, by_id,
                                   fields_of, fill, object_ids, path_params, rid, sample_body,
                                   with_value)

ID_ROUTES = [r for r in bearer_routes() if path_params(r)]
LIST_ROUTES = [r for r in bearer_routes() if r.method == "GET" and not path_params(r)]
BODY_ID_FIELDS = [(r, f.path) for r in body_routes() if r.auth == "bearer"
                  for f in fields_of(r.body)
                  if f.path[-1].endswith("_id") and f.path[-1] not in PUBLIC_IDS]


def _headers(route, world):
    return with_key(world.a["headers"]) if route.idempotent else dict(world.a["headers"])


def test_the_matrix_covers_the_object_routes():
    assert {rid(r) for r in ID_ROUTES} >= {
        "GET /v1/me/bank-cards/{card_id}", "GET /v1/applications/{application_id}",
        "GET /v1/loans/{loan_id}", "POST /v1/loans/{loan_id}/cancel",
        "GET /v1/loans/{loan_id}/payoff", "POST /v1/loans/{loan_id}/repayments",
        "GET /v1/loans/{loan_id}/statement"}
    assert {(rid(r), p) for r, p in BODY_ID_FIELDS} >= {
        ("POST /v1/loans", ("application_id",)), ("POST /v1/loans", ("bank_card_id",))}


@pytest.mark.parametrize("route", **by_id(ID_ROUTES))
def test_another_borrowers_object_is_404_like_one_that_does_not_exist(world, route):
    names = path_params(route)
    body = sample_body(route, world, world.a)
    before = snapshot()
    for name in names:
        for victims_id in object_ids(name, world.b, route):
            own = {p: object_ids(p, world.a, route)[0] for p in names}
            status, answer, _ = world.call(route.method, fill(route, {**own, name: victims_id}),
                                           body=body, headers=_headers(route, world))
            assert_error(status, answer, 404, what=f"{rid(route)} on B's {name}")
            missing, never, _ = world.call(route.method,
                                           fill(route, {**own, name: str(uuid.uuid4())}),
                                           body=body, headers=_headers(route, world))
            assert (status, answer) == (missing, never), "B's id is told apart from a made-up one"
            assert victims_id not in json.dumps(answer)
    assert_unchanged(before, snapshot(), rid(route))


@pytest.mark.parametrize("route, field", [pytest.param(r, f, id=f"{rid(r)} {'.'.join(f)}")
                                          for r, f in BODY_ID_FIELDS])
def test_an_id_of_another_borrowers_object_in_a_body_is_404(world, route, field):
    kind = field[-1]
    assert kind in OBJECT_OF, f"body field {kind} names an object unknown to the matrix"
    path = fill(route, {p: object_ids(p, world.a, route)[0] for p in path_params(route)})
    own_body = sample_body(route, world, world.a)
    before = snapshot()
    for victims_id in object_ids(kind, world.b, route):
        status, answer, _ = world.call(route.method, path, body=with_value(own_body, field, victims_id),
                                       headers=_headers(route, world))
        assert_error(status, answer, 404, what=f"{rid(route)} with B's {kind}")
        missing, never, _ = world.call(route.method, path,
                                       body=with_value(own_body, field, str(uuid.uuid4())),
                                       headers=_headers(route, world))
        assert (status, answer) == (missing, never)
    assert_unchanged(before, snapshot(), f"{rid(route)} {kind}")


@pytest.mark.parametrize("route", **by_id(LIST_ROUTES))
def test_lists_and_profiles_show_only_the_callers_own_objects(world, route):
    status, answer, _ = world.call("GET", route.path, headers=world.a["headers"])
    assert status == 200, answer
    text = json.dumps(answer)
    victim = world.b
    for secret in (victim["user_id"], victim["card_id"], victim["application_id"], victim["loan_id"],
                   victim["scheduled_loan_id"], victim["repayment_id"]):
        assert secret not in text, (rid(route), secret)


def test_a_user_id_in_the_query_string_is_not_obeyed(world):
    for route in LIST_ROUTES:
        _, own, _ = world.call("GET", route.path, headers=world.a["headers"])
        _, asked, _ = world.call("GET", f"{route.path}?user_id={world.b['user_id']}",
                                 headers=world.a["headers"])
        assert asked == own, rid(route)


def test_another_borrowers_idempotency_key_replays_nothing_of_theirs(world):
    """Keys are scoped to the user: B's key and body, sent by A, are A's own new request."""
    victim, attacker = world.b, world.a

    def keyed(name):
        return {**attacker["headers"], "Idempotency-Key": victim["keys"][name]}

    before = snapshot()
    path = f"/v1/loans/{victim['loan_id']}/repayments"
    status, answer, _ = world.call("POST", path, body=victim["bodies"]["repay"],
                                   headers=keyed("repay"))
    assert_error(status, answer, 404, ("LOAN_NOT_FOUND",))
    status, answer, _ = world.call("POST", "/v1/loans", body=victim["bodies"]["draw"],
                                   headers=keyed("draw"))
    assert_error(status, answer, 404)
    assert_unchanged(before, snapshot(), "B's keys used by A")
    # the same key on A's own application is simply A's first use of it: a new application of A's
    status, answer, _ = world.call("POST", "/v1/applications", body=victim["bodies"]["apply"],
                                   headers=keyed("apply"))
    assert status == 201, answer
    assert answer["application_id"] != victim["application_id"]
    status, mine, _ = world.call("GET", f"/v1/applications/{answer['application_id']}",
                                 headers=attacker["headers"])
    assert status == 200 and mine["application_id"] == answer["application_id"]
