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
needs `secretsmanager:PutSecretValue` on `<prefix>/jwt` in the function's policy. The key
set is cached per container for `secret_store.MAX_AGE` seconds and re-read (at most every
`RELOAD_INTERVAL` seconds) when a token names an unknown `kid`.
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
from chalicelib.core import aws, config
from chalicelib.core.errors import DependencyDown, Unauthorized

ALGORITHM = "EdDSA"
ACCESS_TTL = 15 * 60
REFRESH_TTL = 30 * 24 * 3600
LEEWAY = 30  # seconds of clock skew accepted on exp/nbf; the contract allows at most 60
SECRET_KEY = "jwt"
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
    """The key set of `<prefix>/jwt`, loaded lazily, created once, cached per container."""

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

    def keyset(self, *, reload: bool = False) -> KeySet:
        sm = aws.client("secretsmanager")
        with self._lock:
            age = time.monotonic() - self._loaded_at
            stale = (self._keyset is None or self._client is not sm or age >= MAX_AGE
                     or (reload and age >= RELOAD_INTERVAL))
            if stale:
                self._keyset = self._load(sm)
                self._client = sm
                self._loaded_at = time.monotonic()
            assert self._keyset is not None
            return self._keyset

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        found = self.keyset().keys.get(kid)
        if found is None:  # maybe rotated elsewhere: look again, but not on every bad token
            found = self.keyset(reload=True).keys.get(kid)
        return found.public_key if found else None

    def rotate(self) -> str:
        """Operator action: add a new key and make it active. Returns its kid."""
        sm = aws.client("secretsmanager")
        with self._lock:
            current = self._read(sm)
            if parse_keyset(current) is None:
                current = {"keys": []}
            key = new_key()
            keys = [key] + [k for k in current["keys"] if k.get("alg") == ALGORITHM][:KEEP_KEYS - 1]
            sm.put_secret_value(SecretId=self._secret_id(),
                                SecretString=json.dumps({"active_kid": key["kid"], "keys": keys}),
                                ClientRequestToken=f"jwt-keyset-{key['kid']}-{uuid.uuid4().hex[:12]}")
            self._keyset = None
            return key["kid"]

    def forget(self) -> None:
        with self._lock:
            self._keyset = None


STORE = KeyStore()


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
    public = STORE.verification_key(kid)
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
