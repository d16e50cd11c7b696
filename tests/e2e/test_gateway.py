"""The local server answers as API Gateway does, where a client can tell.

Given the stack `make run` serves, when a client sends what the API does not declare (a path,
a method), a HEAD, a CORS preflight, or signs up many borrowers from many addresses, then it
gets the answers the deployed API gives (infra/template.py builds those): 404 NOT_FOUND and 405
METHOD_NOT_ALLOWED with `Allow`, in the contract's error body; HEAD as GET without a body; the
preflight chalice generates for API Gateway; and per-address limits counted per address.
"""
from __future__ import annotations

import http.client
import json
import re
from typing import Any
from urllib.parse import urlparse

from chalicelib.adapters.messaging import SMS_SIGNATURE
from infra.template import GATEWAY_RESPONSES
from tests.journeys import last_code


def call(base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request over a new connection, from `source` (any 127.x.y.z on Linux) if given."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30,
                                      source_address=(source, 0) if source else None)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})} if payload else dict(headers or {})
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def error(raw: bytes) -> dict[str, str]:
    body = json.loads(raw)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


def test_an_unknown_path_is_404_not_found_and_echoes_nothing(stack):
    token = "Bearer secret-token-of-the-caller"
    for path in ("/nope", "/v1/loans/L1/nothing-here", "/v1/me/phone/x/y"):
        status, headers, raw = call(stack["base"], "GET", path, headers={"Authorization": token})
        assert status == 404, (path, raw)
        assert error(raw)["code"] == "NOT_FOUND"
        assert b"secret-token" not in raw and b"Authorization" not in raw
        # the very body the deployed gateway answers (its MISSING_AUTHENTICATION_TOKEN response)
        expected = next(message for kind, _, _, message in GATEWAY_RESPONSES
                        if kind == "MISSING_AUTHENTICATION_TOKEN")
        assert error(raw)["message"] == expected
        assert headers["access-control-allow-origin"] == "*"


def test_an_undeclared_method_is_405_with_allow_in_the_clients_language(stack):
    status, headers, raw = call(stack["base"], "DELETE", "/v1/products")
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS"
    chinese = error(raw)
    assert chinese["code"] == "METHOD_NOT_ALLOWED" and "DELETE" in chinese["message"]
    assert re.search(r"[\u4e00-\u9fff]", chinese["message"])
    status, headers, raw = call(stack["base"], "PUT", "/v1/loans/L1/repayments",
                                headers={"Accept-Language": "en-US,en;q=0.9"})
    assert status == 405 and headers["allow"] == "POST, OPTIONS"
    assert error(raw)["message"].isascii()
    for method in ("PATCH", "TRACE"):
        status, headers, raw = call(stack["base"], method, "/v1/me")
        assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS", (method, raw)
        assert error(raw)["code"] == "METHOD_NOT_ALLOWED"


def test_head_answers_as_get_without_the_body(stack):
    status, got_headers, got = call(stack["base"], "GET", "/v1/products")
    assert status == 200 and got
    status, headers, raw = call(stack["base"], "HEAD", "/v1/products")
    assert status == 200 and raw == b""
    assert int(headers["content-length"]) == len(got)
    assert headers["content-type"] == got_headers["content-type"] == "application/json"
    # a protected GET: HEAD is authenticated the same way
    status, _, raw = call(stack["base"], "HEAD", "/v1/me")
    assert status == 401 and raw == b""


def test_a_cors_preflight_gets_what_api_gateway_sends(stack):
    status, headers, raw = call(stack["base"], "OPTIONS", "/v1/loans", headers={
        "Origin": "https://h5.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,idempotency-key,content-type"})
    assert status == 200 and raw == b""
    assert headers["access-control-allow-origin"] == "*"
    assert set(headers["access-control-allow-methods"].split(",")) == {"GET", "HEAD", "POST", "OPTIONS"}
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "idempotency-key", "content-type", "accept-language"} <= allowed
    assert "retry-after" in headers["access-control-expose-headers"].lower()
    assert headers["allow"] == "GET, HEAD, POST, OPTIONS"
    # the answers themselves carry the origin header, errors included
    status, headers, _ = call(stack["base"], "GET", "/v1/me", headers={"Origin": "https://h5.example.com"})
    assert status == 401 and headers["access-control-allow-origin"] == "*"


def test_operator_routes_have_no_preflight(stack):
    status, headers, raw = call(stack["base"], "OPTIONS", "/v1/ops/portfolio",
                                headers={"Origin": "https://h5.example.com"})
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert "access-control-allow-origin" not in headers
    assert error(raw)["code"] == "METHOD_NOT_ALLOWED"


def _sign_up(base: str, outbox: Any, phone: str, source: str) -> dict[str, Any]:
    status, headers, raw = call(base, "POST", "/v1/auth/sms-codes", {"phone": phone}, source=source)
    assert status == 202, (source, raw)
    status, _, raw = call(base, "POST", "/v1/auth/sms-login",
                          {"phone": phone, "code": last_code(outbox, phone)}, source=source)
    assert status == 200, (source, raw)
    return json.loads(raw)


def test_forty_borrowers_sign_up_from_forty_addresses(stack):
    """The per-address limit (30 codes per 10 minutes) counts each client's own address, as
    API Gateway's sourceIp does: with chalice local's fixed 127.0.0.1 the 31st would be refused."""
    signed = [_sign_up(stack["base"], stack["outbox"], f"1370000{i:04d}", f"127.0.1.{i + 1}")
              for i in range(40)]
    assert len({s["user_id"] for s in signed}) == 40 and all(s["new_user"] for s in signed)
    # every SMS the app sent carries the one signature
    texts = [json.loads(line)["text"] for line in stack["outbox"].read_text(encoding="utf-8").splitlines()
             if json.loads(line)["channel"] == "sms"]
    assert len(texts) >= 40 and all(text.startswith(SMS_SIGNATURE) for text in texts)


def test_one_address_is_limited_and_told_how_long_to_wait(stack):
    one, other = "127.0.2.1", "127.0.2.2"
    for i in range(30):
        status, _, raw = call(stack["base"], "POST", "/v1/auth/sms-codes", {"phone": f"1390000{i:04d}"},
                              source=one)
        assert status == 202, (i, raw)
    status, headers, raw = call(stack["base"], "POST", "/v1/auth/sms-codes", {"phone": "13900009999"},
                                source=one, headers={"Accept-Language": "en"})
    assert status == 429 and error(raw)["code"] == "SMS_RATE_LIMITED"
    wait = int(headers["retry-after"])
    assert 1 <= wait <= 600
    assert re.search(r"try again in \d+ (second|minute)s?", error(raw)["message"]), raw
    status, _, raw = call(stack["base"], "POST", "/v1/auth/sms-codes", {"phone": "13900009999"}, source=one)
    assert status == 429 and re.search(r"请在 \d+ (秒|分钟)后", error(raw)["message"]), raw
    # another address is not held back by the first one's sends
    status, _, raw = call(stack["base"], "POST", "/v1/auth/sms-codes", {"phone": "13900009999"},
                          source=other)
    assert status == 202, raw
