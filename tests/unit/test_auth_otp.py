"""SMS codes: single use, five minutes, five tries, send limits per phone and per IP."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.auth import otp
from chalicelib.auth.models import OtpChallengeRecord, SendCounterRecord
from chalicelib.auth.pii_vault import keyed_hash
from chalicelib.core.clock import SHANGHAI
from chalicelib.core.errors import DependencyDown, RateLimited, RuleViolation
from tests.auth_support import table_dump

PHONE = "13812348000"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)


class Inbox:
    def __init__(self):
        self.sent = []

    def send(self, channel, to, text):
        self.sent.append((channel, to, text))

    def code(self):
        return re.search(r"\b(\d{6})\b", self.sent[-1][2]).group(1)


class BrokenSender:
    def send(self, channel, to, text):
        raise ConnectionError("sns down")


def send(inbox, at=T0, phone=PHONE, ip="203.0.113.9", limits=None):
    return otp.send_code(phone, source_ip=ip, now=at, sender=inbox, limits=limits)


def wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.mark.parametrize("raw, expected", [("13812348000", "13812348000"),
                                           ("+8613812348000", "13812348000"),
                                           (" 19912345678 ", "19912345678")])
def test_mainland_mobiles_are_accepted_with_or_without_plus86(raw, expected):
    assert otp.normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", ["12812348000", "1381234800", "138123480001", "8613812348000",
                                 "+85213812348000", "1381234800a", "", "+86"])
def test_other_numbers_are_phone_invalid(raw):
    with pytest.raises(RuleViolation) as caught:
        otp.normalise_phone(raw)
    assert caught.value.code == "PHONE_INVALID" and caught.value.status == 422


def test_a_code_works_once(aws_stack):
    inbox = Inbox()
    assert send(inbox) == 300
    channel, to, _ = inbox.sent[0]
    assert channel == "sms" and to == PHONE
    otp.verify_code(PHONE, inbox.code(), now=T0 + timedelta(seconds=10))
    with pytest.raises(otp.OtpInvalid) as caught:
        otp.verify_code(PHONE, inbox.code(), now=T0 + timedelta(seconds=20))
    assert caught.value.code == "OTP_INVALID" and caught.value.status == 401


def test_a_code_expires_after_five_minutes(aws_stack):
    inbox = Inbox()
    send(inbox)
    with pytest.raises(otp.OtpInvalid):
        otp.verify_code(PHONE, inbox.code(), now=T0 + timedelta(seconds=300))


def test_a_code_still_works_just_before_five_minutes(aws_stack):
    inbox = Inbox()
    send(inbox)
    otp.verify_code(PHONE, inbox.code(), now=T0 + timedelta(seconds=299))


def test_five_wrong_tries_lock_the_code_and_the_sixth_fails_even_when_right(aws_stack):
    inbox = Inbox()
    send(inbox)
    for attempt in range(5):
        with pytest.raises(otp.OtpInvalid):
            otp.verify_code(PHONE, wrong(inbox.code()), now=T0 + timedelta(seconds=attempt + 1))
    with pytest.raises(RateLimited) as caught:
        otp.verify_code(PHONE, inbox.code(), now=T0 + timedelta(seconds=10))
    assert caught.value.code == "OTP_LOCKED" and caught.value.status == 429
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 60
    # A new code lifts the lock.
    send(inbox, at=T0 + timedelta(seconds=61))
    otp.verify_code(PHONE, inbox.code(), now=T0 + timedelta(seconds=62))


def test_a_code_for_another_phone_does_not_work(aws_stack):
    inbox = Inbox()
    send(inbox, phone="13900001111")
    with pytest.raises(otp.OtpInvalid):
        otp.verify_code(PHONE, inbox.code(), now=T0)


def test_a_sign_in_code_never_confirms_a_phone_change_nor_the_reverse(aws_stack):
    """A code read out to a caller "for signing in" cannot be used to move the account to
    another phone, and the phone-change text says what its code is for."""
    inbox = Inbox()
    send(inbox)
    sign_in = inbox.code()
    with pytest.raises(otp.OtpInvalid):
        otp.verify_code(PHONE, sign_in, now=T0, purpose=otp.PHONE_CHANGE)
    otp.send_code(PHONE, source_ip="203.0.113.9", now=T0 + timedelta(seconds=60), sender=inbox,
                  purpose=otp.PHONE_CHANGE)
    change = inbox.code()
    assert "更换" in inbox.sent[-1][2] and "请勿告诉任何人" in inbox.sent[-1][2]
    with pytest.raises(otp.OtpInvalid):
        otp.verify_code(PHONE, change, now=T0 + timedelta(seconds=61))
    # each still works for its own purpose
    otp.verify_code(PHONE, sign_in, now=T0 + timedelta(seconds=62))
    otp.verify_code(PHONE, change, now=T0 + timedelta(seconds=62), purpose=otp.PHONE_CHANGE)


def test_the_send_limits_are_the_phones_whatever_the_purpose(aws_stack):
    inbox = Inbox()
    send(inbox)
    with pytest.raises(RateLimited) as caught:
        otp.send_code(PHONE, source_ip="203.0.113.9", now=T0 + timedelta(seconds=30), sender=inbox,
                      purpose=otp.PHONE_CHANGE)
    assert caught.value.code == "SMS_RATE_LIMITED" and caught.value.headers["Retry-After"] == "30"
    assert len(inbox.sent) == 1


def test_codes_are_stored_only_as_keyed_hashes(aws_stack):
    inbox = Inbox()
    send(inbox)
    stored = OtpChallengeRecord.get(f"OTP#{keyed_hash('phone', PHONE)}")
    dump = table_dump()
    assert f'"{inbox.code()}"' not in dump and PHONE not in dump  # no attribute holds the code
    assert len(stored.code_hash) == 64 and stored.attempts == 0


def test_one_code_a_minute_per_phone_with_retry_after(aws_stack):
    inbox = Inbox()
    send(inbox)
    with pytest.raises(RateLimited) as caught:
        send(inbox, at=T0 + timedelta(seconds=20))
    assert caught.value.code == "SMS_RATE_LIMITED"
    assert caught.value.headers["Retry-After"] == "40"
    # The refused send consumed nothing: the day's count is still one.
    day = SendCounterRecord.get(f"RATE#phone-day#{keyed_hash('phone', PHONE)}#2026-03-02")
    assert day.sent == 1
    send(inbox, at=T0 + timedelta(seconds=60))
    assert len(inbox.sent) == 2


def test_ten_codes_per_shanghai_day_per_phone(aws_stack):
    inbox = Inbox()
    start = datetime(2026, 3, 2, 23, 40, tzinfo=SHANGHAI)
    for k in range(10):
        send(inbox, at=start + timedelta(seconds=61 * k))
    eleventh = start + timedelta(seconds=61 * 10)
    with pytest.raises(RateLimited) as caught:
        send(inbox, at=eleventh)
    midnight = datetime(2026, 3, 3, 0, 0, tzinfo=SHANGHAI)
    assert int(caught.value.headers["Retry-After"]) == int((midnight - eleventh).total_seconds())
    # A new Asia/Shanghai day (still 2 March in UTC) allows codes again.
    assert midnight.astimezone(timezone.utc).day == 2
    send(inbox, at=midnight + timedelta(seconds=1))
    assert len(inbox.sent) == 11


def test_sends_are_limited_per_source_ip(aws_stack):
    inbox = Inbox()
    limits = otp.SendLimits(ip_max=3, ip_window=600)
    for k in range(3):
        send(inbox, phone=f"1390000000{k}", limits=limits)
    with pytest.raises(RateLimited) as caught:
        send(inbox, phone="13900000009", limits=limits)
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 600
    send(inbox, phone="13900000009", ip="198.51.100.7", limits=limits)
    assert len(inbox.sent) == 4


def test_a_send_that_fails_leaves_no_live_code(aws_stack):
    with pytest.raises(DependencyDown):
        send(BrokenSender())
    with pytest.raises(otp.OtpInvalid):
        otp.verify_code(PHONE, "123456", now=T0)


def test_malformed_codes_do_not_use_up_tries(aws_stack):
    inbox = Inbox()
    send(inbox)
    for bad in ("12345", "abcdef", "1234567"):
        with pytest.raises(otp.OtpInvalid):
            otp.verify_code(PHONE, bad, now=T0)
    otp.verify_code(PHONE, inbox.code(), now=T0)


def test_two_tries_racing_with_the_right_code_sign_in_only_once(aws_stack, monkeypatch):
    inbox = Inbox()
    send(inbox)
    key = f"OTP#{keyed_hash('phone', PHONE)}"
    stale = OtpChallengeRecord.get(key)  # what the slower request read before the other won
    otp.verify_code(PHONE, inbox.code(), now=T0)
    real_get = OtpChallengeRecord.get.__func__
    calls = []

    def get(cls, *args, **kwargs):
        calls.append(args)
        return stale if len(calls) == 1 else real_get(cls, *args, **kwargs)

    monkeypatch.setattr(OtpChallengeRecord, "get", classmethod(get))
    with pytest.raises(otp.OtpInvalid):
        otp.verify_code(PHONE, inbox.code(), now=T0)
    assert len(calls) == 2  # the conditional update refused it, then the state was re-read
