"""Provider ports: WeChat OAuth and the real-name vendor over stubbed transports; sandboxes."""
from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
from datetime import date

import pytest

from chalicelib.auth import providers
from chalicelib.auth.providers import (OAuthCodeInvalid, SandboxOAuth, SandboxRealName,
                                       VendorRealName, WeChatOAuth)
from chalicelib.core.errors import DependencyDown
from tests.auth_support import LogCapture, with_check_digit, with_wrong_check_digit, years_ago
from tests.journeys import resident_id


class StubGet:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, url, params, timeout):
        self.calls.append((url, params, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, payload = answer
        return status, payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def wechat(stub):
    return WeChatOAuth("wx-app", "s3cr3t-app-secret", http_get=stub, timeout=2.5)


def test_wechat_exchanges_the_code_for_the_openid():
    stub = StubGet((200, {"access_token": "AT", "expires_in": 7200, "refresh_token": "RT",
                          "openid": "oABC123", "scope": "snsapi_userinfo"}))
    assert wechat(stub).openid_for("CODE-1") == "oABC123"
    url, params, timeout = stub.calls[0]
    assert url == "https://api.weixin.qq.com/sns/oauth2/access_token"
    assert params == {"appid": "wx-app", "secret": "s3cr3t-app-secret", "code": "CODE-1",
                      "grant_type": "authorization_code"}
    assert timeout == 2.5


@pytest.mark.parametrize("errcode", [40029, 40163, 41008, 42003])
def test_wechat_code_errors_are_oauth_code_invalid(errcode):
    with pytest.raises(OAuthCodeInvalid) as caught:
        wechat(StubGet((200, {"errcode": errcode, "errmsg": "invalid code"}))).openid_for("c")
    assert caught.value.status == 401 and caught.value.code == "OAUTH_CODE_INVALID"


@pytest.mark.parametrize("answer", [
    (200, {"errcode": 40125, "errmsg": "invalid appsecret"}),
    (200, {"errcode": 40013, "errmsg": "invalid appid"}),
    (200, {"errcode": -1, "errmsg": "system error"}),
    (200, {"errcode": 45011, "errmsg": "api minute-quota reach limit"}),
    (200, {"access_token": "AT"}),  # no openid
    (200, b"<html>busy</html>"),
    (502, {"errmsg": "bad gateway"}),
    TimeoutError("read timed out"),
    urllib.error.URLError("connection refused"),
])
def test_wechat_failures_on_their_side_are_503_and_never_log_the_secret(answer):
    with LogCapture() as logs, pytest.raises(DependencyDown) as caught:
        wechat(StubGet(answer)).openid_for("c")
    assert caught.value.status == 503
    assert "s3cr3t-app-secret" not in logs.text and "s3cr3t-app-secret" not in caught.value.message


def test_sandbox_oauth_follows_the_dev_openid_rule():
    sandbox = SandboxOAuth()
    assert sandbox.openid_for("dev-Alice_01-x") == "Alice_01-x"
    for code in ("dev-", "alice", "dev-a b", "dev-a/b", "DEV-abc", "dev-中文"):
        with pytest.raises(OAuthCodeInvalid):
            sandbox.openid_for(code)


ID = resident_id(date(1990, 3, 7))


class StubPost:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, url, body, headers, timeout):
        self.calls.append((url, body, headers, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, payload = answer
        return status, json.dumps(payload).encode()


def vendor(stub):
    return VendorRealName("https://idv.example.com/", "APP1", b"vendor-secret", http_post=stub,
                          timeout=4, clock=lambda: 1_700_000_000, nonce=lambda: "n0nce")


def test_vendor_request_is_signed_and_timed_out():
    stub = StubPost((200, {"result": "match"}))
    assert vendor(stub).verify("张三", ID) is True
    url, body, headers, timeout = stub.calls[0]
    assert url == "https://idv.example.com/v1/identity/verify" and timeout == 4
    assert json.loads(body) == {"name": "张三", "id_number": ID}
    to_sign = "\n".join(["POST", "/v1/identity/verify", "1700000000", "n0nce",
                         hashlib.sha256(body).hexdigest()])
    assert headers["X-Signature"] == hmac.new(b"vendor-secret", to_sign.encode(), hashlib.sha256).hexdigest()
    assert headers["X-App-Id"] == "APP1" and headers["X-Timestamp"] == "1700000000"
    assert headers["X-Nonce"] == "n0nce"


@pytest.mark.parametrize("result", ["mismatch", "not_found"])
def test_vendor_mismatch_is_a_plain_no(result):
    assert vendor(StubPost((200, {"result": result}))).verify("张三", ID) is False


@pytest.mark.parametrize("answer", [(500, {}), (401, {"error": "bad signature"}), (429, {}),
                                    (200, {"result": "maybe"}), TimeoutError(), OSError("reset")])
def test_vendor_failures_are_503(answer):
    with pytest.raises(DependencyDown):
        vendor(StubPost(answer)).verify("张三", ID)


def test_vendor_must_be_https():
    with pytest.raises(ValueError):
        VendorRealName("http://idv.example.com", "APP1", b"k")


TODAY = date(2026, 3, 2)


@pytest.mark.parametrize("name, id_number, ok", [
    ("张三", resident_id(years_ago(TODAY, 30)), True),
    ("张", resident_id(years_ago(TODAY, 30)), False),                    # name too short
    ("李" * 30, resident_id(years_ago(TODAY, 30)), True),
    ("李" * 31, resident_id(years_ago(TODAY, 30)), False),               # name too long
    ("张三", resident_id(years_ago(TODAY, 18)), True),                   # 18 today
    ("张三", resident_id(years_ago(TODAY, 18, days=1)), False),          # 18 tomorrow
    ("张三", resident_id(years_ago(TODAY, 65)), True),                   # 65 today
    ("张三", resident_id(years_ago(TODAY, 66)), False),                  # 66
    ("张三", with_wrong_check_digit(resident_id(years_ago(TODAY, 30))), False),
    ("张三", with_check_digit("11010119900230123"), False),              # 30 February
])
def test_sandbox_real_name_rule(name, id_number, ok):
    assert SandboxRealName(today=lambda: TODAY).verify(name, id_number) is ok


def test_the_stage_picks_sandbox_locally_and_real_adapters_elsewhere(aws_stack, monkeypatch):
    providers.reset()
    assert isinstance(providers.get_oauth(), SandboxOAuth)
    assert isinstance(providers.get_realname(), SandboxRealName)
    providers.reset()
    monkeypatch.setenv("STAGE", "dev")
    real = providers.get_oauth()
    assert isinstance(real, WeChatOAuth) and real.app_id == "local-sandbox"  # from the secret
    assert providers.get_oauth() is real  # built once per container
    with pytest.raises(DependencyDown):  # the vendor secret has no https base_url yet
        providers.get_realname()
    providers.reset()
