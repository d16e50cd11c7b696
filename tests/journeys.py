"""Borrower journeys through the contract's routes, shared by route and end-to-end tests.

`api` is anything with `.post(path, json=..., headers=...)` / `.get(...)` returning
`(status, body)`: a wrapper around chalice's test client or around requests.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any, Callable

_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"


def resident_id(born: date, region: str = "110101", sequence: int = 123) -> str:
    """A checksum-valid 18-digit resident ID (GB 11643) for a person born on `born`."""
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + _CHECK[sum(int(d) * w for d, w in zip(body, _WEIGHTS)) % 11]


def card_ending(last4: str, prefix: str = "622202", length: int = 19) -> str:
    """A Luhn-valid card number with the given BIN prefix and last four digits."""
    middle = length - len(prefix) - len(last4)
    seed = uuid.uuid4().int % 10**middle
    for k in range(seed, seed + 100):
        candidate = prefix + str(k % 10**middle).rjust(middle, "0") + last4
        if _luhn_ok(candidate):
            return candidate
    raise AssertionError("unreachable: one middle in ten satisfies Luhn")


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def last_code(outbox: Path, phone: str) -> str:
    masked = f"{phone[:3]}****{phone[-4:]}"
    for line in reversed(outbox.read_text(encoding="utf-8").splitlines()):
        entry = json.loads(line)
        if entry["to"] == masked:
            found = re.search(r"\b(\d{6})\b", entry["text"])
            if found:
                return found.group(1)
    raise AssertionError(f"no code sent to {masked}")


GOOD_APPLICANT = {"monthly_income": 2_000_000, "monthly_expenses": 400_000, "assets": 50_000_000,
                  "debt": 0, "job_type": "fixed", "job_seniority_years": 8, "home": "owner",
                  "marital_status": "married"}


def ready_borrower(api: Any, outbox: Path, *, openid: str, phone: str, card: str,
                   born: date = date(1988, 5, 17)) -> dict[str, Any]:
    """Sign in with WeChat, bind a phone, pass real-name checks and add a card."""
    status, signed = api.post("/v1/auth/wechat", {"code": f"dev-{openid}"})
    assert status == 200, signed
    auth = {"Authorization": f"Bearer {signed['access_token']}"}
    status, body = api.post("/v1/auth/sms-codes", {"phone": phone})
    assert status == 202, body
    status, body = api.post("/v1/me/phone", {"phone": phone, "code": last_code(outbox, phone)}, auth)
    assert status == 200, body
    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": resident_id(born)}, auth)
    assert status == 200, body
    status, added = api.post("/v1/me/bank-cards", {"card_number": card}, auth)
    assert status == 201, added
    return {"headers": auth, "user_id": signed["user_id"], "card_id": added["card_id"],
            "tokens": signed}


class ChaliceApi:
    """`api` over chalice.test.Client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(self, method: str, path: str, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        raw = json.dumps(body).encode() if body is not None else b""
        response = getattr(self.client.http, method)(path, body=raw, headers=all_headers) \
            if method != "get" else self.client.http.get(path, headers=all_headers)
        try:
            payload = json.loads(response.body) if response.body else None
        except ValueError:
            payload = response.body
        return response.status_code, payload

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self._call("post", path, body, headers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self._call("get", path, None, headers)


class HttpApi:
    """`api` over requests against a running local stack."""

    def __init__(self, base: str) -> None:
        import requests
        self.base = base
        self.session = requests.Session()

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = self.session.post(self.base + path, json=body, headers=headers or {}, timeout=30)
        return response.status_code, (response.json() if response.content else None)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = self.session.get(self.base + path, headers=headers or {}, timeout=30)
        return response.status_code, (response.json() if response.content else None)


def deliver_notifications(client: Any) -> int:
    """Every queued notification through the real consumer, as the event source would (chalice
    test client, moto); each batch must succeed whole. Returns how many were delivered."""
    from tests import queues
    sent = 0
    while messages := queues.receive("notifications"):
        assert queues.consume(client, "notifications", messages) == set()
        sent += len(messages)
    return sent


def approved_loan(api: Any, auth: dict[str, str], card_id: str, *, amount: int,
                  line: int = 3_000_000, term: int = 12, method: str = "equal_installment",
                  **draw: Any) -> tuple[dict, dict]:
    """Apply for `line` with GOOD_APPLICANT (approved) and draw `amount` on it at once:
    (the decision, the loan) as the API answered them. `draw` adds fields (`disburse_at`)."""
    status, decision = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": line, "term_months": term, "purpose": "装修",
        "applicant": GOOD_APPLICANT}, with_key(auth))
    assert status == 201 and decision["status"] == "approved", decision
    status, loan = api.post("/v1/loans", {
        "application_id": decision["application_id"], "amount": amount, "term_months": term,
        "repayment_method": method, "bank_card_id": card_id, **draw}, with_key(auth))
    assert status == 201, loan
    return decision, loan


def with_key(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or str(uuid.uuid4())}


Waiter = Callable[[Callable[[], Any], float], Any]
