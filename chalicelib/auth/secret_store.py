"""Secrets Manager values as JSON, cached per container.

A cached value is kept for `MAX_AGE` seconds (so a rotation reaches every container) and only
while the boto3 client that read it is still the current one: `adapters.aws.reset()` (tests, the
local stack) therefore invalidates the cache too.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.errors import DependencyDown

MAX_AGE = 300.0
_cache: dict[str, tuple[float, Any, dict[str, Any]]] = {}
_lock = threading.Lock()


def secret_json(key: str, *, max_age: float = MAX_AGE) -> dict[str, Any]:
    """The secret `<prefix>/<key>` parsed as a JSON object ({} when empty or not JSON)."""
    client = aws.client("secretsmanager")
    with _lock:
        entry = _cache.get(key)
        if entry and entry[1] is client and time.monotonic() - entry[0] < max_age:
            return entry[2]
    try:
        raw = client.get_secret_value(SecretId=config.secret_name(key)).get("SecretString") or "{}"
    except (ClientError, BotoCoreError):
        raise DependencyDown("A configuration service is unavailable; please try again shortly.") from None
    try:
        value = json.loads(raw)
    except ValueError:
        value = {}
    if not isinstance(value, dict):
        value = {}
    with _lock:
        _cache[key] = (time.monotonic(), client, value)
    return value


def forget(key: str | None = None) -> None:
    with _lock:
        if key is None:
            _cache.clear()
        else:
            _cache.pop(key, None)
