"""Partner settings are named when missing, and never shown."""
from __future__ import annotations

import pytest

from chalicelib.core.resources import PARTNER_SECRETS, SECRETS, secret_spec
from chalicelib.core.settings import SettingsMissing, missing
from infra.stage import ROOT


def test_an_empty_secret_misses_every_setting_by_name():
    assert missing(secret_spec("wallet"), {}) == ["wallet.base_url", "wallet.merchant_id", "wallet.signing_key"]
    assert missing(secret_spec("wechat"), {}) == ["wechat.app_id", "wechat.app_secret"]


@pytest.mark.parametrize("value, expected", [
    ({"base_url": "https://bank.example", "merchant_id": "m-1", "signing_key": "k"}, []),
    ({"base_url": "https://bank.example", "merchant_id": " ", "signing_key": "k"}, ["payout.merchant_id"]),
    ({"base_url": "https://bank.example", "merchant_id": 42, "signing_key": "k"}, ["payout.merchant_id"]),
    ({"base_url": "http://bank.example", "merchant_id": "m", "signing_key": "k"},
     ["payout.base_url (must start with https://)"]),
    ({"merchant_id": "m", "signing_key": None, "extra": "ignored"}, ["payout.base_url", "payout.signing_key"]),
])
def test_each_setting_must_be_a_non_empty_string_and_urls_https(value, expected):
    assert missing(secret_spec("payout"), value) == expected


def test_the_error_names_the_settings_for_the_logs_and_tells_the_caller_nothing_was_done():
    error = SettingsMissing(secret_spec("wallet"), ["wallet.base_url"], "lending-prod/wallet")
    assert error.status == 503
    assert "wallet.base_url" in str(error) and "lending-prod/wallet" in str(error)
    assert "wallet" not in error.message and "nothing was changed" in error.message


def test_every_secret_an_operator_fills_is_listed_in_the_readme_with_its_fields():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Secrets to fill after the first deploy", 1)[1].split("\n## ", 1)[0]
    assert {spec.key for spec in PARTNER_SECRETS} == {"wechat", "realname", "payout", "wallet"}
    for spec in PARTNER_SECRETS:
        assert f"lending-<stage>/{spec.key}" in section, spec.key
        for field in spec.fields:
            assert f'"{field}"' in section, f"{spec.key}.{field}"
    # the generated ones are said to need nothing
    for spec in SECRETS:
        if not spec.fields:
            assert f"lending-<stage>/{spec.key}" in section, spec.key
