"""Composition root: builds the providers for the current stage, lazily, once per container.

`local` gets the sandbox twins of the contract; `dev`/`prod` the real adapters. Tests replace
an entry with `override()`.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from chalicelib.core import config
from chalicelib.core.messaging import MessageSender, OutboxSender, SnsSender

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_overrides: dict[str, Any] = {}


def override(name: str, value: Any) -> None:
    _overrides[name] = value


def reset() -> None:
    _overrides.clear()
    message_sender.cache_clear()


def outbox_path() -> str:
    return os.environ.get("OUTBOX_PATH", str(PROJECT_ROOT / "var" / "outbox.jsonl"))


@lru_cache(maxsize=1)
def _message_sender() -> MessageSender:
    return OutboxSender(outbox_path()) if config.is_local() else SnsSender()


def message_sender() -> MessageSender:
    return _overrides.get("message_sender") or _message_sender()


message_sender.cache_clear = _message_sender.cache_clear  # type: ignore[attr-defined]
