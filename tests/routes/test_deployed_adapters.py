"""The deployed stage's adapters, through the functions that use them, on moto.

Everywhere else the suite runs the `local` stage, whose sandboxes (outbox SMS, sandbox bank
and wallet, `dev-<openid>` WeChat codes) make no AWS call. Deployed, the same functions read
the partners' settings from Secrets Manager and text through SNS: this journey runs them as
`dev` does (the partners' HTTPS APIs faked at the socket's edge), so that each of those calls
is made by the function that makes it in AWS, and the IAM coverage check sees it
(tests/test_iam_coverage.py). It also proves the composition root wires the real adapters
with the secrets' fields as the README tells an operator to fill them.
"""
from __future__ import annotations

import io
import json
import re
import socket
import urllib.parse
import urllib.request
from datetime import date, timedelta

import pytest

import app as app_module
from chalicelib import wiring
from chalicelib.auth import providers
from chalicelib.adapters import aws
from chalicelib.core import config
from infra.pump import QueuePump, invoke_schedule, schedules
from tests.journeys import ChaliceApi, approved_loan, card_ending, resident_id, with_key

PHONE = "13812348000"
SECRETS = {
    "wechat": {"app_id": "wx-app-1", "app_secret": "wx-secret-1"},
    "realname": {"base_url": "https://realname.example", "app_id": "rn-app-1", "app_secret": "rn-secret-1"},
    "payout": {"base_url": "https://bank.example", "merchant_id": "bank-merchant-1", "signing_key": "k1"},
    "wallet": {"base_url": "https://wallet.example", "merchant_id": "wallet-merchant-1", "signing_key": "k2"},
}


class FakePartners:
    """WeChat, the real-name vendor, the bank and the wallet, answering at urlopen."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, dict]] = []  # (host, path, headers, body or query)
        self.wallet_down = False

    def __call__(self, request: urllib.request.Request, timeout: float = 0) -> io.BytesIO:
        url = urllib.parse.urlsplit(request.full_url)
        headers = {k.lower(): v for k, v in request.header_items()}
        body = json.loads(request.data) if request.data else dict(urllib.parse.parse_qsl(url.query))
        self.requests.append((url.hostname or "", url.path, headers, body))
        if url.hostname == "api.weixin.qq.com":
            answer = {"openid": "o-" + body["code"], "access_token": "t", "expires_in": 7200}
        elif url.hostname == "realname.example":
            answer = {"result": "match"}
        elif url.hostname == "bank.example":
            answer = {"transfer_id": "tr-" + body["reference"], "status": "succeeded"}
        elif url.hostname == "wallet.example":
            if self.wallet_down:
                raise socket.timeout("the wallet did not answer")
            answer = {"debit_id": "db-1"} if url.path == "/v1/debits" else {"refund_id": "rf-1"}
        else:
            raise AssertionError(f"unexpected call to {request.full_url}")
        response = io.BytesIO(json.dumps(answer).encode())
        response.status = 200  # type: ignore[attr-defined]
        return response

    def to(self, host: str) -> list[tuple[str, dict, dict]]:
        return [(path, headers, body) for h, path, headers, body in self.requests if h == host]


@pytest.fixture()
def deployed(client, monkeypatch):
    """The `dev` stage's adapters over this test's moto account, partners faked."""
    sm = aws.client("secretsmanager")
    for key, value in SECRETS.items():
        sm.put_secret_value(SecretId=config.secret_name(key), SecretString=json.dumps(value))
    partners = FakePartners()
    monkeypatch.setattr(urllib.request, "urlopen", partners)
    # The stage's environment stays `local` (chalice's test client sets it on every request,
    # and the resource names follow it); what differs deployed is which adapters are built.
    monkeypatch.setattr(config, "is_local", lambda: False)
    wiring.forget_built()
    providers.forget_built()
    yield partners
    monkeypatch.undo()
    wiring.forget_built()
    providers.forget_built()


def texts_to(phone: str) -> list[str]:
    from moto.sns.models import sns_backends
    backend = sns_backends["123456789012"][config.region()]
    return [text for number, text in backend.sms_messages.values() if number == "+86" + phone]


def run_schedule(name: str, at) -> None:  # type: ignore[no-untyped-def]
    source = next(s for s in schedules(app_module.app) if s.name == name)
    invoke_schedule(app_module.app, source, at)


def test_a_borrower_journey_reaches_sns_and_each_partner_with_its_secret(client, deployed, clock):
    api = ChaliceApi(client)
    assert not config.is_local()

    status, signed = api.post("/v1/auth/wechat", {"code": "wx-code-1"})
    assert status == 200, signed
    (_, _, query), = deployed.to("api.weixin.qq.com")
    assert (query["appid"], query["secret"], query["code"]) == ("wx-app-1", "wx-secret-1", "wx-code-1")
    auth = {"Authorization": f"Bearer {signed['access_token']}"}

    status, body = api.post("/v1/auth/sms-codes", {"phone": PHONE})
    assert status == 202, body
    sent = texts_to(PHONE)
    assert len(sent) == 1
    code = re.search(r"\b(\d{6})\b", sent[0]).group(1)
    status, body = api.post("/v1/me/phone", {"phone": PHONE, "code": code}, auth)
    assert status == 200, body

    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": resident_id(date(1988, 5, 17))}, auth)
    assert status == 200, body
    (_, headers, _), = deployed.to("realname.example")
    assert headers["x-app-id"] == "rn-app-1"
    status, card = api.post("/v1/me/bank-cards", {"card_number": card_ending("4321")}, auth)
    assert status == 201, card

    decision, loan = approved_loan(api, auth, card["card_id"], amount=1_200_000, line=5_000_000)

    # The sweep queues it, the consumer pays it out through the bank, the notification
    # consumer texts the borrower through SNS.
    run_schedule("disbursement_sweep", clock.now())
    QueuePump(app_module.app).drain()
    (path, headers, transfer), = deployed.to("bank.example")
    assert (path, headers["x-merchant-id"]) == ("/v1/transfers", "bank-merchant-1")
    assert (transfer["amount"], transfer["account_number"][-4:]) == (1_200_000, "4321")
    status, current = api.get(f"/v1/loans/{loan['loan_id']}", auth)
    assert current["status"] == "active", current
    assert len(texts_to(PHONE)) == 2  # the code, then "disbursed"

    # A repayment debits the wallet; one whose debit times out is settled by the reconciler,
    # which refunds it through the wallet.
    status, paid = api.post(f"/v1/loans/{loan['loan_id']}/repayments", {"amount": 100_000}, with_key(auth))
    assert status == 201, paid
    deployed.wallet_down = True
    status, pending = api.post(f"/v1/loans/{loan['loan_id']}/repayments", {"amount": 50_000}, with_key(auth))
    assert status == 503, pending
    deployed.wallet_down = False
    run_schedule("repayment_reconciler", clock.now() + timedelta(minutes=30))
    calls = [(path, headers["x-merchant-id"], body["amount"]) for path, headers, body in deployed.to("wallet.example")]
    assert calls == [("/v1/debits", "wallet-merchant-1", 100_000), ("/v1/debits", "wallet-merchant-1", 50_000),
                     ("/v1/refunds", "wallet-merchant-1", 50_000)]
