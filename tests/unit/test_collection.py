"""The wallet-debit adapter: signed, keyed by repayment id, and each answer mapped."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from chalicelib.core.errors import DependencyDown, RuleViolation
from chalicelib.repay.collection import NotCollected, SandboxCollector, WalletDebitCollector

KEY = b"k" * 32


class Transport:
    def __init__(self, status: int = 200, answer: dict | None = None, error: Exception | None = None):
        self.status, self.answer, self.error, self.sent = status, answer or {}, error, []

    def __call__(self, url, body, headers, timeout):
        self.sent.append((url, json.loads(body), headers, body))
        if self.error:
            raise self.error
        return self.status, json.dumps(self.answer).encode()


def wallet(transport):
    return WalletDebitCollector("https://wallet.example/", "m-1", KEY, transport=transport)


def test_a_debit_is_signed_and_keyed_by_the_repayment_id():
    transport = Transport(answer={"debit_id": "d-9"})
    assert wallet(transport).collect(repayment_id="r-1", user_id="u-1", amount=12_345) == "d-9"
    url, payload, headers, raw = transport.sent[0]
    assert url == "https://wallet.example/v1/debits"
    assert payload == {"payer": "u-1", "amount": 12_345, "currency": "CNY", "reference": "r-1"}
    assert headers["Idempotency-Key"] == "r-1" and headers["X-Merchant-Id"] == "m-1"
    expected = hmac.new(KEY, f"{headers['X-Timestamp']}.".encode() + raw, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == expected


@pytest.mark.parametrize("status, error", [(402, RuleViolation), (422, RuleViolation),
                                           (500, DependencyDown), (409, DependencyDown)])
def test_wallet_refusals_and_failures_are_mapped(status, error):
    with pytest.raises(error):
        wallet(Transport(status=status)).collect(repayment_id="r-1", user_id="u-1", amount=1)


@pytest.mark.parametrize("transport", [Transport(error=TimeoutError()), Transport(status=500),
                                       Transport(status=503)], ids=["timeout", "500", "503"])
def test_no_answer_is_unconfirmed_never_nothing_charged(transport):
    # A timeout or a 5xx may come after the wallet acted: nobody may be told nothing was taken
    with pytest.raises(DependencyDown) as caught:
        wallet(transport).collect(repayment_id="r-1", user_id="u-1", amount=1)
    assert caught.value.code == "PAYMENT_UNCONFIRMED"
    assert "nothing was charged" not in caught.value.message.lower()


def test_a_refund_of_a_debit_the_wallet_never_made_is_not_collected():
    transport = Transport(status=404)
    with pytest.raises(NotCollected):
        wallet(transport).refund(repayment_id="r-1", user_id="u-1", amount=1)
    assert transport.sent[0][2]["Idempotency-Key"] == "refund-r-1"
    with pytest.raises(DependencyDown):  # a 404 on a debit is not "nothing to give back"
        wallet(Transport(status=404)).collect(repayment_id="r-1", user_id="u-1", amount=1)


def test_the_wallet_is_reached_over_https_only():
    with pytest.raises(ValueError):
        WalletDebitCollector("http://wallet.example", "m-1", KEY)


def test_the_sandbox_gives_back_only_what_it_took():
    sandbox = SandboxCollector()
    sandbox.collect(repayment_id="r-1", user_id="u-1", amount=5)
    sandbox.refund(repayment_id="r-1", user_id="u-1", amount=5)
    with pytest.raises(NotCollected):
        sandbox.refund(repayment_id="r-2", user_id="u-1", amount=5)
    assert sandbox.refunded == {"r-1": 5}
