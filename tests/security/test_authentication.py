"""Who may call what, over every route of the registry.

Bearer routes: no token, a malformed header, every kind of forged token and an operator's
credentials are 401 with the contract's error body, and change nothing. Ops routes: anything
but the operator's credentials (a borrower's genuine token included) is 403 OPS_FORBIDDEN and
changes nothing. (tests/routes/test_auth_attacks.py checks the token verifier itself on a few
/v1/me routes and the API Gateway authorizer; this is the same over every route.)
"""
from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chalicelib.auth import tokens
from tests.auth_support import access_claims, b64url, hs256_token, tampered
from tests.security.conftest import assert_error, assert_unchanged, snapshot
from tests.security.matrix import (APP, as_owner, bearer_routes, by_id, expected_auth, ops_routes, rid,
                                   routes)

TOKEN_CODES = ("TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED")


def test_the_registry_is_exactly_what_the_app_serves():
    declared = [(r.path, r.method) for r in routes()]
    served = {(path, method) for path, entries in APP.routes.items() for method in entries}
    assert len(declared) == len(set(declared)), "a route is declared twice"
    # HEAD is served beside every GET (the same view, authenticated the same way), nowhere else
    heads = {(path, "HEAD") for path, method in declared if method == "GET"}
    assert set(declared) | heads == served


@pytest.mark.parametrize("route", **by_id(routes()))
def test_every_route_has_the_auth_the_contract_asks_for(route):
    assert route.auth == expected_auth(route.path), rid(route)
    if route.idempotent:
        assert route.auth is not None, "idempotency keys are scoped to a principal"


def test_the_matrix_is_not_empty():
    """A guard against a registry that went missing and a matrix that silently tests nothing."""
    assert len(bearer_routes()) >= 15 and len(ops_routes()) >= 4


# ------------------------------------------------------------------ forged and foreign tokens

@pytest.fixture(scope="module")
def forged(world):
    """Tokens that claim to be borrower B, none of which may be accepted."""
    victim = world.b
    genuine = victim["tokens"]["access_token"]
    family = jwt.decode(genuine, options={"verify_signature": False})["fam"]
    key = tokens.STORE.keyset().active
    public_pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    public_raw = key.public_key.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
    now = int(time.time())
    claims = access_claims(victim["user_id"], family, jti=uuid.uuid4().hex, now=now)
    head, payload, _sig = genuine.split(".")

    def signed(changes=None, drop=()):
        body = {k: v for k, v in {**claims, **(changes or {})}.items() if k not in drop}
        return jwt.encode(body, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})

    # A second session of B that gets revoked: its access token must stop working at once.
    from chalicelib.auth.models import RefreshFamilyRecord
    _, second = world.api.post("/v1/auth/wechat", {"code": "dev-o_victim"})
    second_family = jwt.decode(second["access_token"], options={"verify_signature": False})["fam"]
    RefreshFamilyRecord.get(f"FAMILY#{second_family}").update(
        actions=[RefreshFamilyRecord.revoked.set(True)])
    return {
        "wrong_key_same_kid": jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                         headers={"kid": key.kid}),
        "unknown_kid": jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                  headers={"kid": "ed25519-0123456789abcdef"}),
        "no_kid": jwt.encode(claims, key.private_key, algorithm="EdDSA"),
        "alg_none": jwt.encode(claims, None, algorithm="none", headers={"kid": key.kid}),
        "alg_none_unsigned_genuine": ".".join([b64url(json.dumps({"alg": "none", "kid": key.kid}).encode()),
                                               payload, ""]),
        "hs256_with_public_pem": hs256_token(claims, public_pem, key.kid),
        "hs256_with_public_raw": hs256_token(claims, public_raw, key.kid),
        "tampered_sub": tampered(genuine, sub=world.a["user_id"]),
        "signature_stripped": f"{head}.{payload}.",
        "expired": signed({"iat": now - 3600, "nbf": now - 3600, "exp": now - 120}),
        "not_yet_valid": signed({"nbf": now + 3600, "exp": now + 7200}),
        "wrong_aud_refresh": signed({"aud": tokens.audience("refresh")}),
        "wrong_aud_other_stage": signed({"aud": "lending-prod/api"}),
        "wrong_iss": signed({"iss": "lending-prod/auth"}),
        "wrong_typ": signed({"typ": "refresh"}),
        "missing_fam": signed(drop=("fam",)),
        "missing_jti": signed(drop=("jti",)),
        "missing_exp": signed(drop=("exp",)),
        "sub_not_a_string": signed({"sub": 12345}),
        "unknown_family": signed({"fam": "f" * 32}),
        "revoked_session": second["access_token"],
        "refresh_token_as_access": victim["tokens"]["refresh_token"],
        "oversized": genuine + "A" * 5000,
        "garbage": "not.a.jwt",
    }


def _attacks(world, forged):
    """(name, headers) pairs: each must be refused with 401."""
    attacks = [("no_header", {}), ("empty", {"Authorization": ""}),
               ("scheme_only", {"Authorization": "Bearer"}),
               ("basic", {"Authorization": "Basic dXNlcjpwYXNz"}),
               ("token_without_scheme", {"Authorization": world.b["tokens"]["access_token"]}),
               ("ops_key_instead", world.ops()),
               ("ops_key_as_bearer", {"Authorization": f"Bearer {world.ops_key}"})]
    attacks += [(name, {"Authorization": f"Bearer {token}"}) for name, token in forged.items()]
    return attacks


@pytest.mark.parametrize("route", **by_id(bearer_routes()))
def test_bearer_routes_refuse_missing_and_forged_tokens(world, forged, route):
    path, body, headers = as_owner(route, world, owner=world.b, credentials=False)  # B's own request
    before = snapshot()
    for name, attack in _attacks(world, forged):
        status, answer, answered_headers = world.call(route.method, path, body=body,
                                                      headers={**headers, **attack})
        assert_error(status, answer, 401, TOKEN_CODES, f"{rid(route)} with {name}")
        assert answered_headers.get("WWW-Authenticate", "").startswith("Bearer"), name
    assert_unchanged(before, snapshot(), rid(route))
    if route.method == "GET":  # the victim's genuine token still works: the refusals were real
        status, answer, _ = world.call(route.method, path, headers=world.b["headers"])
        assert status == 200, answer


def test_an_expired_token_says_so(world, forged):
    status, answer, _ = world.call("GET", "/v1/me", headers={"Authorization": f"Bearer {forged['expired']}"})
    assert_error(status, answer, 401, ("TOKEN_EXPIRED",))
    status, answer, _ = world.call("GET", "/v1/me",
                                   headers={"Authorization": f"Bearer {forged['revoked_session']}"})
    assert_error(status, answer, 401, ("TOKEN_REVOKED",))


# ------------------------------------------------------------------ operators' routes

@pytest.mark.parametrize("route", **by_id(ops_routes()))
def test_ops_routes_refuse_everyone_but_an_operator(world, forged, route):
    path, body, _headers = as_owner(route, world, owner=world.b, credentials=False)
    genuine = world.b["headers"]
    attempts = {
        "nothing": {},
        "borrower_token": genuine,
        "borrower_token_and_wrong_key": {**genuine, "X-Ops-Key": "wrong"},
        "wrong_key": {"X-Ops-Key": "0" * len(world.ops_key)},
        "empty_key": {"X-Ops-Key": ""},
        "key_prefix": {"X-Ops-Key": world.ops_key[:-1]},
        "key_with_suffix": {"X-Ops-Key": world.ops_key + "0"},
        "key_as_bearer": {"Authorization": f"Bearer {world.ops_key}"},
        "forged_token": {"Authorization": f"Bearer {forged['alg_none']}"},
    }
    before = snapshot()
    for name, headers in attempts.items():
        status, answer, _ = world.call(route.method, path, body=body, headers=headers)
        assert_error(status, answer, 403, ("OPS_FORBIDDEN",), f"{rid(route)} with {name}")
    assert_unchanged(before, snapshot(), rid(route))
    # the operator's key gets past authentication (without a body, so a write stops at 400)
    status, answer, _ = world.call(route.method, path, headers=world.ops())
    assert status == (200 if route.method == "GET" else 400), answer
