"""Personal data at rest: KMS envelope encryption and keyed-hash lookups.

- `seal`/`unseal`: a fresh AES-256 data key per value from KMS `GenerateDataKey` (the key
  aliased `config.pii_key_alias()`), AES-GCM on the value, and the encryption context
  `{"user_id", "purpose"}` bound both to the KMS data key and to the GCM tag. A ciphertext
  copied onto another user's item therefore does not decrypt.
- `keyed_hash`: HMAC-SHA256 with the `hmac` secret, separated by kind (`phone`, `id_number`,
  `card`, `openid`, `ip`). Lookups and uniqueness use it; a plain SHA-256 of an 18-digit ID
  number could be reversed by enumeration, a keyed hash cannot without the key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections import OrderedDict

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.auth.secret_store import secret_json
from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.errors import DependencyDown

_VERSION = "v1"


# Opened data keys, reused for a short while as the AWS Encryption SDK's caching materials
# manager does: a borrower's request then decrypts their identity with KMS at most once per
# container per TTL. Keyed by the encrypted key *and* its context, so a blob moved to another
# user or purpose still goes to KMS (and fails there). A KMS key disabled or a grant revoked
# takes effect here after at most the TTL.
DATA_KEY_TTL_SECONDS = 300.0
DATA_KEY_CACHE_SIZE = 1024
_data_keys: OrderedDict[tuple[bytes, bytes], tuple[float, bytes]] = OrderedDict()
_data_keys_lock = threading.Lock()


def clear_data_key_cache() -> None:
    with _data_keys_lock:
        _data_keys.clear()


def _cached_data_key(blob: bytes, aad: bytes) -> bytes | None:
    with _data_keys_lock:
        found = _data_keys.get((blob, aad))
        if found is None:
            return None
        if time.monotonic() - found[0] > DATA_KEY_TTL_SECONDS:
            del _data_keys[(blob, aad)]
            return None
        _data_keys.move_to_end((blob, aad))
        return found[1]


def _remember_data_key(blob: bytes, aad: bytes, key: bytes) -> None:
    with _data_keys_lock:
        _data_keys[(blob, aad)] = (time.monotonic(), key)
        _data_keys.move_to_end((blob, aad))
        while len(_data_keys) > DATA_KEY_CACHE_SIZE:
            _data_keys.popitem(last=False)


class SealBroken(Exception):
    """The ciphertext does not open under this user and purpose (moved, tampered, wrong key)."""


def _context(user_id: str, purpose: str) -> dict[str, str]:
    return {"user_id": user_id, "purpose": purpose}


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def seal(plaintext: str, *, user_id: str, purpose: str) -> str:
    context = _context(user_id, purpose)
    try:
        key = aws.client("kms").generate_data_key(KeyId=config.pii_key_alias(), KeySpec="AES_256",
                                                  EncryptionContext=context)
    except (ClientError, BotoCoreError):
        raise DependencyDown("Our encryption service is unavailable; nothing was saved. "
                             "Please try again shortly.") from None
    nonce = os.urandom(12)
    ciphertext = AESGCM(key["Plaintext"]).encrypt(nonce, plaintext.encode(), _aad(context))
    parts = (key["CiphertextBlob"], nonce, ciphertext)
    _remember_data_key(key["CiphertextBlob"], _aad(context), key["Plaintext"])
    return ":".join([_VERSION, *(base64.b64encode(p).decode() for p in parts)])


def unseal(sealed: str, *, user_id: str, purpose: str) -> str:
    context = _context(user_id, purpose)
    try:
        version, blob, nonce, ciphertext = sealed.split(":")
        if version != _VERSION:
            raise ValueError(version)
        blob_b, nonce_b, ct_b = (base64.b64decode(p) for p in (blob, nonce, ciphertext))
    except ValueError:
        raise SealBroken("not a sealed value") from None
    data_key = _cached_data_key(blob_b, _aad(context)) or _open_data_key(blob_b, context)
    try:
        return AESGCM(data_key).decrypt(nonce_b, ct_b, _aad(context)).decode()
    except InvalidTag:
        raise SealBroken("the value was altered") from None


def _open_data_key(blob: bytes, context: dict[str, str]) -> bytes:
    try:
        data_key = aws.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=context,
                                             KeyId=config.pii_key_alias())["Plaintext"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("InvalidCiphertextException",
                                                          "IncorrectKeyException"):
            raise SealBroken("the data key does not open under this context") from None
        raise DependencyDown("Our encryption service is unavailable; please try again shortly.") from None
    except BotoCoreError:
        raise DependencyDown("Our encryption service is unavailable; please try again shortly.") from None
    _remember_data_key(blob, _aad(context), data_key)
    return data_key


def _hmac_key() -> bytes:
    key = secret_json("hmac").get("key")
    if not isinstance(key, str) or len(key) < 32:
        raise DependencyDown("A configuration value is missing; please try again later.")
    return key.encode()


def keyed_hash(kind: str, value: str) -> str:
    """HMAC-SHA256(hmac secret, kind NUL value), hex. `kind` keeps the lookups apart."""
    return hmac.new(_hmac_key(), f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def mask_name(name: str) -> str:
    """`张三` -> `*三`, `欧阳娜娜` -> `***娜`: only the last character shows."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    return "*" * (len(name) - 1) + name[-1]
