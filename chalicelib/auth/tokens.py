"""Signed tokens: Ed25519 (JWT `EdDSA`) access and refresh tokens, keys in Secrets Manager.

Algorithm: EdDSA over Ed25519 only. Verification pins it (`algorithms=["EdDSA"]` and the
header's `alg` checked first), so `alg: none` and the HS256-with-the-public-key confusion are
refused before any key is used. `iss`, `aud`, `exp`, `nbf`, `iat`, `sub` and `jti` are
required; `exp`/`nbf` get `LEEWAY` seconds (<= 60) for clock skew. Access and refresh tokens
have different audiences and `typ`, so one can never stand in for the other.

Keys: the secret `<prefix>/jwt` holds
    {"active_kid": "...", "keys": [{"kid", "alg": "EdDSA", "private_key": PEM, "public_key": PEM,
                                    "created_at"}]}
Tokens are signed with the active key and carry its `kid`; any key still listed verifies,
which is how a rotation works (`rotate()` adds a key and makes it active; tokens signed with
the previous key keep working until they expire; keys beyond `KEEP_KEYS` are dropped).

CloudFormation cannot generate a key pair, so the secret is created holding `{}` and the
first container that needs a key creates the key set itself: it writes it with
`PutSecretValue` under a fixed `ClientRequestToken`. Secrets Manager accepts one value for a
given version id, so when two containers race, exactly one write wins and the loser reads
the winner's version back (`VersionId=INITIAL_VERSION`) instead of using its own key. This
needs `secretsmanager:PutSecretValue` on `<prefix>/jwt` in the function's policy.

Verification needs the public halves only, so they are published apart: the secret
`<prefix>/jwks` holds `{"keys": [{"kid", "alg", "public_key"}]}`, and only that is read to
verify a token. The API Gateway authorizer can therefore be allowed to read `jwks` and not
`jwt`: a leak of its role cannot sign tokens. The API, which signs, keeps `jwks` equal to the
public halves of `jwt` each time it reads `jwt` (a deterministic `ClientRequestToken`, so two
containers publishing the same set write one version). Both sets are cached per container for
`secret_store.MAX_AGE` seconds; the public set is re-read (at most every `RELOAD_INTERVAL`
seconds) when a token names an unknown `kid`.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chalicelib.auth.secret_store import MAX_AGE
from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.errors import DependencyDown, Unauthorized

ALGORITHM = "EdDSA"
ACCESS_TTL = 15 * 60
REFRESH_TTL = 30 * 24 * 3600
LEEWAY = 30  # seconds of clock skew accepted on exp/nbf; the contract allows at most 60
SECRET_KEY = "jwt"  # the signing key set (private and public halves): the API only
PUBLIC_SECRET_KEY = "jwks"  # the public halves: whoever verifies tokens
INITIAL_VERSION = "jwt-keyset-initial-00000000000000000000000001"  # 32-64 chars
KEEP_KEYS = 3
RELOAD_INTERVAL = 10.0
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]

_WWW = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def issuer() -> str:
    return f"{config.resource_prefix()}/auth"


def audience(kind: str) -> str:
    return f"{config.resource_prefix()}/{'api' if kind == 'access' else 'refresh'}"


class TokenInvalid(Unauthorized):
    code = "TOKEN_INVALID"

    def __init__(self, message: str = "The token is not valid; sign in again.",
                 code: str | None = None) -> None:
        super().__init__(message, code=code, headers=dict(_WWW))


class TokenExpired(TokenInvalid):
    code = "TOKEN_EXPIRED"

    def __init__(self) -> None:
        super().__init__("The token has expired; refresh it or sign in again.")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey | None
    public_key: Ed25519PublicKey


@dataclass(frozen=True)
class KeySet:
    active_kid: str
    keys: dict[str, SigningKey]

    @property
    def active(self) -> SigningKey:
        return self.keys[self.active_kid]


def new_key(now: datetime | None = None) -> dict[str, str]:
    """A fresh Ed25519 key pair as stored in the secret."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kid": "ed25519-" + hashlib.sha256(raw).hexdigest()[:16],
        "alg": ALGORITHM,
        "private_key": private.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
        "public_key": public.public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "created_at": (now or datetime.now(timezone.utc)).isoformat(),
    }


def parse_keyset(data: dict[str, Any]) -> KeySet | None:
    entries = data.get("keys")
    if not isinstance(entries, list) or not entries:
        return None
    keys = {}
    for entry in entries:
        if entry.get("alg") != ALGORITHM:
            continue
        public = serialization.load_pem_public_key(entry["public_key"].encode())
        private = (serialization.load_pem_private_key(entry["private_key"].encode(), password=None)
                   if entry.get("private_key") else None)
        if not isinstance(public, Ed25519PublicKey) or (
                private is not None and not isinstance(private, Ed25519PrivateKey)):
            continue
        keys[entry["kid"]] = SigningKey(entry["kid"], private, public)
    active = data.get("active_kid")
    if active not in keys or keys[active].private_key is None:
        return None
    return KeySet(active, keys)


class KeyStore:
    """The signing key set of `<prefix>/jwt`, loaded lazily, created once, cached per
    container; each load also publishes its public halves to `<prefix>/jwks`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keyset: KeySet | None = None
        self._client: Any = None
        self._loaded_at = 0.0

    def _secret_id(self) -> str:
        return config.secret_name(SECRET_KEY)

    def _read(self, sm: Any, **version: str) -> dict[str, Any]:
        raw = sm.get_secret_value(SecretId=self._secret_id(), **version).get("SecretString") or "{}"
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _load(self, sm: Any) -> KeySet:
        try:
            keyset = parse_keyset(self._read(sm))
            if keyset is None:
                keyset = self._initialise(sm)
            publish(sm, keyset)
        except (ClientError, BotoCoreError):
            raise DependencyDown("Sign-in is unavailable right now; please try again shortly.") from None
        return keyset

    def _initialise(self, sm: Any) -> KeySet:
        """First use: create the key set, or adopt the one a concurrent container wrote."""
        key = new_key()
        value = {"active_kid": key["kid"], "keys": [key]}
        try:
            sm.put_secret_value(SecretId=self._secret_id(), SecretString=json.dumps(value),
                                ClientRequestToken=INITIAL_VERSION)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
            value = self._read(sm, VersionId=INITIAL_VERSION)  # someone else won the race
        keyset = parse_keyset(value)
        if keyset is None:
            raise DependencyDown("Sign-in keys are misconfigured; please try again later.")
        return keyset

    def keyset(self) -> KeySet:
        sm = aws.client("secretsmanager")
        with self._lock:
            age = time.monotonic() - self._loaded_at
            stale = self._keyset is None or self._client is not sm or age >= MAX_AGE
            if stale:
                self._keyset = self._load(sm)
                self._client = sm
                self._loaded_at = time.monotonic()
            assert self._keyset is not None
            return self._keyset

    def rotate(self) -> str:
        """Operator action: add a new key and make it active. Returns its kid."""
        sm = aws.client("secretsmanager")
        with self._lock:
            current = self._read(sm)
            if parse_keyset(current) is None:
                current = {"keys": []}
            key = new_key()
            keys = [key] + [k for k in current["keys"] if k.get("alg") == ALGORITHM][:KEEP_KEYS - 1]
            value = {"active_kid": key["kid"], "keys": keys}
            sm.put_secret_value(SecretId=self._secret_id(), SecretString=json.dumps(value),
                                ClientRequestToken=f"jwt-keyset-{key['kid']}-{uuid.uuid4().hex[:12]}")
            rotated = parse_keyset(value)
            assert rotated is not None
            publish(sm, rotated)
            self._keyset = None
            return key["kid"]

    def forget(self) -> None:
        with self._lock:
            self._keyset = None


def public_halves(keyset: KeySet) -> dict[str, Any]:
    """What `<prefix>/jwks` holds for `keyset`: each key's kid, algorithm and public PEM."""
    return {"keys": [{"kid": key.kid, "alg": ALGORITHM, "public_key": key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
        for key in keyset.keys.values()]}


def publish(sm: Any, keyset: KeySet) -> None:
    """Make `<prefix>/jwks` the public halves of `keyset`, unless it already is."""
    wanted = public_halves(keyset)
    secret_id = config.secret_name(PUBLIC_SECRET_KEY)
    try:
        current = json.loads(sm.get_secret_value(SecretId=secret_id).get("SecretString") or "{}")
    except ValueError:
        current = {}
    if isinstance(current, dict) and current.get("keys") == wanted["keys"]:
        return
    body = json.dumps(wanted, sort_keys=True, separators=(",", ":"))
    # The same set always gets the same version id: racing publishers write one version.
    sm.put_secret_value(SecretId=secret_id, SecretString=body,
                        ClientRequestToken="jwks-" + hashlib.sha256(body.encode()).hexdigest()[:40])
    VERIFIER.forget()  # this container verifies with the new set at once


class PublicKeyStore:
    """The verification keys of `<prefix>/jwks`, cached per container. Never the private
    halves: this is all the API Gateway authorizer reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self._client: Any = None
        self._loaded_at = 0.0

    def _load(self, sm: Any) -> dict[str, Ed25519PublicKey]:
        try:
            raw = sm.get_secret_value(SecretId=config.secret_name(PUBLIC_SECRET_KEY)).get("SecretString")
        except (ClientError, BotoCoreError):
            raise DependencyDown("Sign-in is unavailable right now; please try again shortly.") from None
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            data = {}
        entries = data.get("keys") if isinstance(data, dict) else None
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("alg") != ALGORITHM:
                continue
            try:
                public = serialization.load_pem_public_key(str(entry.get("public_key", "")).encode())
            except ValueError:
                continue
            if isinstance(public, Ed25519PublicKey) and isinstance(entry.get("kid"), str):
                keys[entry["kid"]] = public
        return keys

    def keys(self, *, reload: bool = False) -> dict[str, Ed25519PublicKey]:
        sm = aws.client("secretsmanager")
        with self._lock:
            age = time.monotonic() - self._loaded_at
            stale = (self._keys is None or self._client is not sm or age >= MAX_AGE
                     or (reload and age >= RELOAD_INTERVAL))
            if stale:
                self._keys = self._load(sm)
                self._client = sm
                self._loaded_at = time.monotonic()
            assert self._keys is not None
            return self._keys

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        found = self.keys().get(kid)
        if found is None:  # maybe rotated elsewhere: look again, but not on every bad token
            found = self.keys(reload=True).get(kid)
        return found

    def forget(self) -> None:
        with self._lock:
            self._keys = None


STORE = KeyStore()
VERIFIER = PublicKeyStore()


def issue(kind: str, *, user_id: str, family_id: str, jti: str | None = None,
          now: float | None = None, ttl: int | None = None,
          extra: dict[str, Any] | None = None) -> str:
    """Sign an `access` or `refresh` token for `user_id` in refresh family `family_id`."""
    if kind not in ("access", "refresh"):
        raise ValueError(kind)
    issued = int(now if now is not None else time.time())
    lifetime = ttl if ttl is not None else (ACCESS_TTL if kind == "access" else REFRESH_TTL)
    claims = {"iss": issuer(), "aud": audience(kind), "sub": user_id, "typ": kind,
              "fam": family_id, "jti": jti or uuid.uuid4().hex, "iat": issued, "nbf": issued,
              "exp": issued + lifetime, **(extra or {})}
    key = STORE.keyset().active
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM,  # type: ignore[arg-type]
                      headers={"kid": key.kid, "typ": "JWT"})


def verify(token: str, kind: str) -> dict[str, Any]:
    """The claims of a genuine, current token of `kind`; TokenInvalid/TokenExpired otherwise.
    Signature and claims only: whether the family is still live is the service's check."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenInvalid()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenInvalid() from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or len(kid) > 64:
        raise TokenInvalid()
    public = VERIFIER.verification_key(kid)
    if public is None:
        raise TokenInvalid()
    try:
        claims = jwt.decode(token, public, algorithms=[ALGORITHM], audience=audience(kind),
                            issuer=issuer(), leeway=LEEWAY,
                            options={"require": REQUIRED_CLAIMS, "verify_signature": True,
                                     "verify_exp": True, "verify_nbf": True, "verify_iat": True,
                                     "verify_aud": True, "verify_iss": True})
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except jwt.InvalidTokenError:
        raise TokenInvalid() from None
    if claims.get("typ") != kind or not isinstance(claims.get("sub"), str) \
            or not isinstance(claims.get("fam"), str) or not isinstance(claims.get("jti"), str):
        raise TokenInvalid()
    return claims
