"""Tokens: what verification accepts and the forgeries it must refuse; key creation and rotation."""
from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chalicelib.auth import tokens
from chalicelib.adapters import aws
from chalicelib.core import config
from tests.auth_support import access_claims, b64url, hs256_token


def claims(**over):
    return access_claims(**{"sub": "u-1", "fam": "f-1", **over})


def test_a_fresh_access_token_verifies_with_its_claims(aws_stack):
    token = tokens.issue("access", user_id="u-1", family_id="f-1")
    got = tokens.verify(token, "access")
    assert got["sub"] == "u-1" and got["fam"] == "f-1" and got["typ"] == "access"
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == tokens.STORE.keyset().active_kid
    assert got["exp"] - got["iat"] == tokens.ACCESS_TTL


def test_leeway_is_at_most_sixty_seconds():
    assert 0 < tokens.LEEWAY <= 60


@pytest.mark.parametrize("forge", ["alg_none", "hs256_with_public_key", "unknown_kid",
                                   "foreign_key_with_our_kid", "tampered_payload",
                                   "wrong_aud", "wrong_iss", "expired_beyond_leeway",
                                   "not_yet_valid", "missing_exp", "refresh_as_access",
                                   "garbage", "empty"])
def test_forged_or_misused_tokens_are_refused(aws_stack, forge):
    active = tokens.STORE.keyset().active
    kid = active.kid
    if forge == "alg_none":
        token = jwt.encode(claims(), None, algorithm="none", headers={"kid": kid})
    elif forge == "hs256_with_public_key":
        # The classic key-confusion forgery: HMAC keyed with the (public) verification key.
        pem = active.public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        token = hs256_token(claims(), pem, kid)
    elif forge == "unknown_kid":
        token = jwt.encode(claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA",
                           headers={"kid": "ed25519-0000000000000000"})
    elif forge == "foreign_key_with_our_kid":
        token = jwt.encode(claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA",
                           headers={"kid": kid})
    elif forge == "tampered_payload":
        genuine = tokens.issue("access", user_id="u-1", family_id="f-1")
        head, _payload, sig = genuine.split(".")
        token = ".".join([head, b64url(json.dumps(claims(sub="u-2")).encode()), sig])
    elif forge == "wrong_aud":
        token = tokens.issue("access", user_id="u-1", family_id="f-1", extra={"aud": "someone-else"})
    elif forge == "wrong_iss":
        token = tokens.issue("access", user_id="u-1", family_id="f-1", extra={"iss": "https://evil"})
    elif forge == "expired_beyond_leeway":
        token = tokens.issue("access", user_id="u-1", family_id="f-1",
                             now=time.time() - tokens.ACCESS_TTL - tokens.LEEWAY - 5)
    elif forge == "not_yet_valid":
        token = tokens.issue("access", user_id="u-1", family_id="f-1", now=time.time() + 120)
    elif forge == "missing_exp":
        body = claims()
        del body["exp"]
        token = jwt.encode(body, active.private_key, algorithm="EdDSA", headers={"kid": kid})
    elif forge == "refresh_as_access":
        token = tokens.issue("refresh", user_id="u-1", family_id="f-1")
    elif forge == "garbage":
        token = "not.a.token"
    else:
        token = ""
    with pytest.raises(tokens.TokenInvalid) as caught:
        tokens.verify(token, "access")
    assert caught.value.status == 401
    expected = "TOKEN_EXPIRED" if forge == "expired_beyond_leeway" else "TOKEN_INVALID"
    assert caught.value.code == expected


def test_expiry_within_the_leeway_is_tolerated(aws_stack):
    token = tokens.issue("access", user_id="u-1", family_id="f-1",
                         now=time.time() - tokens.ACCESS_TTL - tokens.LEEWAY + 10)
    assert tokens.verify(token, "access")["sub"] == "u-1"


def test_an_access_token_is_not_a_refresh_token(aws_stack):
    token = tokens.issue("access", user_id="u-1", family_id="f-1")
    with pytest.raises(tokens.TokenInvalid):
        tokens.verify(token, "refresh")


def _secret():
    sm = aws.client("secretsmanager")
    return json.loads(sm.get_secret_value(SecretId=config.secret_name("jwt"))["SecretString"])


def test_first_use_creates_and_stores_the_key_pair(aws_stack):
    assert "keys" not in _secret()  # bootstrap leaves it without keys, as CloudFormation does
    tokens.issue("access", user_id="u-1", family_id="f-1")
    stored = _secret()
    assert stored["active_kid"] == stored["keys"][0]["kid"]
    assert stored["keys"][0]["alg"] == "EdDSA" and "PRIVATE KEY" in stored["keys"][0]["private_key"]


def test_two_containers_racing_to_create_keys_end_up_with_one_key_set(aws_stack, monkeypatch):
    first = tokens.KeyStore()
    second = tokens.KeyStore()
    winner = first.keyset().active_kid
    # The second container read the secret before the first one wrote it...
    real_read = second._read
    reads = []

    def stale_then_real(sm, **version):
        reads.append(version)
        return {} if len(reads) == 1 else real_read(sm, **version)

    monkeypatch.setattr(second, "_read", stale_then_real)
    # ...so it generates its own key, loses the conditional write and adopts the winner's.
    assert second.keyset().active_kid == winner
    assert reads[-1] == {"VersionId": tokens.INITIAL_VERSION}
    assert _secret()["active_kid"] == winner
    token = tokens.issue("access", user_id="u-1", family_id="f-1")
    assert jwt.get_unverified_header(token)["kid"] == winner


def test_rotation_signs_with_the_new_key_and_still_accepts_the_old(aws_stack, monkeypatch):
    before = tokens.issue("access", user_id="u-1", family_id="f-1")
    old_kid = jwt.get_unverified_header(before)["kid"]
    other_container = tokens.PublicKeyStore()  # a verifier elsewhere (the authorizer)
    assert set(other_container.keys()) == {old_kid}
    new_kid = tokens.STORE.rotate()
    after = tokens.issue("access", user_id="u-1", family_id="f-1")
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    assert tokens.verify(before, "access")["sub"] == "u-1"
    # A container that cached the old key set learns the new kid when a token shows it.
    monkeypatch.setattr(tokens, "RELOAD_INTERVAL", 0)
    monkeypatch.setattr(tokens, "VERIFIER", other_container)
    assert tokens.verify(after, "access")["sub"] == "u-1"
    assert set(other_container.keys()) == {old_kid, new_kid}


def _published():
    sm = aws.client("secretsmanager")
    return json.loads(sm.get_secret_value(SecretId=config.secret_name("jwks"))["SecretString"])


def test_verification_needs_only_the_published_public_halves(aws_stack):
    token = tokens.issue("access", user_id="u-1", family_id="f-1")
    published = _published()["keys"]
    assert [k["kid"] for k in published] == [k["kid"] for k in _secret()["keys"]]
    assert all(set(k) == {"kid", "alg", "public_key"} for k in published)
    assert "PRIVATE" not in json.dumps(published)
    # A verifier that cannot read the signing keys at all (the authorizer's role) still
    # verifies: the signing key set is gone, the public halves are enough.
    aws.client("secretsmanager").delete_secret(SecretId=config.secret_name("jwt"),
                                               ForceDeleteWithoutRecovery=True)
    tokens.VERIFIER.forget()
    assert tokens.verify(token, "access")["sub"] == "u-1"


def test_the_public_halves_are_published_once_for_the_same_key_set(aws_stack):
    tokens.issue("access", user_id="u-1", family_id="f-1")
    sm = aws.client("secretsmanager")
    name = config.secret_name("jwks")
    versions = len(sm.list_secret_version_ids(SecretId=name)["Versions"])
    tokens.KeyStore().keyset()  # another container loads the same set: nothing to write
    tokens.publish(sm, tokens.STORE.keyset())  # a racing publisher: the same version id
    assert len(sm.list_secret_version_ids(SecretId=name)["Versions"]) == versions
