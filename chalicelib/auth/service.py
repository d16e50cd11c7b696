"""Use cases of the identity slice: sign-in, tokens, phone, real-name, bank cards.

Routes call one function each; other slices read people only through `borrower_profile`,
`card_last4` and `card_for_payout` (see chalicelib/loans/people.py). Time comes from
`clock` (the service's clock, `wiring.clock()`; tests replace it); tokens use the wall clock,
as PyJWT checks them against it.
"""
from __future__ import annotations

import hmac
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any, Mapping

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, ValidationError

from chalicelib import wiring
from chalicelib.auth import cards, hooks, otp, providers, tokens
from chalicelib.auth.models import (LOOKUP, PROFILE, CardRecord, LookupRecord, RefreshFamilyRecord,
                                    UserRecord, user_pk)
from chalicelib.auth.pii_vault import keyed_hash, mask_name, seal, unseal
from chalicelib.auth.secret_store import secret_json
from chalicelib.core import config
from chalicelib.core.clock import Clock, shanghai_date, shanghai_iso
from chalicelib.core.db import condition_failed, transact_connection
from chalicelib.core.errors import Conflict, Forbidden, NotFound, RuleViolation
from chalicelib.core.observability import logger
from chalicelib.core.pii import mask_id_number, mask_phone

clock: Clock = wiring.ServiceClock()
MAX_CARDS = 5
MIN_AGE, MAX_AGE = 18, 65
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_UUID_SHAPE = re.compile(r"^[0-9a-f-]{1,64}$")


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


def _start_session(user_id: str, new_user: bool, method: str) -> dict[str, Any]:
    family_id, jti, now = uuid.uuid4().hex, uuid.uuid4().hex, _now()
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

def bind_phone(user_id: str, raw_phone: str, code: str) -> dict[str, Any]:
    """Bind (or change to) a phone the user proves with a code; one account per phone."""
    phone = otp.normalise_phone(raw_phone)
    profile = _profile(user_id)
    # The code first: who owns a phone is only told to someone who holds that phone.
    otp.verify_code(phone, code, now=_now())
    phone_hash = keyed_hash("phone", phone)
    if profile.phone_hash == phone_hash:
        return {"user_id": user_id, "phone_masked": profile.phone_masked}
    owner = _lookup(f"PHONE#{phone_hash}")
    if owner is not None and owner != user_id:
        raise Conflict("This phone number belongs to another account.", code="PHONE_TAKEN")
    fields = _phone_fields(user_id, phone, phone_hash)
    old = profile.phone_hash
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
    logger.info("phone bound", extra={"user_id": user_id, "phone": fields["phone_masked"]})
    return {"user_id": user_id, "phone_masked": fields["phone_masked"]}


# ------------------------------------------------------------------ real-name

def valid_id_number(raw: str) -> str:
    """An 18-digit resident ID per GB 11643 (region, real birth date, check digit), else 422."""
    number = raw.strip().upper() if isinstance(raw, str) else ""
    if not _ID_SHAPE.match(number):
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


def _identity_answer(profile: UserRecord) -> dict[str, Any]:
    return {"verified": True, "name_masked": profile.name_masked,
            "id_number_masked": profile.id_number_masked}


def verify_identity(user_id: str, raw_name: str, raw_id_number: str) -> dict[str, Any]:
    profile = _profile(user_id)
    id_number = valid_id_number(raw_id_number)
    age = providers.age_on(ric.get_birth_date(id_number), shanghai_date(_now()))
    if not MIN_AGE <= age <= MAX_AGE:
        raise RuleViolation(f"Borrowers must be {MIN_AGE} to {MAX_AGE} years old.",
                            code="AGE_NOT_ELIGIBLE")
    name = " ".join(raw_name.split())
    id_hash = keyed_hash("id_number", id_number)
    if profile.id_hash:
        if profile.id_hash == id_hash:
            return _identity_answer(profile)
        raise Conflict("Your identity is already verified with another ID number.",
                       code="IDENTITY_ALREADY_VERIFIED")
    owner = _lookup(f"IDNO#{id_hash}")
    if owner is not None and owner != user_id:
        raise Conflict("This ID number is bound to another account.", code="IDENTITY_TAKEN")
    if not providers.get_realname().verify(name, id_number):
        raise RuleViolation("The name does not match this ID number.", code="IDENTITY_MISMATCH")
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
    if not profile.id_hash:
        raise Forbidden("Verify your identity before adding a bank card.", code="IDENTITY_REQUIRED")
    number, bank = cards.check_debit_card(raw_number)
    card_key = f"CARDKEY#{keyed_hash('card', number)}"
    if LookupRecord.count(user_pk(user_id), LookupRecord.sk == card_key, consistent_read=True):
        raise Conflict("This card is already on your account.", code="CARD_ALREADY_ADDED")
    if len(_cards(user_id)) >= MAX_CARDS:
        raise RuleViolation(f"At most {MAX_CARDS} cards per account.", code="CARD_LIMIT_REACHED")
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
            raise RuleViolation(f"At most {MAX_CARDS} cards per account.", code="CARD_LIMIT_REACHED") from None
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
    only an IAM (SigV4) caller, as API Gateway reports it in the request context. A
    borrower's bearer token is never enough: 403."""
    if config.is_local():
        supplied = headers.get("x-ops-key") or ""
        expected = secret_json("ops").get("key") or ""
        if expected and supplied and hmac.compare_digest(supplied.encode(), expected.encode()):
            return "local-operator"
        raise Forbidden("Operations need the X-Ops-Key header.", code="OPS_FORBIDDEN")
    identity = (context or {}).get("identity") or {}
    arn = identity.get("userArn")
    if isinstance(arn, str) and arn.startswith("arn:"):
        return arn
    raise Forbidden("Operations need an IAM-signed (SigV4) request.", code="OPS_FORBIDDEN")
