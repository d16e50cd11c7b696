"""Attacks on identity that must fail, and a scan for personal data wherever it could leak."""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chalicelib.auth import routes, service, tokens
from chalicelib.auth.models import LookupRecord, RefreshFamilyRecord, UserRecord
from chalicelib.core.clock import FixedClock, shanghai_date
from chalicelib.api.http import AUTHENTICATORS
from tests.auth_support import (LogCapture, RecordingApi, access_claims, code_for, leaks, table_dump, tampered,
                                with_check_digit, with_wrong_check_digit, years_ago)
from tests.journeys import card_ending, ready_borrower, resident_id

PHONE_A, PHONE_B = "13812348000", "15900001234"


@pytest.fixture()
def api(client):
    return RecordingApi(client)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    monkeypatch.setattr(service, "clock", FixedClock(datetime.now(timezone.utc)))


def _advance(seconds):
    service.clock = FixedClock(service.clock.now() + timedelta(seconds=seconds))


def _two_borrowers(api, outbox):
    alice = ready_borrower(api, outbox, openid="o_alice", phone=PHONE_A, card=card_ending("1111"))
    _advance(61)
    bob = ready_borrower(api, outbox, openid="o_bob", phone=PHONE_B, card=card_ending("2222"),
                         born=date(1979, 11, 23))
    return alice, bob


# ------------------------------------------------------------------ other people's data

def test_another_users_ids_on_me_routes_reveal_nothing(api, outbox):
    alice, bob = _two_borrowers(api, outbox)
    status, body = api.get(f"/v1/me/bank-cards/{bob['card_id']}", alice["headers"])
    assert status == 404 and body["error"]["code"] == "CARD_NOT_FOUND"
    status, body = api.get("/v1/me/bank-cards/not-a-card-id", alice["headers"])
    assert status == 404
    # A user id in the query string is not obeyed: /v1/me is always the caller.
    status, me = api.get(f"/v1/me?user_id={bob['user_id']}", alice["headers"])
    assert status == 200 and me["user_id"] == alice["user_id"]
    assert [c["card_id"] for c in me["bank_cards"]] == [alice["card_id"]]


@pytest.mark.parametrize("path, body", [
    ("/v1/me/identity", {"name": "王五", "id_number": "x", "user_id": "B"}),
    ("/v1/me/bank-cards", {"card_number": "x", "user_id": "B"}),
    ("/v1/me/phone", {"phone": PHONE_B, "code": "123456", "user_id": "B"}),
])
def test_a_user_id_in_the_body_is_refused(api, path, body):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_mallory"})
    status, answer = api.post(path, body, api.bearer(signed["access_token"]))
    assert status == 400 and answer["error"]["code"] == "UNKNOWN_FIELD"


def test_one_phone_binds_one_account(api, outbox):
    _, alice = api.post("/v1/auth/wechat", {"code": "dev-o_alice"})
    api.post("/v1/auth/sms-codes", {"phone": PHONE_A})
    api.post("/v1/me/phone", {"phone": PHONE_A, "code": code_for(outbox, PHONE_A)},
             api.bearer(alice["access_token"]))
    _, bob = api.post("/v1/auth/wechat", {"code": "dev-o_bob"})
    _advance(61)
    api.post("/v1/auth/sms-codes", {"phone": PHONE_A})
    status, body = api.post("/v1/me/phone", {"phone": PHONE_A, "code": code_for(outbox, PHONE_A)},
                            api.bearer(bob["access_token"]))
    assert status == 409 and body["error"]["code"] == "PHONE_TAKEN"
    assert api.get("/v1/me", api.bearer(bob["access_token"]))[1]["phone_masked"] is None


def test_who_owns_a_phone_is_not_told_without_its_code(api, outbox):
    _, alice = api.post("/v1/auth/wechat", {"code": "dev-o_alice"})
    api.post("/v1/auth/sms-codes", {"phone": PHONE_A})
    api.post("/v1/me/phone", {"phone": PHONE_A, "code": code_for(outbox, PHONE_A)},
             api.bearer(alice["access_token"]))
    _, bob = api.post("/v1/auth/wechat", {"code": "dev-o_bob"})
    status, body = api.post("/v1/me/phone", {"phone": PHONE_A, "code": "123456"},
                            api.bearer(bob["access_token"]))
    assert status == 401 and body["error"]["code"] == "OTP_INVALID"


def test_one_id_number_binds_one_account(api, outbox):
    alice = ready_borrower(api, outbox, openid="o_alice", phone=PHONE_A, card=card_ending("1111"))
    _, bob = api.post("/v1/auth/wechat", {"code": "dev-o_bob"})
    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": resident_id(date(1988, 5, 17))},
                            api.bearer(bob["access_token"]))
    assert status == 409 and body["error"]["code"] == "IDENTITY_TAKEN"
    assert api.get("/v1/me", api.bearer(bob["access_token"]))[1]["identity_verified"] is False
    assert alice["user_id"] != bob["user_id"]


def test_a_card_needs_a_verified_identity_first(api):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_nina"})
    status, body = api.post("/v1/me/bank-cards", {"card_number": card_ending("1234")},
                            api.bearer(signed["access_token"]))
    assert status == 403 and body["error"]["code"] == "IDENTITY_REQUIRED"


# ------------------------------------------------------------------ forged tokens over HTTP

def _forgeries(genuine: str, user_id: str, family_id: str) -> dict[str, str]:
    key = tokens.STORE.keyset().active
    now = int(time.time())
    claims = access_claims(user_id, family_id, jti="x", now=now)
    return {
        "alg_none": jwt.encode(claims, None, algorithm="none", headers={"kid": key.kid}),
        "unknown_kid": jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                  headers={"kid": "ed25519-ffffffffffffffff"}),
        "tampered_payload": tampered(genuine, sub="someone-else"),
        "wrong_aud": tokens.issue("access", user_id=user_id, family_id=family_id,
                                  extra={"aud": tokens.audience("refresh")}),
        "wrong_iss": tokens.issue("access", user_id=user_id, family_id=family_id,
                                  extra={"iss": "lending-prod/auth"}),
        "expired": tokens.issue("access", user_id=user_id, family_id=family_id,
                                now=now - tokens.ACCESS_TTL - 61),
        "other_family": tokens.issue("access", user_id=user_id, family_id="f" * 32),
    }


def test_forged_tokens_get_401_on_me_routes(api):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_trudy"})
    family = jwt.decode(signed["access_token"], options={"verify_signature": False})["fam"]
    for name, token in _forgeries(signed["access_token"], signed["user_id"], family).items():
        for path in ("/v1/me", "/v1/me/bank-cards/abc"):
            status, body = api.get(path, api.bearer(token))
            assert status == 401, (name, path, body)
            assert body["error"]["code"] in ("TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED"), name
        status, _ = api.post("/v1/me/identity", {"name": "张三", "id_number": resident_id(date(1990, 1, 1))},
                             api.bearer(token))
        assert status == 401, name
    assert api.get("/v1/me", api.bearer(signed["access_token"]))[0] == 200


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer  "])
def test_missing_or_malformed_authorization_is_401(api, header):
    status, body = api.get("/v1/me", {"Authorization": header} if header is not None else {})
    assert status == 401 and body["error"]["code"] in ("TOKEN_MISSING", "TOKEN_INVALID")
    assert api.last_headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_a_token_of_a_deleted_refresh_family_is_refused(api):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_ursula"})
    family = jwt.decode(signed["access_token"], options={"verify_signature": False})["fam"]
    RefreshFamilyRecord.get(f"FAMILY#{family}").delete()
    status, body = api.get("/v1/me", api.bearer(signed["access_token"]))
    assert status == 401 and body["error"]["code"] == "TOKEN_REVOKED"
    status, body = api.post("/v1/auth/refresh", {"refresh_token": signed["refresh_token"]})
    assert status == 401


def test_the_api_gateway_authorizer_runs_the_same_checks(api):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_victor"})
    family = jwt.decode(signed["access_token"], options={"verify_signature": False})["fam"]
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/v1/me"

    def authorize(token):
        return routes.bearer_authorizer({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                                         "methodArn": arn}, None)

    allowed = authorize(signed["access_token"])
    assert allowed["principalId"] == signed["user_id"]
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    for name, token in _forgeries(signed["access_token"], signed["user_id"], family).items():
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorize(token)
    RefreshFamilyRecord.get(f"FAMILY#{family}").update(actions=[RefreshFamilyRecord.revoked.set(True)])
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorize(signed["access_token"])


# ------------------------------------------------------------------ operators

def _request(headers=None, context=None):
    return SimpleNamespace(headers={k.lower(): v for k, v in (headers or {}).items()},
                           context=context or {})


def test_ops_in_local_needs_the_ops_key_and_never_a_bearer_token(api, aws_stack):
    ops_key = json.loads(aws_stack["secrets"]["ops"])["key"]
    authenticate = AUTHENTICATORS["ops"]
    assert authenticate(_request({"X-Ops-Key": ops_key}))
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_walter"})
    for headers in ({}, {"X-Ops-Key": "wrong"}, {"Authorization": f"Bearer {signed['access_token']}"}):
        with pytest.raises(Exception) as caught:
            authenticate(_request(headers))
        assert caught.value.status == 403 and caught.value.code == "OPS_FORBIDDEN"


def test_ops_when_deployed_takes_a_session_of_an_operator_role_and_ignores_the_ops_key(aws_stack, monkeypatch):
    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.setenv("OPERATOR_ROLE_ARNS", "arn:aws:iam::123456789012:role/staff/lending-prod-operator")
    ops_key = json.loads(aws_stack["secrets"]["ops"])["key"]
    arn = "arn:aws:sts::123456789012:assumed-role/lending-prod-operator/ops-jane"
    authenticate = AUTHENTICATORS["ops"]
    assert authenticate(_request(context={"identity": {"userArn": arn, "sourceIp": "1.2.3.4"}})) == arn
    for request in (_request({"X-Ops-Key": ops_key}), _request({"Authorization": "Bearer x"}),
                    _request(context={"identity": {"userArn": None}}),
                    # any other principal of the account: a user, another role, the root
                    _request(context={"identity": {"userArn": "arn:aws:iam::123456789012:user/ops-jane"}}),
                    _request(context={"identity": {"userArn": "arn:aws:sts::123456789012:assumed-role/dev/jane"}}),
                    _request(context={"identity": {"userArn": "arn:aws:iam::123456789012:root"}})):
        with pytest.raises(Exception) as caught:
            authenticate(request)
        assert caught.value.status == 403 and caught.value.code == "OPS_FORBIDDEN"
    monkeypatch.setenv("OPERATOR_ROLE_ARNS", "")  # none configured: nobody
    with pytest.raises(Exception) as caught:
        authenticate(_request(context={"identity": {"userArn": arn}}))
    assert caught.value.status == 403


# ------------------------------------------------------------------ OTP guessing over HTTP

def test_guessing_an_sms_code_locks_it(api, outbox):
    api.post("/v1/auth/sms-codes", {"phone": PHONE_A})
    code = code_for(outbox, PHONE_A)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        status, body = api.post("/v1/auth/sms-login", {"phone": PHONE_A, "code": wrong})
        assert status == 401 and body["error"]["code"] == "OTP_INVALID"
    status, body = api.post("/v1/auth/sms-login", {"phone": PHONE_A, "code": code})
    assert status == 429 and body["error"]["code"] == "OTP_LOCKED"
    assert int(api.last_headers["Retry-After"]) >= 1


def test_a_used_or_expired_code_does_not_sign_in(api, outbox):
    api.post("/v1/auth/sms-codes", {"phone": PHONE_A})
    code = code_for(outbox, PHONE_A)
    assert api.post("/v1/auth/sms-login", {"phone": PHONE_A, "code": code})[0] == 200
    status, body = api.post("/v1/auth/sms-login", {"phone": PHONE_A, "code": code})
    assert status == 401 and body["error"]["code"] == "OTP_INVALID"
    _advance(61)
    api.post("/v1/auth/sms-codes", {"phone": PHONE_B})
    _advance(301)
    status, body = api.post("/v1/auth/sms-login", {"phone": PHONE_B, "code": code_for(outbox, PHONE_B)})
    assert status == 401 and body["error"]["code"] == "OTP_INVALID"


def test_sms_codes_are_rate_limited_with_retry_after(api):
    assert api.post("/v1/auth/sms-codes", {"phone": PHONE_A})[0] == 202
    status, body = api.post("/v1/auth/sms-codes", {"phone": "+86" + PHONE_A})
    assert status == 429 and api.last_headers["Retry-After"] == "60"


@pytest.mark.parametrize("phone", ["12812348000", "1381234800", "+85213812348000", "phone"])
def test_non_mainland_numbers_are_phone_invalid(api, phone):
    status, body = api.post("/v1/auth/sms-codes", {"phone": phone})
    assert status == 422 and body["error"]["code"] == "PHONE_INVALID"


def test_an_unknown_wechat_code_is_oauth_code_invalid(api):
    status, body = api.post("/v1/auth/wechat", {"code": "not-a-dev-code"})
    assert status == 401 and body["error"]["code"] == "OAUTH_CODE_INVALID"


# ------------------------------------------------------------------ unknown fields store nothing

def _users_table_items():
    return list(UserRecord.scan()) + list(LookupRecord.scan())


@pytest.mark.parametrize("body", [{"code": "dev-o_x", "user_id": "admin"},
                                  {"code": "dev-o_x", "new_user": False}])
def test_unknown_fields_on_sign_in_create_nobody(api, body):
    status, answer = api.post("/v1/auth/wechat", body)
    assert status == 400 and answer["error"]["code"] == "UNKNOWN_FIELD"
    assert _users_table_items() == []


def test_unknown_fields_on_sms_login_do_not_use_up_the_code(api, outbox):
    api.post("/v1/auth/sms-codes", {"phone": PHONE_A})
    code = code_for(outbox, PHONE_A)
    status, _ = api.post("/v1/auth/sms-login", {"phone": PHONE_A, "code": code, "user_id": "victim"})
    assert status == 400 and _users_table_items() == []
    assert api.post("/v1/auth/sms-login", {"phone": PHONE_A, "code": code})[0] == 200


def test_unknown_fields_on_identity_and_cards_store_nothing(api, outbox):
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_yuri"})
    auth = api.bearer(signed["access_token"])
    id_number = resident_id(date(1990, 3, 7))
    for extra in ({"identity_verified": True}, {"user_id": signed["user_id"]}, {"verified_at": "now"}):
        status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": id_number, **extra}, auth)
        assert status == 400 and body["error"]["code"] == "UNKNOWN_FIELD"
    assert api.get("/v1/me", auth)[1]["identity_verified"] is False
    assert not [i for i in LookupRecord.scan() if i.pk.startswith("IDNO#")]
    assert api.post("/v1/me/identity", {"name": "张三", "id_number": id_number}, auth)[0] == 200
    for extra in ({"bank_name": "x"}, {"last4": "0000"}, {"card_id": "mine"}):
        status, _ = api.post("/v1/me/bank-cards", {"card_number": card_ending("1234"), **extra}, auth)
        assert status == 400
    assert api.get("/v1/me", auth)[1]["bank_cards"] == []


# ------------------------------------------------------------------ ID numbers

def _today():
    return shanghai_date(service.clock.now())


@pytest.mark.parametrize("case, expected", [
    ("bad_checksum", "ID_NUMBER_INVALID"),
    ("30_february", "ID_NUMBER_INVALID"),
    ("month_13", "ID_NUMBER_INVALID"),
    ("unknown_region", "ID_NUMBER_INVALID"),
    ("born_tomorrow", "ID_NUMBER_INVALID"),
    ("17_digits", "ID_NUMBER_INVALID"),
    ("15_digit_old_format", "ID_NUMBER_INVALID"),
    ("letters", "ID_NUMBER_INVALID"),
    ("under_18_by_a_day", "AGE_NOT_ELIGIBLE"),
    ("aged_12", "AGE_NOT_ELIGIBLE"),
    ("aged_66", "AGE_NOT_ELIGIBLE"),
    ("name_too_long", "IDENTITY_MISMATCH"),
    ("name_one_character", "IDENTITY_MISMATCH"),
])
def test_ineligible_identities_are_422_and_store_nothing(api, case, expected):
    today = _today()
    adult = resident_id(years_ago(today, 30))
    id_number, name = {
        "bad_checksum": (with_wrong_check_digit(adult), "张三"),
        "30_february": (with_check_digit("11010119900230123"), "张三"),
        "month_13": (with_check_digit("11010119901301123"), "张三"),
        "unknown_region": (with_check_digit("99999919900307123"), "张三"),
        "born_tomorrow": (resident_id(today + timedelta(days=1)), "张三"),
        "17_digits": (adult[:17], "张三"),
        "15_digit_old_format": ("110101900307123", "张三"),
        "letters": ("11010119900307ABCD", "张三"),
        "under_18_by_a_day": (resident_id(years_ago(today, 18, days=1)), "张三"),
        "aged_12": (resident_id(years_ago(today, 12)), "张三"),
        "aged_66": (resident_id(years_ago(today, 66)), "张三"),
        "name_too_long": (adult, "张" * 31),
        "name_one_character": (adult, "张"),
    }[case]
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_zed"})
    auth = api.bearer(signed["access_token"])
    status, body = api.post("/v1/me/identity", {"name": name, "id_number": id_number}, auth)
    assert status == 422 and body["error"]["code"] == expected, body
    assert api.get("/v1/me", auth)[1]["identity_verified"] is False
    assert id_number not in table_dump()


def test_boundary_ages_18_today_and_65_pass(api):
    today = _today()
    for k, (years, openid) in enumerate([(18, "o_eighteen"), (65, "o_sixtyfive")]):
        _, signed = api.post("/v1/auth/wechat", {"code": f"dev-{openid}"})
        id_number = resident_id(years_ago(today, years), sequence=100 + k)
        status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": id_number},
                                api.bearer(signed["access_token"]))
        assert status == 200, body


def test_a_lowercase_x_check_digit_is_accepted(api):
    for seq in range(1000):  # find a sequence whose check digit is X
        id_number = resident_id(date(1991, 6, 1), sequence=seq)
        if id_number.endswith("X"):
            break
    _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_xavier"})
    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": id_number.lower()},
                            api.bearer(signed["access_token"]))
    assert status == 200 and body["id_number_masked"].endswith("X")


# ------------------------------------------------------------------ no personal data anywhere

def test_no_full_phone_id_or_card_number_in_responses_logs_outbox_or_tables(api, outbox):
    phone, id_number, card = PHONE_A, resident_id(date(1986, 2, 14), sequence=77), card_ending("9876")
    name = "欧阳娜娜"
    other_card = card_ending("5432", prefix="621700")
    with LogCapture() as logs:
        _, signed = api.post("/v1/auth/wechat", {"code": "dev-o_pii"})
        auth = api.bearer(signed["access_token"])
        api.post("/v1/auth/sms-codes", {"phone": "+86" + phone})
        api.post("/v1/auth/sms-codes", {"phone": phone})  # 429
        api.post("/v1/me/phone", {"phone": phone, "code": "000000"}, auth)  # 401, mostly
        api.post("/v1/me/phone", {"phone": phone, "code": code_for(outbox, phone)}, auth)
        api.post("/v1/me/identity", {"name": name, "id_number": with_wrong_check_digit(id_number)}, auth)
        api.post("/v1/me/identity", {"name": name, "id_number": id_number}, auth)
        api.post("/v1/me/bank-cards", {"card_number": card[:-1] + str((int(card[-1]) + 1) % 10)}, auth)
        _, added = api.post("/v1/me/bank-cards", {"card_number": card}, auth)
        api.post("/v1/me/bank-cards", {"card_number": card}, auth)  # 409
        api.post("/v1/me/bank-cards", {"card_number": other_card, "extra": other_card}, auth)  # 400
        api.get("/v1/me", auth)
        api.get(f"/v1/me/bank-cards/{added['card_id']}", auth)
        _, other = api.post("/v1/auth/wechat", {"code": "dev-o_pii2"})
        api.post("/v1/me/identity", {"name": name, "id_number": id_number},
                 api.bearer(other["access_token"]))  # 409 IDENTITY_TAKEN
        from chalicelib.loans import people
        people.payout_card(signed["user_id"], added["card_id"])  # decrypts, must not log
        people.borrower(signed["user_id"])
        people.sms_phone(signed["user_id"])
    secrets = [phone, "+86" + phone, id_number, card, other_card, name]
    assert api.seen and "138****8000" in "".join(api.seen)
    assert leaks("\n".join(api.seen), secrets) == []
    assert logs.text and leaks(logs.text, secrets) == []
    assert "138****8000" in outbox.read_text() and leaks(outbox.read_text(), secrets) == []
    assert leaks(table_dump(), secrets) == []


def test_two_accounts_racing_for_one_id_number_bind_it_once(api, outbox, monkeypatch):
    alice = ready_borrower(api, outbox, openid="o_alice", phone=PHONE_A, card=card_ending("1111"))
    _, bob = api.post("/v1/auth/wechat", {"code": "dev-o_bob"})
    real_lookup = service._lookup
    checks = []

    def lookup(pk):  # Bob's request checked before Alice's was written
        if pk.startswith("IDNO#"):
            checks.append(pk)
            if len(checks) == 1:
                return None
        return real_lookup(pk)

    monkeypatch.setattr(service, "_lookup", lookup)
    status, body = api.post("/v1/me/identity", {"name": "张三", "id_number": resident_id(date(1988, 5, 17))},
                            api.bearer(bob["access_token"]))
    monkeypatch.undo()
    assert status == 409 and body["error"]["code"] == "IDENTITY_TAKEN"
    assert api.get("/v1/me", api.bearer(bob["access_token"]))[1]["identity_verified"] is False
    assert alice["user_id"] != bob["user_id"]
