"""One-time SMS codes: 6 digits, 5 minutes, single use, stored only as a keyed hash.

A phone has at most one live challenge; sending a new code replaces it (and so lifts a
lock). Each try is counted with a conditional update before the answer is given, so
concurrent guesses cannot exceed `MAX_TRIES`: the 6th try is 429 OTP_LOCKED even with the
right code. Sending is limited per phone (one a minute, ten per Asia/Shanghai day) and per
source IP (`SendLimits.ip_max` per `ip_window` seconds), all three counted in one DynamoDB
transaction, so a refused send consumes nothing.

A code has a purpose (`PURPOSES`): `sign-in` (also binds a new phone and confirms a card) and
`phone-change` (sent to the bound phone to confirm replacing it). Each purpose is its own
challenge with its own text, so a code read out for a sign-in never confirms a phone change,
and the phone-change text says what the code would do (anti-phishing). The send limits are the
phone's, whatever the purpose: a phone gets at most one code a minute and ten a day in all.
"""
from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.auth.models import OtpChallengeRecord, SendCounterRecord
from chalicelib.auth.pii_vault import keyed_hash
from chalicelib.core.clock import SHANGHAI, shanghai_date
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.core.errors import DependencyDown, RateLimited, RuleViolation, Unauthorized
from chalicelib.core.messages import wait_phrase
from chalicelib.adapters.messaging import MessageSender
from chalicelib.core.observability import logger
from chalicelib.core.pii import mask_phone

CODE_TTL = 300
MAX_TRIES = 5
# The formats the API enforces, as the OpenAPI document states them (ECMA-262 and Python alike;
# ASCII digits only: Python's \d would take other scripts' digits too). Matched whole.
PHONE_PATTERN = r"^(?:\+86)?1[3-9][0-9]{9}$"
CODE_PATTERN = r"^[0-9]{6}$"
_PHONE = re.compile(r"(?:\+86)?(1[3-9][0-9]{9})")
_CODE = re.compile(CODE_PATTERN)
SIGN_IN, PHONE_CHANGE = "sign-in", "phone-change"
# Spaces around the code: in Chinese text `\b` would not separate it from the words. The SMS
# signature (【…】) is added by the sender, the same on every SMS the app sends.
PURPOSES = {
    SIGN_IN: "您的验证码是 {code} ，5分钟内有效。请勿告诉任何人。",
    PHONE_CHANGE: "您正在更换账户绑定的手机号，验证码是 {code} ，5分钟内有效。"
                  "客服不会向您索要验证码，请勿告诉任何人；如非本人操作，请立即联系客服。",
}


@dataclass(frozen=True)
class SendLimits:
    min_gap: int = 60  # seconds between two codes to one phone
    per_day: int = 10  # codes to one phone per Asia/Shanghai calendar day
    # Per source IP (API Gateway's sourceIp, which a client cannot forge). Generous because
    # mobile carriers put many subscribers behind one address; it stops SMS pumping from one
    # host, while the per-phone limits stop bombing one person.
    ip_max: int = 30
    ip_window: int = 600


LIMITS = SendLimits()


class OtpInvalid(Unauthorized):
    code = "OTP_INVALID"


def otp_locked(retry_after: int) -> RateLimited:
    return RateLimited("Too many wrong codes: this code no longer works. Request a new code "
                       f"(possible in {wait_phrase(retry_after, 'en')}).",
                       retry_after=retry_after, code="OTP_LOCKED")


def normalise_phone(raw: str) -> str:
    """A mainland mobile number as 11 digits (`+86` optional), else 422 PHONE_INVALID."""
    match = _PHONE.fullmatch(raw) if isinstance(raw, str) else None
    if not match:
        raise RuleViolation("Enter a mainland China mobile number: 11 digits starting with 13-19, "
                            "+86 optional.", code="PHONE_INVALID")
    return match.group(1)


def _epoch(now: datetime) -> int:
    return int(now.timestamp())


def _code_hash(challenge_id: str, phone: str, code: str) -> str:
    return keyed_hash("otp", f"{challenge_id}:{phone}:{code}")


def _challenge_pk(phone: str, purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    key = keyed_hash("phone", phone)
    return f"OTP#{key}" if purpose == SIGN_IN else f"OTP#{purpose}#{key}"


def _counters(phone: str, source_ip: str | None, now: datetime, limits: SendLimits):  # type: ignore[no-untyped-def]
    epoch = _epoch(now)
    phone_key = keyed_hash("phone", phone)
    day = shanghai_date(now)
    midnight = datetime.combine(day + timedelta(days=1), time(0), SHANGHAI)
    window_start = epoch - epoch % limits.ip_window
    counters = {
        "minute": (SendCounterRecord(pk=f"RATE#phone-gap#{phone_key}"), None),
        "day": (SendCounterRecord(pk=f"RATE#phone-day#{phone_key}#{day.isoformat()}"),
                int(midnight.timestamp())),
    }
    if source_ip is not None:
        counters["ip"] = (SendCounterRecord(pk=f"RATE#ip#{keyed_hash('ip', source_ip)}#{window_start}"),
                          window_start + limits.ip_window)
    return counters


def _take_send_slot(phone: str, source_ip: str, now: datetime, limits: SendLimits) -> None:
    epoch = _epoch(now)
    counters = _counters(phone, source_ip, now, limits)
    later = datetime.fromtimestamp(epoch, timezone.utc) + timedelta(days=2)
    minute, _ = counters["minute"]
    day, day_end = counters["day"]
    ip, ip_end = counters["ip"]
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.update(minute, actions=[SendCounterRecord.last_at.set(epoch),
                                       SendCounterRecord.expires_at.set(later)],
                      condition=SendCounterRecord.last_at.does_not_exist() |
                      (SendCounterRecord.last_at <= epoch - limits.min_gap))
            tx.update(day, actions=[SendCounterRecord.sent.add(1),
                                    SendCounterRecord.window_end.set(day_end),
                                    SendCounterRecord.expires_at.set(later)],
                      condition=SendCounterRecord.sent.does_not_exist() |
                      (SendCounterRecord.sent < limits.per_day))
            tx.update(ip, actions=[SendCounterRecord.sent.add(1),
                                   SendCounterRecord.window_end.set(ip_end),
                                   SendCounterRecord.expires_at.set(later)],
                      condition=SendCounterRecord.sent.does_not_exist() |
                      (SendCounterRecord.sent < limits.ip_max))
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        wait = _wait_for_send(phone, source_ip, now, limits)
        logger.info("sms code refused by rate limit", extra={"phone": mask_phone(phone),
                                                              "retry_after": wait})
        raise RateLimited(f"Too many codes requested; try again in {wait_phrase(wait, 'en')}.",
                          retry_after=wait, code="SMS_RATE_LIMITED") from None


def _wait_for_send(phone: str, source_ip: str | None, now: datetime, limits: SendLimits) -> int:
    """Seconds until every send limit would allow one more code (at least 1)."""
    epoch = _epoch(now)
    counters = _counters(phone, source_ip, now, limits)
    waits = [1]
    for name, (item, end) in counters.items():
        try:
            found = SendCounterRecord.get(item.pk, consistent_read=True)
        except DoesNotExist:
            continue
        if name == "minute" and found.last_at is not None:
            waits.append(found.last_at + limits.min_gap - epoch)
        elif name == "day" and (found.sent or 0) >= limits.per_day:
            waits.append(end - epoch)
        elif name == "ip" and (found.sent or 0) >= limits.ip_max:
            waits.append(end - epoch)
    return max(waits)


def send_code(phone: str, *, source_ip: str, now: datetime, sender: MessageSender,
              limits: SendLimits | None = None, purpose: str = SIGN_IN) -> int:
    """Send a new code for `purpose` to `phone` (already normalised). Returns its lifetime
    in seconds."""
    pk = _challenge_pk(phone, purpose)
    _take_send_slot(phone, source_ip, now, limits or LIMITS)
    code = f"{secrets.randbelow(10 ** 6):06d}"
    challenge_id = uuid.uuid4().hex
    epoch = _epoch(now)
    record = OtpChallengeRecord(
        pk=pk, challenge_id=challenge_id,
        code_hash=_code_hash(challenge_id, phone, code), attempts=0, used=False,
        valid_until=epoch + CODE_TTL,
        expires_at=datetime.fromtimestamp(epoch + CODE_TTL + 3600, timezone.utc))
    record.save()  # replaces the previous challenge: its code, its tries and its lock
    try:
        sender.send("sms", phone, PURPOSES[purpose].format(code=code))
    except Exception:  # noqa: BLE001 - any sender failure: no live code, 503
        record.delete()
        logger.warning("sms code not sent", extra={"phone": mask_phone(phone)})
        raise DependencyDown("We could not send the text message; please try again shortly.") from None
    logger.info("sms code sent", extra={"phone": mask_phone(phone), "purpose": purpose})
    return CODE_TTL


def verify_code(phone: str, code: str, *, now: datetime, limits: SendLimits | None = None,
                purpose: str = SIGN_IN) -> None:
    """Consume the phone's code for `purpose`, or raise 401 OTP_INVALID / 429 OTP_LOCKED."""
    limits = limits or LIMITS
    key = _challenge_pk(phone, purpose)
    try:
        challenge = OtpChallengeRecord.get(key, consistent_read=True)
    except DoesNotExist:
        raise OtpInvalid("No valid code for this phone; request a new one.") from None
    epoch = _epoch(now)
    if challenge.used:
        raise OtpInvalid("This code was already used; request a new one.")
    if challenge.attempts >= MAX_TRIES:
        raise otp_locked(_wait_for_send(phone, None, now, limits))
    if challenge.valid_until <= epoch:
        raise OtpInvalid("This code has expired; request a new one.")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise OtpInvalid("The code is 6 digits.")
    match = hmac.compare_digest(challenge.code_hash, _code_hash(challenge.challenge_id, phone, code))
    actions = [OtpChallengeRecord.attempts.add(1)]
    if match:
        actions.append(OtpChallengeRecord.used.set(True))
    try:
        challenge.update(actions=actions, condition=(
            (OtpChallengeRecord.challenge_id == challenge.challenge_id) &
            (OtpChallengeRecord.attempts < MAX_TRIES) & (OtpChallengeRecord.used == False)  # noqa: E712
            & (OtpChallengeRecord.valid_until > epoch)))
    except UpdateError as err:
        if not condition_failed(err):
            raise
        # Raced with another try or a new code: answer from what is stored now.
        try:
            current = OtpChallengeRecord.get(key, consistent_read=True)
        except DoesNotExist:
            raise OtpInvalid("No valid code for this phone; request a new one.") from None
        if current.attempts >= MAX_TRIES and not current.used:
            raise otp_locked(_wait_for_send(phone, None, now, limits)) from None
        raise OtpInvalid("The code is not valid; request a new one.") from None
    if not match:
        left = max(0, MAX_TRIES - challenge.attempts)
        logger.info("wrong sms code", extra={"phone": mask_phone(phone), "tries_left": left})
        raise OtpInvalid(f"The code is wrong; {left} tries left." if left else
                         "The code is wrong; request a new one.")
