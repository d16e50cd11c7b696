"""Lazily created, per-container boto3 clients.

Never create a client at import time: it would escape moto in tests and pay its cost at cold
start in functions that do not need it. `reset()` drops the cache (tests, local stack).
"""
from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.core import config

_clients: dict[str, Any] = {}
_lock = threading.Lock()
_BOTO_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def client(service: str) -> Any:
    return cached(service, lambda: boto3.session.Session().client(
        service, region_name=config.region(), config=_BOTO_CONFIG))


def cached(key: str, make: Any) -> Any:
    """A per-container object made once by `make()` (a connection, say), dropped by `reset()`."""
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = make()
    return found


def reset() -> None:
    with _lock:
        _clients.clear()


def queue_url(key: str) -> str:
    """URL of the project's queue `key` (cached; one GetQueueUrl per container)."""
    cache_key = f"sqs-url:{key}"
    found = _clients.get(cache_key)
    if found is None:
        found = client("sqs").get_queue_url(QueueName=config.queue_name(key))["QueueUrl"]
        _clients[cache_key] = found
    return found
