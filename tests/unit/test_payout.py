"""The payout port: the sandbox twin and the bank adapter over a stubbed transport."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from chalicelib.loans.payout import (BankTransferPayout, PayoutOrder, PayoutUnavailable,
                                     SandboxPayout)

ORDER = PayoutOrder(idempotency_key="loan-1", amount=500_000, card_number="6222021234567890123",
                    holder_name="张三")


def test_sandbox_pays_each_key_once():
    gateway = SandboxPayout()
    first, second = gateway.pay(ORDER), gateway.pay(ORDER)
    assert first.paid and second == first
    assert len(gateway.transfers) == 1


def test_sandbox_refuses_cards_ending_0000_for_good():
    gateway = SandboxPayout()
    order = PayoutOrder("loan-2", 100, "6222020000000000000", "李四")
    assert not gateway.pay(order).paid
    assert not gateway.pay(order).paid
    assert gateway.transfers == []


class StubBank:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def __call__(self, url, body, headers, timeout):
        self.requests.append((url, body, headers, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        return status, json.dumps(payload).encode()


def bank(stub):
    return BankTransferPayout("https://bank.example/api", "M001", b"secret", transport=stub, timeout=3)


def test_bank_request_is_signed_keyed_and_timed_out():
    stub = StubBank((201, {"transfer_id": "T9", "status": "succeeded"}))
    result = bank(stub).pay(ORDER)
    assert result.paid and result.reference == "T9"
    url, body, headers, timeout = stub.requests[0]
    assert url == "https://bank.example/api/v1/transfers" and timeout == 3
    assert headers["Idempotency-Key"] == "loan-1"
    expected = hmac.new(b"secret", f"{headers['X-Timestamp']}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == expected
    assert json.loads(body) == {"amount": 500_000, "currency": "CNY", "account_number": ORDER.card_number,
                                "account_name": "张三", "reference": "loan-1"}


def test_same_key_already_done_counts_as_paid():
    assert bank(StubBank((409, {"status": "succeeded", "transfer_id": "T1"}))).pay(ORDER).paid


def test_account_problems_are_refusals():
    result = bank(StubBank((422, {"code": "ACCOUNT_CLOSED"}))).pay(ORDER)
    assert not result.paid and result.reason == "ACCOUNT_CLOSED"


@pytest.mark.parametrize("answer", [(500, {}), (429, {"code": "RATE"}), (422, {"code": "WEIRD"}),
                                    TimeoutError(), OSError("reset")])
def test_everything_else_is_transient(answer):
    with pytest.raises(PayoutUnavailable):
        bank(StubBank(answer)).pay(ORDER)


def test_plain_http_is_refused():
    with pytest.raises(ValueError):
        BankTransferPayout("http://bank.example", "M", b"k")
