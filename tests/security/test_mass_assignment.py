"""Mass assignment: no write route lets a client set a field it does not own.

Every route with a body, given a valid body plus one field the lender owns (owner, status,
credit limit, rate, drawn amount, server ids, verification flags...), at the top level or
inside a nested object, is 400 UNKNOWN_FIELD naming that field, and nothing changes. The
models behind them are all strict (`extra="forbid"`, no coercion), checked on the classes too.
"""
from __future__ import annotations

import pytest

from tests.security.conftest import assert_error, assert_unchanged, snapshot
from tests.security.matrix import (OWNED_FIELDS, as_owner, body_routes, by_id, fields_of, models_of,
                                   rid, with_value)


@pytest.mark.parametrize("route", **by_id(body_routes()))
def test_every_body_model_is_strict(route):
    for model in models_of(route.body):
        assert model.model_config.get("extra") == "forbid", (rid(route), model.__name__)
        assert model.model_config.get("strict") is True, (rid(route), model.__name__)


@pytest.mark.parametrize("route", **by_id(body_routes()))
def test_owned_fields_are_refused_on_every_write_route(world, route):
    path, body, headers = as_owner(route, world)
    declared = {f.path for f in fields_of(route.body)}
    nested = [f.path for f in fields_of(route.body) if f.kind == "model"]
    extras = [((name,), value) for name, value in OWNED_FIELDS.items() if (name,) not in declared]
    extras += [(where + (name,), value) for where in nested
               for name, value in list(OWNED_FIELDS.items())[:6]]
    assert extras
    before = snapshot()
    for where, value in extras:
        status, answer, _ = world.call(route.method, path, body=with_value(body, where, value),
                                       headers=headers)
        what = f"{rid(route)} + {'.'.join(where)}"
        assert_error(status, answer, 400, ("UNKNOWN_FIELD",), what)
        assert ".".join(where) in answer["error"]["message"], what
    assert_unchanged(before, snapshot(), rid(route))


def test_the_sample_bodies_are_accepted_without_the_extras(world):
    """The bodies above are valid, so the 400s came from the extra field alone."""
    for route in body_routes():
        path, body, headers = as_owner(route, world)
        route.body.model_validate(body)
