"""Partner secrets created empty (`{}`): named at /health and by `infra.readiness`, and an
adapter refuses with the settings it misses (503, nothing done) instead of a KeyError.

Deployed stages are simulated by `STAGE=prod` (real adapters) on the test account's
resources; the local stage's sandboxes need no settings.
"""
from __future__ import annotations

import json

import pytest

from chalicelib import wiring
from chalicelib.auth import secret_store
from chalicelib.adapters import aws
from chalicelib.core.settings import SettingsMissing
from chalicelib.loans import credit, disbursement
from chalicelib.loans.models import LoanRecord
from chalicelib.repay import service as repay
from chalicelib.repay.models import RepaymentRecord
from infra.readiness import missing_settings
from tests.routes.conftest import NOW, draw

SECRET_VALUE = "s3cr3t-do-not-show"
FILLED = {
    "wechat": {"app_id": "wx-app", "app_secret": SECRET_VALUE},
    "realname": {"base_url": "https://realname.example", "app_id": "rn", "app_secret": SECRET_VALUE},
    "payout": {"base_url": "https://bank.example", "merchant_id": "m-1", "signing_key": SECRET_VALUE},
    "wallet": {"base_url": "https://wallet.example", "merchant_id": "m-2", "signing_key": SECRET_VALUE},
}


def put(key, value):
    aws.client("secretsmanager").put_secret_value(SecretId=f"lending-local/{key}", SecretString=json.dumps(value))
    secret_store.forget()


@pytest.fixture()
def deployed_adapters(monkeypatch):
    """Real adapters, as deployed: no test override, nothing cached from another stage."""
    monkeypatch.setenv("STAGE", "prod")
    for name in ("payout_gateway", "payment_collector"):
        wiring._overrides.pop(name, None)
    wiring._payout_gateway.cache_clear()
    wiring._payment_collector.cache_clear()
    secret_store.forget()
    yield
    wiring._payout_gateway.cache_clear()
    wiring._payment_collector.cache_clear()
    secret_store.forget()


def test_health_is_ok_locally_where_the_sandboxes_need_no_settings(client):
    body = client.http.get("/health").json_body
    assert body["status"] == "ok"
    assert body["checks"]["wallet_settings"] == {"ok": True, "detail": "local sandbox (no settings needed)"}


def test_deployed_health_is_degraded_naming_each_missing_setting_never_a_value(prod_client):
    for key in ("wechat", "realname", "wallet"):
        put(key, {})
    put("wechat", FILLED["wechat"])
    put("realname", {"base_url": "http://realname.example", "app_id": "rn", "app_secret": SECRET_VALUE})
    response = prod_client.http.get("/health")
    body = response.json_body
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["checks"]["wechat_settings"] == {"ok": True, "detail": "set"}
    assert body["checks"]["realname_settings"] == {
        "ok": False, "detail": "missing realname.base_url (must start with https://)"}
    assert body["checks"]["wallet_settings"] == {
        "ok": False, "detail": "missing wallet.base_url, wallet.merchant_id, wallet.signing_key"}
    assert "payout_settings" not in body["checks"]  # the API's role does not read the bank's secret
    assert SECRET_VALUE not in response.body.decode()

    put("realname", FILLED["realname"])
    put("wallet", FILLED["wallet"])
    body = prod_client.http.get("/health").json_body
    assert body["status"] == "ok", body
    assert all(check["ok"] for check in body["checks"].values())


def test_deployed_health_says_when_a_secret_cannot_be_read(prod_client):
    aws.client("secretsmanager").delete_secret(SecretId="lending-local/wallet", ForceDeleteWithoutRecovery=True)
    secret_store.forget()
    body = prod_client.http.get("/health").json_body
    assert body["status"] == "degraded"
    assert body["checks"]["wallet_settings"] == {"ok": False, "detail": "secret lending-local/wallet cannot be read"}


def test_an_empty_payout_secret_names_its_settings_and_leaves_the_loan_scheduled(borrower, deployed_adapters):
    loan_id = draw(borrower, 100_000)["loan_id"]
    put("payout", {})
    with pytest.raises(SettingsMissing) as caught:
        disbursement.disburse(loan_id, NOW)
    assert caught.value.names == ["payout.base_url", "payout.merchant_id", "payout.signing_key"]
    assert "payout.base_url" in str(caught.value) and "lending-local/payout" in str(caught.value)
    assert LoanRecord.get(loan_id).status == "scheduled"  # not claimed: the sweep queues it again
    put("payout", FILLED["payout"])
    gateway = wiring.payout_gateway()
    assert type(gateway).__name__ == "BankTransferPayout" and gateway.base_url == "https://bank.example"


def test_an_empty_wallet_secret_refuses_a_repayment_before_anything_is_written(borrower, deployed_adapters,
                                                                                monkeypatch):
    loan_id = draw(borrower, 100_000)["loan_id"]
    monkeypatch.setenv("STAGE", "local")
    assert disbursement.disburse(loan_id, NOW) == "active"
    monkeypatch.setenv("STAGE", "prod")
    put("wallet", {"base_url": "https://wallet.example"})
    with pytest.raises(SettingsMissing) as caught:
        repay.repay("u-1", loan_id, 10_000, NOW)
    assert caught.value.status == 503
    assert caught.value.names == ["wallet.merchant_id", "wallet.signing_key"]
    assert list(RepaymentRecord.scan()) == []  # no intent opened: nothing for the reconciler
    assert LoanRecord.get(loan_id).outstanding_principal == 100_000
    assert credit.get_line("u-1").available == 1_000_000 - 100_000


def test_readiness_lists_what_an_operator_still_has_to_fill(aws_stack):
    sm = aws.client("secretsmanager")
    put("wechat", FILLED["wechat"])
    put("realname", {})
    put("payout", {"base_url": "https://bank.example", "merchant_id": "m-1", "signing_key": ""})
    sm.delete_secret(SecretId="lending-local/wallet", ForceDeleteWithoutRecovery=True)
    result = missing_settings(sm, "lending-local")
    assert result == {
        "lending-local/wechat": [],
        "lending-local/realname": ["realname.base_url", "realname.app_id", "realname.app_secret"],
        "lending-local/payout": ["payout.signing_key"],
        "lending-local/wallet": ["wallet (the secret lending-local/wallet does not exist: deploy the stack first)"],
    }
    assert SECRET_VALUE not in json.dumps(result)
