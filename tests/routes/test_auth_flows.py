"""Sign-in journeys through the contract's routes, on moto with the local sandbox providers."""
from __future__ import annotations

from datetime import date

import jwt
import pytest

from chalicelib.auth import hooks, service
from tests.auth_support import RecordingApi, code_for
from tests.journeys import card_ending, ready_borrower, resident_id

PHONE = "13812348000"
TOKEN_FIELDS = {"access_token", "refresh_token", "expires_in", "user_id", "new_user"}


@pytest.fixture()
def api(client):
    return RecordingApi(client)


def test_wechat_then_phone_then_real_name_then_card(api, outbox):
    status, signed = api.post("/v1/auth/wechat", {"code": "dev-o_alice"})
    assert status == 200 and set(signed) == TOKEN_FIELDS
    assert signed["new_user"] is True and signed["expires_in"] == 900
    auth = api.bearer(signed["access_token"])

    status, me = api.get("/v1/me", auth)
    assert status == 200
    assert me == {"user_id": signed["user_id"], "phone_masked": None, "identity_verified": False,
                  "bank_cards": [], "credit": None}

    status, body = api.post("/v1/auth/sms-codes", {"phone": "+86" + PHONE})
    assert (status, body) == (202, {"expires_in": 300})
    status, body = api.post("/v1/me/phone", {"phone": PHONE, "code": code_for(outbox, PHONE)}, auth)
    assert status == 200 and body["phone_masked"] == "138****8000"

    id_number = resident_id(date(1990, 3, 7))
    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": id_number}, auth)
    assert status == 200
    assert body == {"verified": True, "name_masked": "*三", "id_number_masked": "1101**********" + id_number[-4:]}

    number = card_ending("6789")
    status, card = api.post("/v1/me/bank-cards", {"card_number": number}, auth)
    assert status == 201 and set(card) == {"card_id", "bank_name", "last4"}
    assert card["bank_name"] == "中国工商银行" and card["last4"] == "6789"

    status, me = api.get("/v1/me", auth)
    assert me["phone_masked"] == "138****8000" and me["identity_verified"] is True
    assert me["bank_cards"] == [card] and me["credit"] is None
    status, one = api.get(f"/v1/me/bank-cards/{card['card_id']}", auth)
    assert status == 200 and one["last4"] == "6789"

    # Signing in with WeChat again is the same user, not a new one.
    status, again = api.post("/v1/auth/wechat", {"code": "dev-o_alice"})
    assert again["user_id"] == signed["user_id"] and again["new_user"] is False


def test_sms_login_creates_the_user_once_with_the_phone_bound(api, outbox):
    api.post("/v1/auth/sms-codes", {"phone": PHONE})
    status, first = api.post("/v1/auth/sms-login", {"phone": PHONE, "code": code_for(outbox, PHONE)})
    assert status == 200 and set(first) == TOKEN_FIELDS and first["new_user"] is True
    status, me = api.get("/v1/me", api.bearer(first["access_token"]))
    assert me["phone_masked"] == "138****8000"

    service.clock = _later(service.clock, 61)
    api.post("/v1/auth/sms-codes", {"phone": "+86" + PHONE})
    status, second = api.post("/v1/auth/sms-login", {"phone": PHONE, "code": code_for(outbox, PHONE)})
    assert status == 200 and second["user_id"] == first["user_id"] and second["new_user"] is False


def test_a_wechat_user_who_bound_a_phone_can_sign_in_by_sms(api, outbox):
    borrower = ready_borrower(api, outbox, openid="o_bob", phone=PHONE, card=card_ending("1111"))
    service.clock = _later(service.clock, 61)
    api.post("/v1/auth/sms-codes", {"phone": PHONE})
    status, signed = api.post("/v1/auth/sms-login", {"phone": PHONE, "code": code_for(outbox, PHONE)})
    assert status == 200 and signed["user_id"] == borrower["user_id"] and signed["new_user"] is False


def test_refresh_rotates_and_a_reused_token_revokes_the_whole_family(api):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_carol"})
    status, second = api.post("/v1/auth/refresh", {"refresh_token": signed["refresh_token"]})
    assert status == 200 and set(second) == TOKEN_FIELDS
    assert second["user_id"] == signed["user_id"] and second["new_user"] is False
    assert second["refresh_token"] != signed["refresh_token"]
    status, third = api.post("/v1/auth/refresh", {"refresh_token": second["refresh_token"]})
    assert status == 200
    assert api.get("/v1/me", api.bearer(third["access_token"]))[0] == 200

    # The first refresh token, stolen and replayed: refused, and the session is over.
    status, body = api.post("/v1/auth/refresh", {"refresh_token": signed["refresh_token"]})
    assert status == 401 and body["error"]["code"] == "REFRESH_TOKEN_REUSED"
    status, body = api.post("/v1/auth/refresh", {"refresh_token": third["refresh_token"]})
    assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"
    for access in (signed["access_token"], second["access_token"], third["access_token"]):
        status, body = api.get("/v1/me", api.bearer(access))
        assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"

    # Other sign-ins of the same user are separate families and keep working.
    _, other = api.post("/v1/auth/wechat", {"code": "dev-o_carol"})
    assert api.get("/v1/me", api.bearer(other["access_token"]))[0] == 200


def test_a_refresh_token_cannot_be_used_as_an_access_token_or_vice_versa(api):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_dave"})
    status, body = api.get("/v1/me", api.bearer(signed["refresh_token"]))
    assert status == 401 and body["error"]["code"] == "TOKEN_INVALID"
    status, body = api.post("/v1/auth/refresh", {"refresh_token": signed["access_token"]})
    assert status == 401 and body["error"]["code"] == "TOKEN_INVALID"


def test_credit_comes_from_the_loans_hook(api, monkeypatch):
    monkeypatch.setattr(hooks, "CREDIT_SUMMARIES", [
        lambda user_id: {"limit": 5_000_000, "available": 3_000_000, "apr": "0.1825"}])
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_erin"})
    _, me = api.get("/v1/me", api.bearer(signed["access_token"]))
    assert me["credit"] == {"limit": 5_000_000, "available": 3_000_000, "apr": "0.1825"}


def test_a_new_card_while_a_loan_is_outstanding_needs_a_fresh_sms_code(api, outbox, monkeypatch):
    borrower = ready_borrower(api, outbox, openid="o_fay", phone=PHONE, card=card_ending("2222"))
    auth = borrower["headers"]
    monkeypatch.setattr(hooks, "OUTSTANDING_LOAN_CHECKS", [lambda user_id: user_id == borrower["user_id"]])
    new_card = card_ending("3333", prefix="621700")

    status, body = api.post("/v1/me/bank-cards", {"card_number": new_card}, auth)
    assert status == 403 and body["error"]["code"] == "SMS_CODE_REQUIRED"
    status, body = api.post("/v1/me/bank-cards", {"card_number": new_card, "code": "000000"}, auth)
    assert status == 401 and body["error"]["code"] == "OTP_INVALID"  # no code was sent yet

    service.clock = _later(service.clock, 61)
    api.post("/v1/auth/sms-codes", {"phone": PHONE})
    code = code_for(outbox, PHONE)
    status, card = api.post("/v1/me/bank-cards", {"card_number": new_card, "code": code}, auth)
    assert status == 201 and card["bank_name"] == "中国建设银行"
    # The code was used up by this step-up.
    other = card_ending("4444", prefix="622848")
    status, body = api.post("/v1/me/bank-cards", {"card_number": other, "code": code}, auth)
    assert status == 401 and body["error"]["code"] == "OTP_INVALID"
    assert len(api.get("/v1/me", auth)[1]["bank_cards"]) == 2


def test_the_same_card_twice_is_a_conflict(api, outbox):
    number = card_ending("5555")
    borrower = ready_borrower(api, outbox, openid="o_gil", phone=PHONE, card=number)
    status, body = api.post("/v1/me/bank-cards", {"card_number": number}, borrower["headers"])
    assert status == 409 and body["error"]["code"] == "CARD_ALREADY_ADDED"


def test_verifying_the_same_identity_again_is_harmless_but_another_is_refused(api, outbox):
    borrower = ready_borrower(api, outbox, openid="o_hal", phone=PHONE, card=card_ending("6666"))
    auth = borrower["headers"]
    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": resident_id(date(1988, 5, 17))}, auth)
    assert status == 200 and body["verified"] is True
    status, body = api.post("/v1/me/identity", {"name": "李四", "id_number": resident_id(date(1985, 1, 2))}, auth)
    assert status == 409 and body["error"]["code"] == "IDENTITY_ALREADY_VERIFIED"


def test_the_loans_slice_reads_people_through_its_seam(api, outbox):
    from chalicelib.loans import people
    number = card_ending("7777")
    borrower = ready_borrower(api, outbox, openid="o_ivy", phone=PHONE, card=number)
    person = people.borrower(borrower["user_id"])
    assert person.identity_verified and person.phone_bound and person.has_card
    assert people.sms_phone(borrower["user_id"]) == PHONE and 18 <= person.age <= 65
    payout = people.payout_card(borrower["user_id"], borrower["card_id"])
    assert payout.card_number == number and payout.holder_name == "张三" and payout.last4 == "7777"
    assert people.card_owned(borrower["user_id"], borrower["card_id"]) == "7777"
    assert people.card_owned("someone-else", borrower["card_id"]) is None
    assert people.payout_card("someone-else", borrower["card_id"]) is None
    nobody = people.borrower("no-such-user")
    assert not nobody.identity_verified and not nobody.phone_bound and not nobody.has_card
    assert people.sms_phone("no-such-user") is None


def _later(clock, seconds):
    from datetime import timedelta

    from chalicelib.core.clock import FixedClock
    return FixedClock(clock.now() + timedelta(seconds=seconds))


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    from datetime import datetime, timezone

    from chalicelib.core.clock import FixedClock
    monkeypatch.setattr(service, "clock", FixedClock(datetime.now(timezone.utc)))


def test_two_refreshes_racing_with_one_token_end_the_session(api, monkeypatch):
    from chalicelib.auth.models import RefreshFamilyRecord
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_race"})
    family_id = next(f.pk for f in RefreshFamilyRecord.scan() if f.pk.startswith("FAMILY#"))
    stale = RefreshFamilyRecord.get(family_id)
    assert api.post("/v1/auth/refresh", {"refresh_token": signed["refresh_token"]})[0] == 200
    real_get = RefreshFamilyRecord.get.__func__
    calls = []

    def get(cls, *args, **kwargs):  # the slower request read the family before the rotation
        calls.append(args)
        return stale if len(calls) == 1 else real_get(cls, *args, **kwargs)

    monkeypatch.setattr(RefreshFamilyRecord, "get", classmethod(get))
    status, body = api.post("/v1/auth/refresh", {"refresh_token": signed["refresh_token"]})
    assert status == 401 and body["error"]["code"] == "REFRESH_TOKEN_REUSED"
    monkeypatch.undo()
    assert RefreshFamilyRecord.get(family_id).revoked is True


def test_a_concurrent_first_wechat_sign_in_makes_one_user(api, monkeypatch):
    _, first = api.post("/v1/auth/wechat", {"code": "dev-o_twin"})
    real_lookup = service._lookup
    calls = []

    def lookup(pk):  # the second request looked before the first one wrote the lookup item
        calls.append(pk)
        return None if len(calls) == 1 else real_lookup(pk)

    monkeypatch.setattr(service, "_lookup", lookup)
    status, second = api.post("/v1/auth/wechat", {"code": "dev-o_twin"})
    assert status == 200 and second["user_id"] == first["user_id"] and second["new_user"] is False
    from chalicelib.auth.models import UserRecord
    profiles = [u.user_id for u in UserRecord.scan(UserRecord.sk == "PROFILE")]
    assert profiles == [first["user_id"]]


def test_the_card_limit_holds_when_two_adds_race_past_the_check(api, outbox, monkeypatch):
    borrower = ready_borrower(api, outbox, openid="o_cards", phone=PHONE, card=card_ending("0001"))
    auth = borrower["headers"]
    for k in range(2, service.MAX_CARDS):
        assert api.post("/v1/me/bank-cards", {"card_number": card_ending(f"{k:04d}")}, auth)[0] == 201
    real_cards = service._cards
    calls = []

    def stale(user_id):  # each request's first look at the cards saw one place left
        calls.append(user_id)
        return real_cards(user_id)[:service.MAX_CARDS - 1] if len(calls) % 2 else real_cards(user_id)

    monkeypatch.setattr(service, "_cards", stale)
    assert api.post("/v1/me/bank-cards", {"card_number": card_ending("0098")}, auth)[0] == 201
    calls.clear()
    status, body = api.post("/v1/me/bank-cards", {"card_number": card_ending("0099")}, auth)
    assert status == 422 and body["error"]["code"] == "CARD_LIMIT_REACHED"
    monkeypatch.undo()
    assert len(service._cards(borrower["user_id"])) == service.MAX_CARDS


def test_the_borrower_seam_knows_of_cards_without_reading_them(api, outbox, monkeypatch):
    from chalicelib.auth.models import CardRecord
    from chalicelib.loans import people
    borrower = ready_borrower(api, outbox, openid="o_seam", phone=PHONE, card=card_ending("4321"))

    def no_card_reads(*args, **kwargs):
        raise AssertionError("the cards were read")

    monkeypatch.setattr(CardRecord, "query", no_card_reads)
    assert people.borrower(borrower["user_id"]).has_card


# ------------------------------------------------------------------ account protection

NEW_PHONE = "13900007777"


def _replace_phone(api, outbox, auth, new_phone=NEW_PHONE):
    """Replace the bound phone the owner's way: a phone-change code to the bound phone."""
    service.clock = _later(service.clock, 61)
    status, body = api.post("/v1/me/phone/current-code", None, auth)
    assert (status, body) == (202, {"expires_in": 300})
    current = code_for(outbox, PHONE)
    api.post("/v1/auth/sms-codes", {"phone": new_phone})
    return api.post("/v1/me/phone", {"phone": new_phone, "code": code_for(outbox, new_phone),
                                     "current_code": current}, auth)


def test_a_current_phone_code_needs_a_bound_phone_and_keeps_the_phones_limits(api, outbox):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_jay"})
    auth = api.bearer(signed["access_token"])
    status, body = api.post("/v1/me/phone/current-code", None, auth)
    assert status == 409 and body["error"]["code"] == "NO_PHONE_BOUND"
    api.post("/v1/auth/sms-codes", {"phone": PHONE})
    assert api.post("/v1/me/phone", {"phone": PHONE, "code": code_for(outbox, PHONE)}, auth)[0] == 200
    # the sign-in code just sent to this phone counts: one code a minute per phone
    status, body = api.post("/v1/me/phone/current-code", None, auth)
    assert status == 429 and body["error"]["code"] == "SMS_RATE_LIMITED"
    assert api.last_headers["Retry-After"] == "60"
    service.clock = _later(service.clock, 60)
    assert api.post("/v1/me/phone/current-code", None, auth) == (202, {"expires_in": 300})
    assert "更换" in outbox.read_text(encoding="utf-8").splitlines()[-1]


def test_a_sign_in_code_of_the_bound_phone_does_not_confirm_its_replacement(api, outbox):
    borrower = ready_borrower(api, outbox, openid="o_kim", phone=PHONE, card=card_ending("1212"))
    service.clock = _later(service.clock, 61)
    api.post("/v1/auth/sms-codes", {"phone": PHONE})  # a sign-in code, as a scammer asks for
    sign_in = code_for(outbox, PHONE)
    api.post("/v1/auth/sms-codes", {"phone": NEW_PHONE})
    status, body = api.post("/v1/me/phone", {"phone": NEW_PHONE, "code": code_for(outbox, NEW_PHONE),
                                             "current_code": sign_in}, borrower["headers"])
    assert status == 401 and body["error"]["code"] == "OTP_INVALID"
    assert api.get("/v1/me", borrower["headers"])[1]["phone_masked"] == "138****8000"


def test_the_lost_phone_path_needs_a_verified_identity_and_counts_as_a_real_name_check(api, outbox):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_lou"})
    auth = api.bearer(signed["access_token"])
    api.post("/v1/auth/sms-codes", {"phone": PHONE})
    api.post("/v1/me/phone", {"phone": PHONE, "code": code_for(outbox, PHONE)}, auth)
    rebind = {"phone": NEW_PHONE, "code": "123456", "name": "张三",
              "id_number": resident_id(date(1988, 5, 17))}
    status, body = api.post("/v1/me/phone", rebind, auth)  # not verified: no identity to match
    assert status == 403 and body["error"]["code"] == "CURRENT_PHONE_PROOF_REQUIRED"
    assert api.post("/v1/me/identity", {"name": "张三", "id_number": rebind["id_number"]}, auth)[0] == 200
    for _ in range(4):  # the day's checks: one real-name check above, four wrong proofs here
        status, body = api.post("/v1/me/phone", {**rebind, "name": "李四"}, auth)
        assert status == 403 and body["error"]["code"] == "CURRENT_PHONE_PROOF_REQUIRED"
    status, body = api.post("/v1/me/phone", rebind, auth)  # right, but the sixth check today
    assert status == 429 and body["error"]["code"] == "IDENTITY_RATE_LIMITED"
    assert int(api.last_headers["Retry-After"]) >= 1
    assert api.get("/v1/me", auth)[1]["phone_masked"] == "138****8000"


def test_if_the_bound_phone_cannot_be_told_nothing_changes(api, outbox, monkeypatch):
    from chalicelib import wiring
    borrower = ready_borrower(api, outbox, openid="o_max", phone=PHONE, card=card_ending("1313"))
    _, tablet = api.post("/v1/auth/wechat", {"code": "dev-o_max"})
    real = wiring.message_sender()

    class OldPhoneUnreachable:
        def send(self, channel, to, text):
            if to == PHONE and "验证码" not in text:
                raise ConnectionError("sns down")
            real.send(channel, to, text)

    wiring.override("message_sender", OldPhoneUnreachable())
    status, body = _replace_phone(api, outbox, borrower["headers"])
    assert status == 503 and body["error"]["code"] == "DEPENDENCY_UNAVAILABLE"
    me = api.get("/v1/me", borrower["headers"])[1]
    assert me["phone_masked"] == "138****8000"
    assert api.get("/v1/me", api.bearer(tablet["access_token"]))[0] == 200  # not ended
    status, _ = api.post("/v1/me/bank-cards", {"card_number": card_ending("1414")}, borrower["headers"])
    assert status == 201  # no hold


def test_sessions_that_expired_away_are_skipped_and_the_list_is_pruned(api, outbox):
    from chalicelib.auth.models import RefreshFamilyRecord, SessionIndexRecord
    borrower = ready_borrower(api, outbox, openid="o_ned", phone=PHONE, card=card_ending("1515"))
    _, phone_session = api.post("/v1/auth/wechat", {"code": "dev-o_ned"})
    _, gone = api.post("/v1/auth/wechat", {"code": "dev-o_ned"})
    family = jwt.decode(gone["access_token"], options={"verify_signature": False})["fam"]
    RefreshFamilyRecord.get(f"FAMILY#{family}").delete()  # as DynamoDB's TTL would
    status, body = _replace_phone(api, outbox, borrower["headers"])
    assert status == 200, body
    mine = jwt.decode(borrower["tokens"]["access_token"], options={"verify_signature": False})["fam"]
    assert SessionIndexRecord.get(f"SESSIONS#{borrower['user_id']}").family_ids == {mine}
    assert api.get("/v1/me", api.bearer(phone_session["access_token"]))[0] == 401
    assert api.get("/v1/me", borrower["headers"])[0] == 200


def test_the_api_document_lists_the_account_protection_answers(client):
    doc = client.http.get("/openapi.json").json_body
    paths = doc["paths"]

    def codes(path, status):
        return set(paths[path]["post"]["responses"][status]["x-error-codes"])

    assert "CURRENT_PHONE_PROOF_REQUIRED" in codes("/v1/me/phone", "403")
    assert {"OTP_LOCKED", "IDENTITY_RATE_LIMITED"} <= codes("/v1/me/phone", "429")
    current = paths["/v1/me/phone/current-code"]["post"]
    assert "202" in current["responses"] and "requestBody" not in current and current["security"] == [{"bearer": []}]
    assert codes("/v1/me/phone/current-code", "409") == {"NO_PHONE_BOUND"}
    assert "SMS_RATE_LIMITED" in codes("/v1/me/phone/current-code", "429")
    assert "IDENTITY_RATE_LIMITED" in codes("/v1/me/identity", "429")
    for path in ("/v1/me/bank-cards", "/v1/loans"):
        assert "SECURITY_HOLD" in codes(path, "403")
        assert "Retry-After" in paths[path]["post"]["responses"]["403"]["headers"]
    body = doc["components"]["schemas"]["PhoneBindBody"]
    assert {"current_code", "name", "id_number"} <= set(body["properties"])
    assert set(body["required"]) == {"phone", "code"}
