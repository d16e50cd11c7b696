"""Over the routes: an error's message is Chinese unless the client asks for English; its code never changes."""
from __future__ import annotations

import json
import re

HAN = re.compile(r"[\u4e00-\u9fff]")


def post(client, path, body, **headers):
    response = client.http.post(path, body=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json", **headers})
    answer = json.loads(response.body)
    return response.status_code, answer.get("error", answer)


def test_a_rule_is_explained_in_chinese_by_default_and_in_english_on_request(client):
    status, zh = post(client, "/v1/auth/sms-codes", {"phone": "12345"})
    assert (status, zh["code"]) == (422, "PHONE_INVALID") and HAN.search(zh["message"])
    status, en = post(client, "/v1/auth/sms-codes", {"phone": "12345"}, **{"Accept-Language": "en-GB,en;q=0.9"})
    assert (status, en["code"]) == (422, "PHONE_INVALID") and en["message"].isascii()


def test_a_malformed_body_names_the_field_in_both_languages(client):
    status, zh = post(client, "/v1/auth/sms-login", {"phone": "13812348000"})
    assert (status, zh["code"]) == (400, "FIELD_REQUIRED") and "“code”" in zh["message"]
    status, en = post(client, "/v1/auth/sms-login", {"phone": "13812348000"}, **{"Accept-Language": "en"})
    assert (status, en["code"]) == (400, "FIELD_REQUIRED") and "'code'" in en["message"]


def test_the_second_code_within_a_minute_says_how_long_to_wait(client):
    assert post(client, "/v1/auth/sms-codes", {"phone": "13812348000"})[0] == 202
    response = client.http.post("/v1/auth/sms-codes", body=b'{"phone": "13812348000"}',
                                headers={"Content-Type": "application/json"})
    error = json.loads(response.body)["error"]
    wait = int(response.headers["Retry-After"])
    assert response.status_code == 429 and error["code"] == "SMS_RATE_LIMITED"
    assert 1 <= wait <= 60 and f"请在 {wait} 秒后再获取" in error["message"], error


def test_chalices_own_answers_follow_the_language_too(client):
    response = client.http.delete("/v1/products")
    error = json.loads(response.body)["error"]
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert error["code"] == "METHOD_NOT_ALLOWED" and "DELETE" in error["message"] and HAN.search(error["message"])
    response = client.http.delete("/v1/products", headers={"Accept-Language": "en"})
    assert json.loads(response.body)["error"]["message"] == \
        "This path takes no DELETE; it takes GET, HEAD, OPTIONS (see Allow)."
