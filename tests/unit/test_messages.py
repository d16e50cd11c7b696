"""Error messages follow Accept-Language as decision reasons do: Chinese by default, English on request."""
from __future__ import annotations

import pytest

from chalicelib.core.errors import RateLimited, RuleViolation
from chalicelib.api.http import lending_error_response
from chalicelib.core.messages import ZH, language, message, wait_phrase


@pytest.mark.parametrize("header, expected", [
    (None, "zh"), ("", "zh"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en", "en"), ("EN-us", "en"),
    ("en-US,en;q=0.9", "en"), ("fr", "zh"), ("fr, en;q=0.5", "en"), ("zh;q=0.2, en;q=0.7", "en"),
    ("en;q=0, zh", "zh"), ("*", "zh"), ("en;q=abc", "zh"), (";;,,q=", "zh"), ("x" * 5000, "zh"),
])
def test_the_language_is_the_best_ranked_of_chinese_and_english(header, expected):
    assert language(header) == expected


@pytest.mark.parametrize("seconds, zh, en", [
    (1, "1 秒", "1 second"), (45, "45 秒", "45 seconds"), (119, "119 秒", "119 seconds"),
    (120, "2 分钟", "2 minutes"), (599, "10 分钟", "10 minutes"), (7199, "120 分钟", "120 minutes"),
    (7200, "2 小时", "2 hours"), (40_000, "12 小时", "12 hours"), (0, "1 秒", "1 second")])
def test_a_wait_is_said_in_the_unit_a_person_reads_rounded_up(seconds, zh, en):
    assert (wait_phrase(seconds, "zh"), wait_phrase(seconds, "en")) == (zh, en)


def test_english_is_the_raised_message_and_chinese_comes_from_the_code_with_its_numbers():
    err = RuleViolation("You can draw at most 120000 fen.", code="CREDIT_LIMIT_EXCEEDED",
                        params={"available": 120_000})
    assert message(err.code, "en", err.message, err.params) == "You can draw at most 120000 fen."
    assert message(err.code, "zh", err.message, err.params) == "您最多还可以借 120000 分。"
    # a raise site that passed no numbers still gets a Chinese sentence, a general one
    assert message(err.code, "zh", err.message, {}) == ZH["CREDIT_LIMIT_EXCEEDED"].split("|")[1]
    # a code nobody translated yet keeps the raised message rather than nothing
    assert message("SOMETHING_NEW", "zh", "Something new.") == "Something new."


def test_a_rate_limit_says_how_long_to_wait_in_both_languages():
    err = RateLimited("Too many codes requested; try again in 45 seconds.", retry_after=45,
                      code="SMS_RATE_LIMITED")
    zh = lending_error_response(err, "zh")
    assert zh.status_code == 429 and zh.headers["Retry-After"] == "45"
    assert zh.body == {"error": {"code": "SMS_RATE_LIMITED", "message": "验证码发送太频繁了，请在 45 秒后再获取。"}}
    en = lending_error_response(err, "en")
    assert en.body["error"]["message"] == "Too many codes requested; try again in 45 seconds."


def test_every_chinese_template_names_only_params_it_can_be_given():
    for code, text in ZH.items():
        specific, _, generic = text.partition("|")
        assert "{" not in generic, code
        if "{" in specific:
            assert generic, f"{code}: a template with params needs a general fallback after |"
