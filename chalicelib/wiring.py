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
from chalicelib.adapters.messaging import MessageSender, OutboxSender, SnsSender
from chalicelib.core.observability import logger, metrics

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_overrides: dict[str, Any] = {}


def override(name: str, value: Any) -> None:
    _overrides[name] = value


def reset() -> None:
    _overrides.clear()
    forget_built()


def forget_built() -> None:
    """Drop the adapters built for this container (a new container builds them again)."""
    _message_sender.cache_clear()
    _payout_gateway.cache_clear()
    _payment_collector.cache_clear()


def clock() -> Any:
    """The service's clock: the wall clock when deployed; in the `local` stage the local
    stack's one clock (`chalicelib.adapters.testclock`, which `make jobs AT=` moves forward).
    Tests put a FixedClock here."""
    found = _overrides.get("clock")
    if found is not None:
        return found
    if config.is_local():
        from chalicelib.adapters.testclock import CLOCK
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



def partner_settings(key: str) -> dict[str, str]:
    """A partner's settings from its secret (`<prefix>/<key>`, cached per container for a few
    minutes), every required one present: `SettingsMissing` (503) names those that are not."""
    from chalicelib.auth.secret_store import secret_json
    from chalicelib.core.resources import secret_spec
    from chalicelib.core.settings import SettingsMissing, missing

    spec = secret_spec(key)
    value = secret_json(key)
    names = missing(spec, value)
    if names:
        error = SettingsMissing(spec, names, config.secret_name(key))
        logger.error("partner settings missing", extra={"secret": error.secret_name, "missing": names})
        metrics.add_metric(name="PartnerSettingsMissing", unit="Count", value=1)
        raise error
    return value


def settings_health(key: str) -> tuple[bool, str]:
    """GET /health's check of one partner's settings: which are missing, never a value."""
    from chalicelib.auth.secret_store import secret_json
    from chalicelib.core.errors import DependencyDown
    from chalicelib.core.resources import secret_spec
    from chalicelib.core.settings import missing

    if config.is_local():
        return True, "local sandbox (no settings needed)"
    try:
        names = missing(secret_spec(key), secret_json(key))
    except DependencyDown:
        return False, f"secret {config.secret_name(key)} cannot be read"
    return (False, "missing " + ", ".join(names)) if names else (True, "set")


def _register_health_checks() -> None:
    """The partners the API function calls, each a check of GET /health. (A partner only
    another function calls, such as the bank payout, is checked where it is used and by
    `python -m infra.readiness`: the API's role need not read its secret.)"""
    from chalicelib.api import system
    from chalicelib.core.resources import PARTNER_SECRETS
    for spec in PARTNER_SECRETS:
        if "api_handler" in spec.used_by:
            system.HEALTH_CHECKS[f"{spec.key}_settings"] = lambda key=spec.key: settings_health(key)


_register_health_checks()


@lru_cache(maxsize=1)
def _payout_gateway() -> Any:
    from chalicelib.loans.payout import BankTransferPayout, SandboxPayout
    if config.is_local():
        return SandboxPayout()
    settings = partner_settings("payout")
    return BankTransferPayout(base_url=settings["base_url"], merchant_id=settings["merchant_id"],
                              signing_key=settings["signing_key"].encode())


@lru_cache(maxsize=1)
def _payment_collector() -> Any:
    from chalicelib.repay.collection import SandboxCollector, WalletDebitCollector
    if config.is_local():
        return SandboxCollector()
    settings = partner_settings("wallet")
    return WalletDebitCollector(base_url=settings["base_url"], merchant_id=settings["merchant_id"],
                                signing_key=settings["signing_key"].encode())


def payment_collector() -> Any:
    """The repayment collection port: the sandbox in `local`, the wallet's API elsewhere."""
    return _overrides.get("payment_collector") or _payment_collector()


def payout_gateway() -> Any:
    """The bank payout port: the sandbox twin in `local`, the bank's API elsewhere."""
    return _overrides.get("payout_gateway") or _payout_gateway()
