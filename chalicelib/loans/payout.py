"""Payout port: sends a loan's principal to the borrower's bank card, at most once per key.

`BankTransferPayout` is the production adapter for a bank-transfer API (signed request,
timeout, idempotency key, error mapping); `SandboxPayout` is the contract's local twin:
succeeds, except to a card whose last four digits are `0000`, which is refused for good.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from chalicelib.adapters.transport import HttpPost, urllib_post


@dataclass(frozen=True)
class PayoutResult:
    paid: bool
    reference: str
    reason: str = ""


class PayoutUnavailable(Exception):
    """Transient: the bank did not answer or failed; the same key may be retried safely."""


@dataclass(frozen=True)
class PayoutOrder:
    idempotency_key: str  # the loan id: the bank pays a key once, however often it is asked
    amount: int  # fen
    card_number: str
    holder_name: str


class PayoutGateway(Protocol):
    def pay(self, order: PayoutOrder) -> PayoutResult: ...


class SandboxPayout:
    """Remembers each key's outcome, so a repeated key never pays twice (as a bank would)."""

    def __init__(self) -> None:
        self._done: dict[str, PayoutResult] = {}
        self._lock = threading.Lock()
        self.transfers: list[PayoutOrder] = []  # effective transfers, for tests and the outbox

    def pay(self, order: PayoutOrder) -> PayoutResult:
        with self._lock:
            if order.idempotency_key in self._done:
                return self._done[order.idempotency_key]
            if order.card_number.endswith("0000"):
                result = PayoutResult(False, f"sbx-{order.idempotency_key}", "CARD_REFUSED")
            else:
                result = PayoutResult(True, f"sbx-{order.idempotency_key}")
                self.transfers.append(order)
            self._done[order.idempotency_key] = result
            return result


class BankTransferPayout:
    """A bank's transfer API: `POST {base}/v1/transfers`, HMAC-SHA256 signed, keyed requests.

    2xx (or 409 "same key already done" with its result) -> paid; 4xx about the account ->
    refused for good; 429/5xx/timeouts -> PayoutUnavailable (retry with the same key).
    """

    REFUSALS = {"ACCOUNT_CLOSED", "ACCOUNT_INVALID", "ACCOUNT_FROZEN", "NAME_MISMATCH"}

    def __init__(self, base_url: str, merchant_id: str, signing_key: bytes,
                 transport: HttpPost = urllib_post, timeout: float = 5.0) -> None:
        if not base_url.startswith("https://"):
            raise ValueError("the payout API must be reached over https")
        self.base_url = base_url.rstrip("/")
        self.merchant_id = merchant_id
        self.signing_key = signing_key
        self.transport = transport
        self.timeout = timeout

    def _headers(self, body: bytes, key: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = hmac.new(self.signing_key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "Idempotency-Key": key,
                "X-Merchant-Id": self.merchant_id, "X-Timestamp": timestamp, "X-Signature": signature}

    def pay(self, order: PayoutOrder) -> PayoutResult:
        body = json.dumps({"amount": order.amount, "currency": "CNY", "account_number": order.card_number,
                           "account_name": order.holder_name, "reference": order.idempotency_key},
                          separators=(",", ":")).encode()
        try:
            status, raw = self.transport(f"{self.base_url}/v1/transfers", body,
                                         self._headers(body, order.idempotency_key), self.timeout)
        except (OSError, TimeoutError) as err:
            raise PayoutUnavailable(f"payout API unreachable: {type(err).__name__}") from None
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {}
        if status in (200, 201) or (status == 409 and answer.get("status") == "succeeded"):
            return PayoutResult(True, str(answer.get("transfer_id", "")))
        if status in (400, 422) and answer.get("code") in self.REFUSALS:
            return PayoutResult(False, str(answer.get("transfer_id", "")), str(answer["code"]))
        raise PayoutUnavailable(f"payout API answered {status} {answer.get('code', '')}".strip())
