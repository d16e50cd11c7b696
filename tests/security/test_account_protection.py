"""Account protection (CONTRACT.md, Identity: anti-phishing, 防诈骗), attacked end to end.

A stolen 15-minute access token must not become a takeover. Replacing the bound phone needs a
code sent to that phone (or, when it is lost, the verified name + ID number); a replacement
ends every other session, starts a 24-hour security hold on drawdowns and new cards, and is
told to both phones. The real-name endpoint answers IDENTITY_TAKEN only after the provider
matched the name, at most 5 times per user per Asia/Shanghai day, so it is no ID-number oracle.

Over chalice's test client with real tokens, on the package's world (conftest). Each test
brings its own borrowers, so the world's A and B stay as they were for the other modules.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import pytest

from chalicelib.auth import providers, service
from chalicelib.core.clock import SHANGHAI, FixedClock, shanghai_date
from tests.auth_support import code_for, leaks
from tests.journeys import GOOD_APPLICANT, card_ending, ready_borrower, resident_id, with_key
from tests.security.conftest import assert_error, assert_unchanged, snapshot

DAY = 24 * 3600


@pytest.fixture()
def auth_clock(world, monkeypatch):
    """The identity slice's clock, fixed (the tests move it). Two days past the wall clock, so
    its per-day and per-address send windows are apart from the rest of the suite's."""
    fixed = FixedClock(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2))
    monkeypatch.setattr(service, "clock", fixed)
    return fixed


def _advance(clock, **delta):
    clock.set(clock.now() + timedelta(**delta))


def _masked(phone):
    return f"{phone[:3]}****{phone[-4:]}"


def _texts_to(world, phone):
    """The SMS texts the outbox holds for `phone` (the outbox keeps only the mask)."""
    lines = [json.loads(line) for line in world.outbox.read_text(encoding="utf-8").splitlines()]
    return [line["text"] for line in lines if line["channel"] == "sms" and line["to"] == _masked(phone)]


def _borrower_with_a_line(world, *, openid, phone, last4, born):
    """Signed in, phone bound, real name verified (张三), a card, an approved credit line."""
    me = ready_borrower(world.api, world.outbox, openid=openid, phone=phone,
                        card=card_ending(last4), born=born)
    status, decision = world.api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 3_000_000, "term_months": 12,
        "purpose": "装修", "applicant": GOOD_APPLICANT}, with_key(me["headers"]))
    assert status == 201 and decision["status"] == "approved", decision
    return {**me, "application_id": decision["application_id"], "phone": phone,
            "name": "张三", "id_number": resident_id(born)}


def _draw(world, who, headers=None):
    return world.call("POST", "/v1/loans", headers=with_key(headers or who["headers"]), body={
        "application_id": who["application_id"], "amount": 50_000, "term_months": 12,
        "repayment_method": "equal_installment", "bank_card_id": who["card_id"]})


def _add_card(world, headers, last4):
    return world.call("POST", "/v1/me/bank-cards", headers=headers,
                      body={"card_number": card_ending(last4, prefix="621700")})


def _assert_on_hold(status, answer, headers, seconds_left, what):
    assert_error(status, answer, 403, ("SECURITY_HOLD",), what)
    assert int(headers["Retry-After"]) == seconds_left, (what, headers)


def _assert_masked_everywhere(world, secrets):
    """Neither the answers, the app's log lines nor the texts show these in full."""
    for where, text in (("responses", "\n".join(world.api.seen)), ("logs", world.logs.text),
                        ("outbox", world.outbox.read_text(encoding="utf-8"))):
        assert leaks(text, secrets) == [], where


def _wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


# ------------------------------------------------------------------ item 8: the phone

def test_a_stolen_access_token_cannot_take_the_account_over(world, auth_clock):
    """Given an attacker who holds only the victim's access token (and a phone of their own),
    every way to move the account to their phone is refused and changes nothing; and even a
    phisher who also knows the victim's name and ID number, and so does rebind the phone,
    can neither add a card nor draw, while the victim's phone is told at once."""
    victim = _borrower_with_a_line(world, openid="o_protect_victim", phone="13700001111",
                                   last4="3333", born=date(1992, 4, 8))
    stolen = dict(victim["headers"])
    attacker_phone = "18600003333"
    _advance(auth_clock, seconds=61)
    assert world.api.post("/v1/auth/sms-codes", {"phone": attacker_phone})[0] == 202
    attacker_code = code_for(world.outbox, attacker_phone)
    rebind = {"phone": attacker_phone, "code": attacker_code}

    # The token alone: 403, nothing changes (not even the attacker's code is used up).
    before = snapshot()
    status, answer, _ = world.call("POST", "/v1/me/phone", body=rebind, headers=stolen)
    assert_error(status, answer, 403, ("CURRENT_PHONE_PROOF_REQUIRED",), "token only")
    # Re-binding the victim's own number is no probe for it: the same 403.
    status, same, _ = world.call("POST", "/v1/me/phone", headers=stolen,
                                 body={"phone": victim["phone"], "code": "123456"})
    assert (status, same) == (403, answer)
    assert_unchanged(before, snapshot(), "a rebind without proof")

    # The attacker can have a code texted to the victim's phone, but cannot read it.
    status, answer, _ = world.call("POST", "/v1/me/phone/current-code", headers=stolen)
    assert (status, answer) == (202, {"expires_in": 300})
    warning = _texts_to(world, victim["phone"])[-1]
    assert "更换" in warning and "请勿告诉任何人" in warning  # says what the code would do
    current = code_for(world.outbox, victim["phone"])
    for _ in range(5):
        status, answer, _ = world.call("POST", "/v1/me/phone", headers=stolen,
                                       body={**rebind, "current_code": _wrong(current)})
        assert_error(status, answer, 401, ("OTP_INVALID",), "a wrong current code")
    status, answer, headers = world.call("POST", "/v1/me/phone", headers=stolen,
                                         body={**rebind, "current_code": current})
    assert_error(status, answer, 429, ("OTP_LOCKED",), "five wrong tries void the code")
    assert int(headers["Retry-After"]) >= 1

    # The lost-phone path with a wrong identity: refused, like no proof at all.
    for name, id_number in (("李四", victim["id_number"]),
                            ("张三", resident_id(date(1992, 4, 9))),
                            ("张三", None)):
        proof = {"name": name, **({"id_number": id_number} if id_number else {})}
        status, answer, _ = world.call("POST", "/v1/me/phone", headers=stolen,
                                       body={**rebind, **proof})
        assert_error(status, answer, 403, ("CURRENT_PHONE_PROOF_REQUIRED",), f"identity {proof}")
    status, me, _ = world.call("GET", "/v1/me", headers=stolen)
    assert me["phone_masked"] == _masked(victim["phone"])
    status, loans, _ = world.call("GET", "/v1/loans", headers=stolen)
    assert loans["items"] == []

    # A phisher who knows the victim's name and ID number does rebind the phone...
    status, answer, _ = world.call("POST", "/v1/me/phone", headers=stolen, body={
        **rebind, "name": victim["name"], "id_number": victim["id_number"]})
    assert status == 200 and answer["phone_masked"] == _masked(attacker_phone), answer
    alert = _texts_to(world, victim["phone"])[-1]
    assert _masked(attacker_phone) in alert and attacker_phone not in alert

    # ...but gets no money out: no new card for a payout, no draw to the victim's card.
    status, answer, headers = _add_card(world, stolen, "6666")
    _assert_on_hold(status, answer, headers, DAY, "add a card")
    status, answer, headers = _draw(world, victim, stolen)
    _assert_on_hold(status, answer, headers, DAY, "draw")
    status, me, _ = world.call("GET", "/v1/me", headers=stolen)
    assert len(me["bank_cards"]) == 1
    assert world.call("GET", "/v1/loans", headers=stolen)[1]["items"] == []
    _assert_masked_everywhere(world, [victim["phone"], attacker_phone, victim["id_number"]])


def test_the_owner_replaces_the_phone_ends_other_sessions_and_waits_a_day(world, auth_clock):
    """Given a borrower signed in on two devices, when she replaces her phone with a code
    sent to the bound phone, then this session goes on and the other one ends (its access
    and refresh tokens alike), both phones are told, drawdowns and new cards wait 24 hours
    (403 SECURITY_HOLD with the seconds left), and the old phone no longer signs in to her
    account."""
    old_phone, new_phone = "13700004444", "13700005555"
    owner = _borrower_with_a_line(world, openid="o_protect_owner", phone=old_phone, last4="4444",
                                  born=date(1993, 9, 21))
    status, tablet = world.api.post("/v1/auth/wechat", {"code": "dev-o_protect_owner"})
    assert status == 200 and tablet["user_id"] == owner["user_id"]
    tablet_headers = world.api.bearer(tablet["access_token"])
    assert world.call("GET", "/v1/me", headers=tablet_headers)[0] == 200

    _advance(auth_clock, seconds=61)
    status, answer, _ = world.call("POST", "/v1/me/phone/current-code", headers=owner["headers"])
    assert (status, answer) == (202, {"expires_in": 300})
    current = code_for(world.outbox, old_phone)
    assert world.api.post("/v1/auth/sms-codes", {"phone": new_phone})[0] == 202
    status, answer, _ = world.call("POST", "/v1/me/phone", headers=owner["headers"], body={
        "phone": new_phone, "code": code_for(world.outbox, new_phone), "current_code": current})
    assert status == 200 and answer["phone_masked"] == _masked(new_phone), answer

    # This session goes on; the tablet's ends at once, access and refresh token alike.
    status, me, _ = world.call("GET", "/v1/me", headers=owner["headers"])
    assert status == 200 and me["phone_masked"] == _masked(new_phone)
    status, answer, _ = world.call("GET", "/v1/me", headers=tablet_headers)
    assert_error(status, answer, 401, ("TOKEN_REVOKED",), "the other session's access token")
    status, answer, _ = world.call("POST", "/v1/auth/refresh",
                                   body={"refresh_token": tablet["refresh_token"]})
    assert_error(status, answer, 401, what="the other session's refresh token")
    status, answer, _ = world.call("POST", "/v1/auth/refresh",
                                   body={"refresh_token": owner["tokens"]["refresh_token"]})
    assert status == 200, answer

    # Both phones are told, with masked numbers only.
    to_old, to_new = _texts_to(world, old_phone)[-1], _texts_to(world, new_phone)[-1]
    assert _masked(new_phone) in to_old and new_phone not in to_old
    assert _masked(old_phone) in to_new and old_phone not in to_new

    # 24 hours of hold, counted down, then lifted.
    status, answer, headers = _add_card(world, owner["headers"], "7777")
    _assert_on_hold(status, answer, headers, DAY, "add a card at once")
    status, answer, headers = _draw(world, owner)
    _assert_on_hold(status, answer, headers, DAY, "draw at once")
    _advance(auth_clock, hours=23)
    status, answer, headers = _add_card(world, owner["headers"], "7777")
    _assert_on_hold(status, answer, headers, 3600, "add a card after 23 hours")
    status, answer, headers = _draw(world, owner)
    _assert_on_hold(status, answer, headers, 3600, "draw after 23 hours")
    _advance(auth_clock, hours=1)
    status, card, _ = _add_card(world, owner["headers"], "7777")
    assert status == 201, card
    status, loan, _ = _draw(world, owner)
    assert status == 201 and loan["status"] == "scheduled", loan

    # The old phone now signs in to a new, empty account, not to hers.
    assert world.api.post("/v1/auth/sms-codes", {"phone": old_phone})[0] == 202
    status, signed = world.api.post("/v1/auth/sms-login",
                                    {"phone": old_phone, "code": code_for(world.outbox, old_phone)})
    assert status == 200 and signed["user_id"] != owner["user_id"] and signed["new_user"] is True
    _assert_masked_everywhere(world, [old_phone, new_phone, owner["id_number"]])


# ------------------------------------------------------------------ item 9: real name

def _but_counters(state):
    """A snapshot without the tries counters: what the tries must not have changed."""
    return {**state, "tables": [item for item in state["tables"] if "RATE#identity" not in item]}


class Registry:
    """A real-name provider that knows who is who (the sandbox's passes any 2-30 character
    name): it matches a name to an ID number only when they belong together."""

    def __init__(self, people):
        self.people = dict(people)
        self.calls = 0

    def verify(self, name, id_number):
        self.calls += 1
        return self.people.get(id_number) == name


def test_the_real_name_endpoint_tells_a_stranger_nothing_and_stops_at_five_a_day(
        world, auth_clock, monkeypatch):
    """Given a stranger holding a customer's ID number, when they guess the name, then they get
    the answer any wrong name gets (never IDENTITY_TAKEN); only with the right name does the
    provider's match let the conflict show; and the sixth try of the day is 429 until
    Asia/Shanghai midnight, whatever it carries, without asking the provider."""
    customer_id = world.b["pii"]["id_number"]
    outsider_id = resident_id(date(1990, 6, 15), sequence=321)  # a real person, not a customer
    registry = Registry({customer_id: "张三", outsider_id: "王五"})
    monkeypatch.setitem(providers._overrides, "realname", registry)
    status, signed = world.api.post("/v1/auth/wechat", {"code": "dev-o_protect_stranger"})
    stranger = world.api.bearer(signed["access_token"])

    before = snapshot()
    status, customer, _ = world.call("POST", "/v1/me/identity", headers=stranger,
                                     body={"name": "李四", "id_number": customer_id})
    assert_error(status, customer, 422, ("IDENTITY_MISMATCH",), "a customer's ID, a wrong name")
    status, outsider, _ = world.call("POST", "/v1/me/identity", headers=stranger,
                                     body={"name": "李四", "id_number": outsider_id})
    assert (status, outsider) == (422, customer)
    assert registry.calls == 2

    # The right name matched at the provider: now the account conflict may be told.
    status, answer, _ = world.call("POST", "/v1/me/identity", headers=stranger,
                                   body={"name": "张三", "id_number": customer_id})
    assert_error(status, answer, 409, ("IDENTITY_TAKEN",), "matched, bound to another account")
    for name in ("赵六", "钱七"):
        status, answer, _ = world.call("POST", "/v1/me/identity", headers=stranger,
                                       body={"name": name, "id_number": customer_id})
        assert (status, answer) == (422, customer)
    assert registry.calls == 5
    assert_unchanged(_but_counters(before), _but_counters(snapshot()), "five real-name tries")

    # The sixth try of the Shanghai day, even the stranger's own true identity: 429.
    now = auth_clock.now()
    midnight = datetime.combine(shanghai_date(now) + timedelta(days=1), time(0), SHANGHAI)
    status, answer, headers = world.call("POST", "/v1/me/identity", headers=stranger,
                                         body={"name": "王五", "id_number": outsider_id})
    assert_error(status, answer, 429, what="the sixth try")
    assert int(headers["Retry-After"]) == int((midnight - now).total_seconds())
    assert registry.calls == 5
    assert world.call("GET", "/v1/me", headers=stranger)[1]["identity_verified"] is False

    # The next Shanghai day the count starts again.
    auth_clock.set(midnight.astimezone(timezone.utc))
    status, answer, _ = world.call("POST", "/v1/me/identity", headers=stranger,
                                   body={"name": "王五", "id_number": outsider_id})
    assert status == 200 and answer["verified"] is True, answer
