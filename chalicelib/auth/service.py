"""Use cases of the identity slice: sign-in, tokens, phone, real-name, bank cards.

Routes call one function each; other slices read people only through `borrower_profile`,
`card_last4`, `card_for_payout` and `refuse_during_security_hold` (see
chalicelib/loans/people.py). Time comes from `clock` (the service's clock, `wiring.clock()`:
the local stack's one clock in the `local` stage; tests replace it); tokens use the wall
clock, as PyJWT checks them against it.

Account protection (anti-phishing): replacing a bound phone needs proof of the bound phone (a
`phone-change` code sent to it) or, when it is lost, the verified name + ID number; it ends
every other session and starts a `SECURITY_HOLD_SECONDS` hold on drawdowns and new cards, and
both phones are told. Real-name checks are counted per user and Asia/Shanghai day
(`IDENTITY_CHECKS_PER_DAY`) before anything is compared, and IDENTITY_TAKEN is answered only
after the provider matched the name and ID number.
"""
from __future__ import annotations

import hmac
import json
import math
import re
import uuid
from datetime import datetime, time, timedelta
from typing import Any, Mapping

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, ValidationError

from chalicelib import wiring
from chalicelib.auth import cards, hooks, otp, providers, tokens
from chalicelib.auth.models import (LOOKUP, PROFILE, CardRecord, LookupRecord, RefreshFamilyRecord,
                                    SendCounterRecord, SessionIndexRecord, UserRecord, user_pk)
from chalicelib.auth.pii_vault import keyed_hash, mask_name, seal, unseal
from chalicelib.auth.secret_store import secret_json
from chalicelib.core import config
from chalicelib.core.clock import SHANGHAI, Clock, shanghai_date, shanghai_iso
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.core.errors import Conflict, DependencyDown, Forbidden, NotFound, RateLimited, RuleViolation
from chalicelib.core.observability import logger
from chalicelib.core.pii import mask_id_number, mask_phone

clock: Clock = wiring.ServiceClock()
MAX_CARDS = 5
MIN_AGE, MAX_AGE = 18, 65
# 18 characters: 17 ASCII digits, then a digit or X (x taken too); matched whole.
ID_NUMBER_PATTERN = r"^[0-9]{17}[0-9Xx]$"
_ID_SHAPE = re.compile(ID_NUMBER_PATTERN)
_UUID_SHAPE = re.compile(r"^[0-9a-f-]{1,64}$")
SECURITY_HOLD_SECONDS = 24 * 3600
IDENTITY_CHECKS_PER_DAY = 5


def _now() -> datetime:
    return clock.now()


def _stamp() -> str:
    return _now().isoformat()


# ------------------------------------------------------------------ users and lookups

def _profile(user_id: str) -> UserRecord:
    try:
        return UserRecord.get(user_pk(user_id), PROFILE, consistent_read=True)
    except DoesNotExist:
        raise NotFound("No such user.", code="USER_NOT_FOUND") from None


def _lookup(pk: str) -> str | None:
    try:
        return LookupRecord.get(pk, LOOKUP, consistent_read=True).user_id
    except DoesNotExist:
        return None


def _phone_fields(user_id: str, phone: str, phone_hash: str) -> dict[str, str]:
    return {"phone_hash": phone_hash, "phone_masked": mask_phone(phone),
            "phone_sealed": seal(phone, user_id=user_id, purpose="phone")}


def _user_for(lookup_pk: str, *, signup: str, fields=None) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """The user owning `lookup_pk`, or a new user created with it atomically."""
    found = _lookup(lookup_pk)
    if found:
        return found, False
    user_id = str(uuid.uuid4())
    stamp = _stamp()
    profile = UserRecord(pk=user_pk(user_id), sk=PROFILE, user_id=user_id, created_at=stamp,
                         signup_method=signup, **(fields(user_id) if fields else {}))
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.save(LookupRecord(pk=lookup_pk, sk=LOOKUP, user_id=user_id, created_at=stamp),
                    condition=LookupRecord.pk.does_not_exist())
            tx.save(profile, condition=UserRecord.pk.does_not_exist())
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        found = _lookup(lookup_pk)  # a concurrent first sign-in created the user
        if found:
            return found, False
        raise
    return user_id, True


# ------------------------------------------------------------------ tokens and sessions

def _family_pk(family_id: str) -> str:
    return f"FAMILY#{family_id}"


def _answer(user_id: str, family_id: str, jti: str, new_user: bool) -> dict[str, Any]:
    return {"access_token": tokens.issue("access", user_id=user_id, family_id=family_id),
            "refresh_token": tokens.issue("refresh", user_id=user_id, family_id=family_id, jti=jti),
            "expires_in": tokens.ACCESS_TTL, "user_id": user_id, "new_user": new_user}


def _family_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=tokens.REFRESH_TTL) + timedelta(days=1)


def _sessions_pk(user_id: str) -> str:
    return f"SESSIONS#{user_id}"


def _start_session(user_id: str, new_user: bool, method: str) -> dict[str, Any]:
    family_id, jti, now = uuid.uuid4().hex, uuid.uuid4().hex, _now()
    # Listed first, created second: every live family is on the user's list, so a phone
    # replacement can end it (a listed family that was never created is skipped then).
    SessionIndexRecord(pk=_sessions_pk(user_id)).update(
        actions=[SessionIndexRecord.family_ids.add({family_id})])
    RefreshFamilyRecord(pk=_family_pk(family_id), user_id=user_id, current_jti=jti, generation=1,
                        revoked=False, created_at=now.isoformat(), rotated_at=now.isoformat(),
                        expires_at=_family_expiry(now)).save(
        condition=RefreshFamilyRecord.pk.does_not_exist())
    logger.info("signed in", extra={"user_id": user_id, "method": method, "new_user": new_user})
    return _answer(user_id, family_id, jti, new_user)


def _live_family(claims: Mapping[str, Any]) -> RefreshFamilyRecord:
    try:
        family = RefreshFamilyRecord.get(_family_pk(claims["fam"]), consistent_read=True)
    except DoesNotExist:
        raise tokens.TokenInvalid("This session has ended; sign in again.", code="TOKEN_REVOKED") from None
    if family.revoked or family.user_id != claims["sub"]:
        raise tokens.TokenInvalid("This session has ended; sign in again.", code="TOKEN_REVOKED")
    return family


def bearer_token(header: str | None) -> str:
    if not header:
        raise tokens.TokenInvalid("Sign in first: send Authorization: Bearer <access_token>.",
                                  code="TOKEN_MISSING")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise tokens.TokenInvalid("Send Authorization: Bearer <access_token>.")
    return token.strip()


def authenticate_access_token(token: str) -> str:
    """The user id of a genuine, unexpired access token of a live session; 401 otherwise.
    Used by the `bearer` authenticator and by the API Gateway authorizer alike."""
    claims = tokens.verify(token, "access")
    _live_family(claims)
    return claims["sub"]


def _revoke(family: RefreshFamilyRecord, reason: str) -> None:
    family.update(actions=[RefreshFamilyRecord.revoked.set(True)])
    logger.warning("refresh family revoked", extra={"user_id": family.user_id, "reason": reason})


def session_family(authorization: str | None) -> str:
    """The refresh family (the session) of an access token already authenticated."""
    return tokens.verify(bearer_token(authorization), "access")["fam"]


def _end_other_sessions(user_id: str, keep_family: str) -> int:
    """Revoke every session of the user but `keep_family`: their refresh tokens stop working
    and, as every access token names its family, their access tokens too. Returns how many."""
    try:
        listed = SessionIndexRecord.get(_sessions_pk(user_id), consistent_read=True).family_ids or set()
    except DoesNotExist:
        return 0
    ended = set()
    for family_id in listed - {keep_family}:
        try:
            RefreshFamilyRecord(pk=_family_pk(family_id)).update(
                actions=[RefreshFamilyRecord.revoked.set(True)],
                condition=RefreshFamilyRecord.pk.exists() & (RefreshFamilyRecord.user_id == user_id))
        except UpdateError as err:
            if not condition_failed(err):
                raise
        ended.add(family_id)  # revoked now, or gone (expired) already: off the list either way
    if ended:
        SessionIndexRecord(pk=_sessions_pk(user_id)).update(
            actions=[SessionIndexRecord.family_ids.delete(ended)])
    return len(ended)


def refresh(refresh_token: str) -> dict[str, Any]:
    """Exchange a refresh token once. A token used twice revokes its whole family."""
    claims = tokens.verify(refresh_token, "refresh")
    family = _live_family(claims)
    if not hmac.compare_digest(family.current_jti, claims["jti"]):
        _revoke(family, "refresh token reused")
        raise tokens.TokenInvalid("This refresh token was already used; the session has been "
                                  "ended for your safety. Sign in again.", code="REFRESH_TOKEN_REUSED")
    jti, now = uuid.uuid4().hex, _now()
    try:
        family.update(actions=[RefreshFamilyRecord.current_jti.set(jti),
                               RefreshFamilyRecord.generation.add(1),
                               RefreshFamilyRecord.rotated_at.set(now.isoformat()),
                               RefreshFamilyRecord.expires_at.set(_family_expiry(now))],
                      condition=(RefreshFamilyRecord.current_jti == claims["jti"]) &
                      (RefreshFamilyRecord.revoked == False))  # noqa: E712
    except UpdateError as err:
        if not condition_failed(err):
            raise
        _revoke(family, "refresh token used concurrently")
        raise tokens.TokenInvalid("This refresh token was already used; sign in again.",
                                  code="REFRESH_TOKEN_REUSED") from None
    return _answer(family.user_id, claims["fam"], jti, False)


# ------------------------------------------------------------------ sign-in

def sign_in_wechat(code: str) -> dict[str, Any]:
    openid = providers.get_oauth().openid_for(code)
    user_id, new = _user_for(f"OPENID#{keyed_hash('openid', openid)}", signup="wechat")
    return _start_session(user_id, new, "wechat")


def send_sms_code(raw_phone: str, source_ip: str) -> dict[str, Any]:
    phone = otp.normalise_phone(raw_phone)
    expires = otp.send_code(phone, source_ip=source_ip, now=_now(), sender=wiring.message_sender())
    return {"expires_in": expires}


def sign_in_sms(raw_phone: str, code: str) -> dict[str, Any]:
    phone = otp.normalise_phone(raw_phone)
    otp.verify_code(phone, code, now=_now())
    phone_hash = keyed_hash("phone", phone)
    user_id, new = _user_for(f"PHONE#{phone_hash}", signup="sms",
                             fields=lambda uid: _phone_fields(uid, phone, phone_hash))
    return _start_session(user_id, new, "sms")


# ------------------------------------------------------------------ phone

def send_current_phone_code(user_id: str, source_ip: str) -> dict[str, Any]:
    """Text a `phone-change` code to the phone bound now: the proof that replacing it needs.
    The phone's own send limits apply (shared with sign-in codes)."""
    profile = _profile(user_id)
    if not profile.phone_sealed:
        raise Conflict("No phone number is bound yet: bind one with POST /v1/me/phone "
                       "(no current code is needed for the first).", code="NO_PHONE_BOUND")
    phone = unseal(profile.phone_sealed, user_id=user_id, purpose="phone")
    expires = otp.send_code(phone, source_ip=source_ip, now=_now(), sender=wiring.message_sender(),
                            purpose=otp.PHONE_CHANGE)
    return {"expires_in": expires}


def _proof_required(why: str) -> Forbidden:
    return Forbidden(f"{why} To replace your phone number, confirm with the code sent to it "
                     "(POST /v1/me/phone/current-code, then send it as `current_code`) or, if "
                     "that phone is lost, with the `name` and `id_number` of your verified "
                     "identity.", code="CURRENT_PHONE_PROOF_REQUIRED")


def _prove_current_phone(profile: UserRecord, current_code: str | None, name: str | None,
                         id_number: str | None) -> str:
    """That the caller holds the bound phone (its `phone-change` code) or, when it is lost,
    knows the verified identity; else 403 (401/429 for a wrong or voided code). Returns how."""
    if current_code is not None:
        phone = unseal(profile.phone_sealed, user_id=profile.user_id, purpose="phone")
        otp.verify_code(phone, current_code, now=_now(), purpose=otp.PHONE_CHANGE)
        return "current_code"
    if name is None and id_number is None:
        raise _proof_required("Your account already has a phone number.")
    if name is None or id_number is None:
        raise _proof_required("Send both `name` and `id_number`.")
    if not profile.id_hash or not profile.identity_sealed:
        raise _proof_required("Your identity is not verified, so only the current phone's code "
                              "can confirm this.")
    # Counted before comparing, with the real-name checks: a stolen token cannot guess the
    # owner's ID number more than a few times a day.
    _count_identity_check(profile.user_id)
    number = id_number.strip().upper() if isinstance(id_number, str) else ""
    identity = _identity(profile) or {}
    same_number = hmac.compare_digest(keyed_hash("id_number", number), profile.id_hash)
    same_name = hmac.compare_digest(" ".join(name.split()).encode(),
                                    str(identity.get("name", "")).encode())
    if not (same_number and same_name):
        raise _proof_required("The name and ID number do not match your verified identity.")
    return "identity"


def _notify(phone: str, text: str, what: str) -> None:
    wiring.message_sender().send("sms", phone, text)
    logger.info("security notice sent", extra={"phone": mask_phone(phone), "notice": what})


def bind_phone(user_id: str, raw_phone: str, code: str, *, current_code: str | None = None,
               name: str | None = None, id_number: str | None = None,
               session: str | None = None) -> dict[str, Any]:
    """Bind a phone the user proves with a code; one account per phone. Replacing a bound
    phone also needs proof of the bound one (`_prove_current_phone`), then ends every session
    but `session`, holds drawdowns and new cards for a day and tells both phones."""
    phone = otp.normalise_phone(raw_phone)
    profile = _profile(user_id)
    old = profile.phone_hash
    proof = None
    if old:
        # Proof first, for any number (the bound one too): otherwise a 403 for another number
        # and a 401 for the bound one would tell a token thief which number is bound.
        proof = _prove_current_phone(profile, current_code, name, id_number)
    # The code next: who owns a phone is only told to someone who holds that phone.
    otp.verify_code(phone, code, now=_now())
    phone_hash = keyed_hash("phone", phone)
    if profile.phone_hash == phone_hash:
        return {"user_id": user_id, "phone_masked": profile.phone_masked}
    owner = _lookup(f"PHONE#{phone_hash}")
    if owner is not None and owner != user_id:
        raise Conflict("This phone number belongs to another account.", code="PHONE_TAKEN")
    fields: dict[str, Any] = _phone_fields(user_id, phone, phone_hash)
    old_phone = None
    if old:
        old_phone = unseal(profile.phone_sealed, user_id=user_id, purpose="phone")
        # The bound phone is told before anything changes: if it cannot be told, nothing
        # changes (503). Then every other session ends, before the new phone can sign in.
        try:
            _notify(old_phone, f"【借贷】您账户绑定的手机号正在更换为 {fields['phone_masked']}。"
                    "为保护资金安全，更换后24小时内不能借款和添加银行卡，其他设备需重新登录。"
                    "如非本人操作，请立即联系客服。", "phone change to the old phone")
        except Exception:  # noqa: BLE001 - any sender failure: nothing changed, 503
            logger.warning("security notice not sent", extra={"phone": mask_phone(old_phone)})
            raise DependencyDown("We could not text your current phone number; nothing was "
                                 "changed. Please try again shortly.") from None
        _end_other_sessions(user_id, session or "")
        fields["security_hold_until"] = int(_now().timestamp()) + SECURITY_HOLD_SECONDS
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.save(LookupRecord(pk=f"PHONE#{phone_hash}", sk=LOOKUP, user_id=user_id,
                                 created_at=_stamp()),
                    condition=LookupRecord.pk.does_not_exist())
            tx.update(UserRecord(pk=user_pk(user_id), sk=PROFILE),
                      actions=[getattr(UserRecord, k).set(v) for k, v in fields.items()],
                      condition=UserRecord.pk.exists() & (
                          (UserRecord.phone_hash == old) if old else UserRecord.phone_hash.does_not_exist()))
            if old:
                tx.delete(LookupRecord(pk=f"PHONE#{old}", sk=LOOKUP),
                          condition=LookupRecord.user_id == user_id)
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        owner = _lookup(f"PHONE#{phone_hash}")
        if owner is not None and owner != user_id:
            raise Conflict("This phone number belongs to another account.", code="PHONE_TAKEN") from None
        raise Conflict("Your profile changed meanwhile; please try again.", code="PROFILE_CHANGED") from None
    if old_phone is None:
        logger.info("phone bound", extra={"user_id": user_id, "phone": fields["phone_masked"]})
        return {"user_id": user_id, "phone_masked": fields["phone_masked"]}
    # A session started while the phone was being replaced ends too; from here on, failures
    # are logged, not answered: the replacement has happened.
    try:
        _end_other_sessions(user_id, session or "")
    except Exception:  # noqa: BLE001
        logger.exception("sessions not ended after a phone change", extra={"user_id": user_id})
    try:
        _notify(phone, f"【借贷】本手机号已绑定您的借贷账户，原手机号 {profile.phone_masked} "
                "已解除绑定。为保护资金安全，24小时内不能借款和添加银行卡。如非本人操作，"
                "请立即联系客服。", "phone change to the new phone")
    except Exception:  # noqa: BLE001
        logger.exception("security notice not sent", extra={"phone": fields["phone_masked"]})
    logger.warning("phone replaced", extra={"user_id": user_id, "old_phone": profile.phone_masked,
                                            "phone": fields["phone_masked"], "proof": proof,
                                            "hold_until": fields["security_hold_until"]})
    return {"user_id": user_id, "phone_masked": fields["phone_masked"]}


def _refuse_if_held(profile: UserRecord) -> None:
    """403 SECURITY_HOLD, with Retry-After in seconds, while a phone replacement's hold lasts."""
    if not profile.security_hold_until:
        return
    left = math.ceil(profile.security_hold_until - _now().timestamp())
    if left > 0:
        raise Forbidden("Your phone number was just changed: for your safety, drawdowns and new "
                        f"bank cards are paused for {math.ceil(left / 3600)} more hour(s).",
                        code="SECURITY_HOLD", headers={"Retry-After": str(left)})


def refuse_during_security_hold(user_id: str) -> None:
    """For other slices (the drawdown): 403 SECURITY_HOLD while the user's hold lasts."""
    try:
        profile = UserRecord.get(user_pk(user_id), PROFILE, consistent_read=True)
    except DoesNotExist:
        return
    _refuse_if_held(profile)


# ------------------------------------------------------------------ real-name

def valid_id_number(raw: str) -> str:
    """An 18-digit resident ID per GB 11643 (region, real birth date, check digit), else 422."""
    number = raw.upper() if isinstance(raw, str) and _ID_SHAPE.fullmatch(raw) else ""
    if not number:
        raise RuleViolation("A resident ID number has 18 characters: 17 digits, then a digit or X.",
                            code="ID_NUMBER_INVALID")
    try:
        ric.validate(number)
    except InvalidChecksum:
        raise RuleViolation("This ID number's check digit is wrong; check the number.",
                            code="ID_NUMBER_INVALID") from None
    except ValidationError:
        raise RuleViolation("This ID number has an invalid region code or birth date.",
                            code="ID_NUMBER_INVALID") from None
    if ric.get_birth_date(number) > shanghai_date(_now()):
        raise RuleViolation("This ID number's birth date is in the future.", code="ID_NUMBER_INVALID")
    return number


def _count_identity_check(user_id: str) -> None:
    """Take one of the user's real-name checks of the Asia/Shanghai day, or 429 until
    midnight there. Counted before anything is compared, so a refused try learns nothing."""
    now = _now()
    day = shanghai_date(now)
    midnight = datetime.combine(day + timedelta(days=1), time(0), SHANGHAI)
    counter = SendCounterRecord(pk=f"RATE#identity#{user_id}#{day.isoformat()}")
    try:
        counter.update(actions=[SendCounterRecord.sent.add(1),
                                SendCounterRecord.window_end.set(int(midnight.timestamp())),
                                SendCounterRecord.expires_at.set(midnight + timedelta(days=1))],
                       condition=SendCounterRecord.sent.does_not_exist() |
                       (SendCounterRecord.sent < IDENTITY_CHECKS_PER_DAY))
    except UpdateError as err:
        if not condition_failed(err):
            raise
        logger.info("identity check refused by rate limit", extra={"user_id": user_id})
        raise RateLimited(f"At most {IDENTITY_CHECKS_PER_DAY} identity checks a day; try again "
                          "tomorrow.", retry_after=math.ceil((midnight - now).total_seconds()),
                          code="IDENTITY_RATE_LIMITED") from None


def _identity_answer(profile: UserRecord) -> dict[str, Any]:
    return {"verified": True, "name_masked": profile.name_masked,
            "id_number_masked": profile.id_number_masked}


def verify_identity(user_id: str, raw_name: str, raw_id_number: str) -> dict[str, Any]:
    profile = _profile(user_id)
    id_number = valid_id_number(raw_id_number)
    age = providers.age_on(ric.get_birth_date(id_number), shanghai_date(_now()))
    if not MIN_AGE <= age <= MAX_AGE:
        raise RuleViolation(f"Borrowers must be {MIN_AGE} to {MAX_AGE} years old.",
                            code="AGE_NOT_ELIGIBLE", params={"min_age": MIN_AGE, "max_age": MAX_AGE})
    name = " ".join(raw_name.split())
    id_hash = keyed_hash("id_number", id_number)
    # Counted once the request is well formed, before any answer that rests on data: the
    # provider's, or this account's own verified identity.
    _count_identity_check(user_id)
    if profile.id_hash:
        if hmac.compare_digest(profile.id_hash, id_hash):
            return _identity_answer(profile)
        raise Conflict("Your identity is already verified with another ID number.",
                       code="IDENTITY_ALREADY_VERIFIED")
    if not providers.get_realname().verify(name, id_number):
        raise RuleViolation("The name does not match this ID number.", code="IDENTITY_MISMATCH")
    # Only now, with the name and ID number matched, may the answer say whose the number is:
    # a stranger with someone's ID number and a guessed name gets the mismatch above.
    owner = _lookup(f"IDNO#{id_hash}")
    if owner is not None and owner != user_id:
        raise Conflict("This ID number is bound to another account.", code="IDENTITY_TAKEN")
    fields = {"id_hash": id_hash, "name_masked": mask_name(name),
              "id_number_masked": mask_id_number(id_number), "verified_at": _stamp(),
              "identity_sealed": seal(json.dumps({"name": name, "id_number": id_number},
                                                 ensure_ascii=False),
                                      user_id=user_id, purpose="identity")}
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.save(LookupRecord(pk=f"IDNO#{id_hash}", sk=LOOKUP, user_id=user_id, created_at=_stamp()),
                    condition=LookupRecord.pk.does_not_exist())
            tx.update(UserRecord(pk=user_pk(user_id), sk=PROFILE),
                      actions=[getattr(UserRecord, k).set(v) for k, v in fields.items()],
                      condition=UserRecord.pk.exists() & UserRecord.id_hash.does_not_exist())
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        owner = _lookup(f"IDNO#{id_hash}")
        if owner is not None and owner != user_id:
            raise Conflict("This ID number is bound to another account.", code="IDENTITY_TAKEN") from None
        current = _profile(user_id)
        if current.id_hash == id_hash:
            return _identity_answer(current)
        raise Conflict("Your identity is already verified with another ID number.",
                       code="IDENTITY_ALREADY_VERIFIED") from None
    logger.info("identity verified", extra={"user_id": user_id})
    return {"verified": True, "name_masked": fields["name_masked"],
            "id_number_masked": fields["id_number_masked"]}


def _identity(profile: UserRecord) -> dict[str, str] | None:
    if not profile.identity_sealed:
        return None
    return json.loads(unseal(profile.identity_sealed, user_id=profile.user_id, purpose="identity"))


# ------------------------------------------------------------------ bank cards

def _card_view(card: CardRecord) -> dict[str, Any]:
    return {"card_id": card.card_id, "bank_name": card.bank_name, "last4": card.last4}


def _cards(user_id: str) -> list[CardRecord]:
    found = CardRecord.query(user_pk(user_id), CardRecord.sk.startswith("CARD#"), consistent_read=True)
    return sorted(found, key=lambda c: c.added_at)


def _step_up(profile: UserRecord, code: str | None) -> None:
    """A fresh SMS code to the bound phone, when a loan is outstanding (anti-phishing)."""
    if code is None and not hooks.has_outstanding_loan(profile.user_id):
        return
    if not profile.phone_sealed:
        raise Forbidden("Bind a phone number first.", code="PHONE_REQUIRED")
    if code is None:
        raise Forbidden("You have a loan outstanding: confirm with a code sent to your phone "
                        "(POST /v1/auth/sms-codes), then send it as `code`.", code="SMS_CODE_REQUIRED")
    phone = unseal(profile.phone_sealed, user_id=profile.user_id, purpose="phone")
    otp.verify_code(phone, code, now=_now())


def add_card(user_id: str, raw_number: str, code: str | None = None) -> dict[str, Any]:
    profile = _profile(user_id)
    _refuse_if_held(profile)
    if not profile.id_hash:
        raise Forbidden("Verify your identity before adding a bank card.", code="IDENTITY_REQUIRED")
    number, bank = cards.check_debit_card(raw_number)
    card_key = f"CARDKEY#{keyed_hash('card', number)}"
    if LookupRecord.count(user_pk(user_id), LookupRecord.sk == card_key, consistent_read=True):
        raise Conflict("This card is already on your account.", code="CARD_ALREADY_ADDED")
    if len(_cards(user_id)) >= MAX_CARDS:
        raise RuleViolation(f"At most {MAX_CARDS} cards per account.", code="CARD_LIMIT_REACHED",
                            params={"max_cards": MAX_CARDS})
    _step_up(profile, code)
    card_id = str(uuid.uuid4())
    card = CardRecord(pk=user_pk(user_id), sk=f"CARD#{card_id}", user_id=user_id, card_id=card_id,
                      bank_name=bank, last4=number[-4:], added_at=_stamp(),
                      card_sealed=seal(number, user_id=user_id, purpose="card"))
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.save(LookupRecord(pk=user_pk(user_id), sk=card_key, user_id=user_id, created_at=_stamp()),
                    condition=LookupRecord.pk.does_not_exist())
            tx.save(card, condition=CardRecord.pk.does_not_exist())
            tx.update(profile, actions=[UserRecord.card_count.add(1)],
                      condition=UserRecord.card_count.does_not_exist() | (UserRecord.card_count < MAX_CARDS))
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        if len(_cards(user_id)) >= MAX_CARDS:  # a concurrent add took the last place
            raise RuleViolation(f"At most {MAX_CARDS} cards per account.", code="CARD_LIMIT_REACHED",
                                params={"max_cards": MAX_CARDS}) from None
        raise Conflict("This card is already on your account.", code="CARD_ALREADY_ADDED") from None
    logger.info("bank card added", extra={"user_id": user_id, "card_id": card_id, "last4": card.last4})
    return _card_view(card)


def _own_card(user_id: str, card_id: str) -> CardRecord | None:
    if not isinstance(card_id, str) or not _UUID_SHAPE.match(card_id):
        return None
    try:
        return CardRecord.get(user_pk(user_id), f"CARD#{card_id}", consistent_read=True)
    except DoesNotExist:
        return None


def get_card(user_id: str, card_id: str) -> dict[str, Any]:
    card = _own_card(user_id, card_id)
    if card is None:
        raise NotFound("No such bank card.", code="CARD_NOT_FOUND")
    return {**_card_view(card), "added_at": shanghai_iso(card.added_at)}


# ------------------------------------------------------------------ reads

def me(user_id: str) -> dict[str, Any]:
    profile = _profile(user_id)
    return {"user_id": user_id, "phone_masked": profile.phone_masked,
            "identity_verified": bool(profile.id_hash),
            "bank_cards": [_card_view(c) for c in _cards(user_id)],
            "credit": hooks.credit_summary(user_id)}


def borrower_profile(user_id: str) -> dict[str, Any]:
    """For other slices: verification state, whether a phone and a card are bound, age today.
    Decrypts only the identity (for the age); the phone stays sealed (see `bound_phone`)."""
    try:
        profile = UserRecord.get(user_pk(user_id), PROFILE, consistent_read=True)
    except DoesNotExist:
        return {"identity_verified": False, "phone_bound": False, "has_card": False, "age": None}
    identity = _identity(profile)
    age = None
    if identity:
        age = providers.age_on(ric.get_birth_date(identity["id_number"]), shanghai_date(_now()))
    if profile.card_count is not None:
        has_card = profile.card_count > 0
    else:  # a profile from before card_count was kept
        has_card = any(True for _ in CardRecord.query(user_pk(user_id), CardRecord.sk.startswith("CARD#"),
                                                      consistent_read=True, limit=1))
    return {"identity_verified": bool(profile.id_hash), "phone_bound": bool(profile.phone_sealed),
            "has_card": has_card, "age": age}


def bound_phone(user_id: str) -> str | None:
    """The user's bound phone number in clear, for the SMS sender only."""
    try:
        profile = UserRecord.get(user_pk(user_id), PROFILE, consistent_read=True)
    except DoesNotExist:
        return None
    return unseal(profile.phone_sealed, user_id=user_id, purpose="phone") if profile.phone_sealed else None


def card_last4(user_id: str, card_id: str) -> str | None:
    card = _own_card(user_id, card_id)
    return card.last4 if card else None


def card_for_payout(user_id: str, card_id: str) -> dict[str, str] | None:
    """The full card number and holder name, decrypted only for the payout call."""
    card = _own_card(user_id, card_id)
    if card is None:
        return None
    identity = _identity(_profile(user_id)) or {}
    return {"last4": card.last4, "holder_name": identity.get("name", ""),
            "card_number": unseal(card.card_sealed, user_id=user_id, purpose="card")}


# ------------------------------------------------------------------ operators

def authenticate_operator(headers: Mapping[str, str], context: Mapping[str, Any] | None) -> str:
    """Who is calling /v1/ops: in `local`, whoever holds the ops key (X-Ops-Key); elsewhere
    only a session of one of the stage's operator roles (`OPERATOR_ROLE_ARNS`), signed with
    SigV4 as API Gateway reports it in the request context; any other IAM principal of the
    account, and a borrower's bearer token, is 403. Returns the caller's session ARN (role and
    session name), recorded with every action."""
    from chalicelib.core import principals
    if config.is_local():
        supplied = headers.get("x-ops-key") or ""
        expected = secret_json("ops").get("key") or ""
        if expected and supplied and hmac.compare_digest(supplied.encode(), expected.encode()):
            return "local-operator"
        raise Forbidden("Operations need the X-Ops-Key header.", code="OPS_FORBIDDEN")
    identity = (context or {}).get("identity") or {}
    arn = identity.get("userArn")
    if not (isinstance(arn, str) and arn.startswith("arn:")):
        raise Forbidden("Operations need an IAM-signed (SigV4) request.", code="OPS_FORBIDDEN")
    roles = config.operator_role_arns()
    if principals.unusable(roles) or not roles:
        logger.error("OPERATOR_ROLE_ARNS names no usable role ARN; every operator is refused",
                     extra={"unusable": principals.unusable(roles)})
    if principals.is_session_of(arn, roles):
        return arn
    logger.warning("ops refused an IAM principal outside the operator roles", extra={"caller": arn})
    raise Forbidden("This IAM principal is not one of this stage's operator roles.", code="OPS_FORBIDDEN")
