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
    _message_sender.cache_clear()
    _payout_gateway.cache_clear()
    _payment_collector.cache_clear()


def clock() -> Any:
    """The service's clock: the wall clock when deployed; in the `local` stage the local
    stack's one clock (`chalicelib.core.testclock`, which `make jobs AT=` moves forward).
    Tests put a FixedClock here."""
    found = _overrides.get("clock")
    if found is not None:
        return found
    if config.is_local():
        from chalicelib.core.testclock import CLOCK
        return CLOCK
    from chalicelib.core.clock import SystemClock
    return SystemClock()


class ServiceClock:
    """A clock that is always `clock()`, for modules that keep a clock of their own."""

    def now(self) -> Any:
        return clock().now()


def outbox_path() -> str:
    return os.environ.get("OUTBOX_PATH", str(PROJECT_ROOT / "var" / "outbox.jsonl"))


@lru_cache(maxsize=1)
def _message_sender() -> MessageSender:
    return OutboxSender(outbox_path(), now=lambda: clock().now()) if config.is_local() else SnsSender()


def message_sender() -> MessageSender:
    return _overrides.get("message_sender") or _message_sender()



def _partner_secret(key: str) -> dict[str, str]:
    import json

    from chalicelib.core import aws
    return json.loads(aws.client("secretsmanager").get_secret_value(
        SecretId=config.secret_name(key))["SecretString"])


@lru_cache(maxsize=1)
def _payout_gateway() -> Any:
    from chalicelib.loans.payout import BankTransferPayout, SandboxPayout
    if config.is_local():
        return SandboxPayout()
    secret = _partner_secret("payout")
    return BankTransferPayout(base_url=secret["base_url"], merchant_id=secret["merchant_id"],
                              signing_key=secret["signing_key"].encode())


@lru_cache(maxsize=1)
def _payment_collector() -> Any:
    from chalicelib.repay.collection import SandboxCollector, WalletDebitCollector
    if config.is_local():
        return SandboxCollector()
    secret = _partner_secret("wallet")
    return WalletDebitCollector(base_url=secret["base_url"], merchant_id=secret["merchant_id"],
                                signing_key=secret["signing_key"].encode())


def payment_collector() -> Any:
    """The repayment collection port: the sandbox in `local`, the wallet's API elsewhere."""
    return _overrides.get("payment_collector") or _payment_collector()


def payout_gateway() -> Any:
    """The bank payout port: the sandbox twin in `local`, the bank's API elsewhere."""
    return _overrides.get("payout_gateway") or _payout_gateway()
