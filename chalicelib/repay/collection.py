"""Collection port: takes a repayment from the borrower's wallet, at most once per repayment id.

`WalletDebitCollector` is the production adapter for a wallet's deduction API (signed,
keyed, timed out); `SandboxCollector` is the local twin, which always succeeds.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Protocol

from chalicelib.core.errors import DependencyDown, RuleViolation
from chalicelib.adapters.transport import HttpPost, urllib_post


class NotCollected(Exception):
    """The wallet holds no debit for this repayment id: there is nothing to give back."""


class PaymentCollector(Protocol):
    def collect(self, *, repayment_id: str, user_id: str, amount: int) -> str: ...

    def refund(self, *, repayment_id: str, user_id: str, amount: int) -> str:
        """Give back the debit of `repayment_id` (once); NotCollected if there is none."""
        ...


class SandboxCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.collected: dict[str, int] = {}
        self.refunded: dict[str, int] = {}

    def collect(self, *, repayment_id: str, user_id: str, amount: int) -> str:
        with self._lock:
            self.collected.setdefault(repayment_id, amount)
        return f"sbx-{repayment_id}"

    def refund(self, *, repayment_id: str, user_id: str, amount: int) -> str:
        with self._lock:
            if repayment_id not in self.collected:
                raise NotCollected(repayment_id)
            self.refunded.setdefault(repayment_id, amount)
        return f"sbx-refund-{repayment_id}"


class WalletDebitCollector:
    """`POST {base}/v1/debits` (and `/v1/refunds`), HMAC-SHA256 signed, keyed by repayment id.

    2xx -> collected; 402/422 (insufficient balance, no agreement) -> 422 for the borrower:
    nothing was taken. Anything else (a timeout, a 5xx) is ambiguous: the wallet may have
    acted, so it is never reported as "nothing was charged" (the caller keeps the intent open
    and the reconciler settles it).
    """

    def __init__(self, base_url: str, merchant_id: str, signing_key: bytes,
                 transport: HttpPost = urllib_post, timeout: float = 5.0) -> None:
        if not base_url.startswith("https://"):
            raise ValueError("the wallet API must be reached over https")
        self.base_url, self.merchant_id, self.signing_key = base_url.rstrip("/"), merchant_id, signing_key
        self.transport, self.timeout = transport, timeout

    def _post(self, path: str, payload: dict, key: str, absent: type[Exception] | None = None) -> dict:
        body = json.dumps(payload, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                   "X-Merchant-Id": self.merchant_id, "X-Timestamp": stamp,
                   "X-Signature": hmac.new(self.signing_key, f"{stamp}.".encode() + body,
                                           hashlib.sha256).hexdigest()}
        try:
            status, raw = self.transport(self.base_url + path, body, headers, self.timeout)
        except (OSError, TimeoutError):
            raise DependencyDown("The wallet did not answer in time; whether it acted is not "
                                 "known yet.", code="PAYMENT_UNCONFIRMED") from None
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {}
        if 200 <= status < 300:
            return answer
        if status == 404 and absent is not None:
            raise absent(payload.get("reference"))
        if status in (402, 422):
            raise RuleViolation("Your wallet could not pay this amount.", code="PAYMENT_DECLINED")
        raise DependencyDown(f"The wallet answered {status}; whether it acted is not known yet.",
                             code="PAYMENT_UNCONFIRMED")

    def collect(self, *, repayment_id: str, user_id: str, amount: int) -> str:
        answer = self._post("/v1/debits", {"payer": user_id, "amount": amount, "currency": "CNY",
                                           "reference": repayment_id}, repayment_id)
        return str(answer.get("debit_id", ""))

    def refund(self, *, repayment_id: str, user_id: str, amount: int) -> str:
        answer = self._post("/v1/refunds", {"payee": user_id, "amount": amount, "currency": "CNY",
                                            "reference": repayment_id}, f"refund-{repayment_id}",
                           absent=NotCollected)
        return str(answer.get("refund_id", ""))
