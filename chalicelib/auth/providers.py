"""Ports to the outside world of the identity slice, with real and sandbox adapters.

- OAuth (`OAuthProvider.openid_for(code)`): `WeChatOAuth` calls WeChat's
  `sns/oauth2/access_token`; `SandboxOAuth` follows the contract's `dev-<openid>` rule.
- Real-name check (`RealNameProvider.verify(name, id_number)`): `VendorRealName` calls a
  vendor's HTTPS "two-element" check (name + ID number) with HMAC-SHA256 signed requests;
  `SandboxRealName` passes a 2-30 character name with a checksum-valid ID of someone aged 18-65.

`get_oauth()` / `get_realname()` build the stage's adapter lazily, once per container
(sandbox in `local`, real elsewhere); tests swap one with `override()`. Transports are
injected (`http_get`, `http_post`) so the real adapters are tested against stubs.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import date
from typing import Any, Callable, Protocol

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from chalicelib.adapters.transport import HttpGet, HttpPost, urllib_get, urllib_post
from chalicelib.core import config
from chalicelib.core.clock import shanghai_date
from chalicelib.core.errors import DependencyDown, Unauthorized
from chalicelib.core.observability import logger

DEFAULT_TIMEOUT = 3.0


class OAuthCodeInvalid(Unauthorized):
    code = "OAUTH_CODE_INVALID"

    def __init__(self, message: str = "The WeChat sign-in code is invalid, used or expired; "
                 "sign in with WeChat again.") -> None:
        super().__init__(message)


class ProviderUnavailable(DependencyDown):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is unavailable right now; nothing was changed. "
                         "Please try again shortly.")


class OAuthProvider(Protocol):
    def openid_for(self, code: str) -> str: ...


class RealNameProvider(Protocol):
    def verify(self, name: str, id_number: str) -> bool: ...


# ---------------------------------------------------------------- WeChat OAuth

class WeChatOAuth:
    """`GET https://api.weixin.qq.com/sns/oauth2/access_token?appid&secret&code&grant_type`.

    WeChat answers HTTP 200 either way, with `{"openid", ...}` or `{"errcode", "errmsg"}`.
    A code that is wrong, used or expired is the user's 401 OAUTH_CODE_INVALID; anything
    else (bad app credentials, quota, WeChat busy, timeouts) is our 503."""

    URL = "https://api.weixin.qq.com/sns/oauth2/access_token"
    CODE_ERRORS = frozenset({40029, 40163, 41008, 42003})  # invalid, used, missing, expired code

    def __init__(self, app_id: str, app_secret: str, *, http_get: HttpGet = urllib_get,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if not app_id or not app_secret:
            raise ValueError("WeChat app id and secret are required")
        self.app_id = app_id
        self._app_secret = app_secret
        self.http_get = http_get
        self.timeout = timeout

    def openid_for(self, code: str) -> str:
        params = {"appid": self.app_id, "secret": self._app_secret, "code": code,
                  "grant_type": "authorization_code"}
        try:
            status, raw = self.http_get(self.URL, params, self.timeout)
        except (OSError, TimeoutError) as err:  # URLError and socket timeouts are OSErrors
            logger.warning("wechat oauth unreachable", extra={"error": type(err).__name__})
            raise ProviderUnavailable("WeChat sign-in") from None
        if status != 200:
            logger.warning("wechat oauth http error", extra={"status": status})
            raise ProviderUnavailable("WeChat sign-in")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProviderUnavailable("WeChat sign-in") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable("WeChat sign-in")
        errcode = data.get("errcode") or 0
        if errcode in self.CODE_ERRORS:
            raise OAuthCodeInvalid()
        if errcode:
            logger.warning("wechat oauth refused", extra={"errcode": errcode})
            raise ProviderUnavailable("WeChat sign-in")
        openid = data.get("openid")
        if not isinstance(openid, str) or not openid:
            raise ProviderUnavailable("WeChat sign-in")
        return openid


class SandboxOAuth:
    """Local stage: the code `dev-<openid>` (letters, digits, `-`, `_`) is that openid."""

    _CODE = re.compile(r"^dev-([A-Za-z0-9_-]{1,128})$")

    def openid_for(self, code: str) -> str:
        match = self._CODE.match(code)
        if not match:
            raise OAuthCodeInvalid("In the local sandbox the code is dev-<openid>.")
        return match.group(1)


# ---------------------------------------------------------------- real-name verification

def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class VendorRealName:
    """A vendor's two-element check: `POST {base}/v1/identity/verify` with
    `{"name", "id_number"}` and headers X-App-Id, X-Timestamp, X-Nonce and
    X-Signature = hex HMAC-SHA256(secret, "POST\\n{path}\\n{timestamp}\\n{nonce}\\n{sha256(body)}").
    200 `{"result": "match"}` passes; `mismatch` or `not_found` fails; the rest is our 503."""

    PATH = "/v1/identity/verify"

    def __init__(self, base_url: str, app_id: str, app_secret: bytes, *,
                 http_post: HttpPost = urllib_post, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.time,
                 nonce: Callable[[], str] = lambda: secrets.token_hex(16)) -> None:
        if not base_url.startswith("https://"):
            raise ValueError("the real-name vendor must be called over HTTPS")
        if not app_id or not app_secret:
            raise ValueError("vendor app id and secret are required")
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self.http_post = http_post
        self.timeout = timeout
        self.clock = clock
        self.nonce = nonce

    def signature(self, timestamp: str, nonce: str, body: bytes) -> str:
        to_sign = "\n".join(["POST", self.PATH, timestamp, nonce, hashlib.sha256(body).hexdigest()])
        return hmac.new(self._secret, to_sign.encode(), hashlib.sha256).hexdigest()

    def verify(self, name: str, id_number: str) -> bool:
        body = json.dumps({"name": name, "id_number": id_number}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        timestamp, nonce = str(int(self.clock())), self.nonce()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-App-Id": self.app_id,
                   "X-Timestamp": timestamp, "X-Nonce": nonce,
                   "X-Signature": self.signature(timestamp, nonce, body)}
        try:
            status, raw = self.http_post(self.base_url + self.PATH, body, headers, self.timeout)
        except (OSError, TimeoutError) as err:
            logger.warning("real-name vendor unreachable", extra={"error": type(err).__name__})
            raise ProviderUnavailable("Identity verification") from None
        if status != 200:
            logger.warning("real-name vendor http error", extra={"status": status})
            raise ProviderUnavailable("Identity verification")
        try:
            result = json.loads(raw).get("result")
        except (ValueError, AttributeError):
            raise ProviderUnavailable("Identity verification") from None
        if result == "match":
            return True
        if result in ("mismatch", "not_found"):
            return False
        logger.warning("real-name vendor answer not understood")
        raise ProviderUnavailable("Identity verification")


def _service_today() -> date:
    from chalicelib import wiring
    return shanghai_date(wiring.clock().now())


class SandboxRealName:
    """Local stage: a 2-30 character name and a checksum-valid ID of someone aged 18-65."""

    def __init__(self, today: Callable[[], date] | None = None) -> None:
        self.today = today or _service_today

    def verify(self, name: str, id_number: str) -> bool:
        if not 2 <= len(name.strip()) <= 30:
            return False
        try:
            number = ric.validate(id_number)
        except ValidationError:
            return False
        return 18 <= age_on(ric.get_birth_date(number), self.today()) <= 65


# ---------------------------------------------------------------- stage wiring

_built: dict[str, Any] = {}
_overrides: dict[str, Any] = {}
_lock = threading.Lock()


def override(name: str, value: Any) -> None:
    """Tests: use `value` as the `oauth` or `realname` provider."""
    _overrides[name] = value


def reset() -> None:
    with _lock:
        _overrides.clear()
        _built.clear()


def forget_built() -> None:
    """Drop the providers built for this container (a new container builds them again)."""
    with _lock:
        _built.clear()


def _build(name: str, factory: Callable[[], Any]) -> Any:
    if name in _overrides:
        return _overrides[name]
    with _lock:
        if name not in _built:
            _built[name] = factory()
        return _built[name]


def _real_oauth() -> OAuthProvider:
    from chalicelib.auth.secret_store import secret_json
    secret = secret_json("wechat")
    try:
        return WeChatOAuth(secret.get("app_id", ""), secret.get("app_secret", ""))
    except ValueError:
        raise ProviderUnavailable("WeChat sign-in") from None


def _real_realname() -> RealNameProvider:
    from chalicelib.auth.secret_store import secret_json
    secret = secret_json("realname")
    try:
        return VendorRealName(secret.get("base_url", ""), secret.get("app_id", ""),
                              secret.get("app_secret", "").encode())
    except ValueError:
        raise ProviderUnavailable("Identity verification") from None


def get_oauth() -> OAuthProvider:
    return _build("oauth", SandboxOAuth if config.is_local() else _real_oauth)


def get_realname() -> RealNameProvider:
    return _build("realname", SandboxRealName if config.is_local() else _real_realname)
