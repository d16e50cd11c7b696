"""DynamoDB models of the identity slice: two tables.

`users` (durable, pk + sk), one partition per user plus global lookup items:
    pk=USER#<user_id>   sk=PROFILE          UserRecord: masks, sealed phone/identity, hashes
    pk=USER#<user_id>   sk=CARD#<card_id>   CardRecord: bank, last 4, sealed card number
    pk=USER#<user_id>   sk=CARDKEY#<hash>   LookupRecord: one card number once per user
    pk=OPENID#<hash>    sk=LOOKUP           LookupRecord: WeChat openid -> user
    pk=PHONE#<hash>     sk=LOOKUP           LookupRecord: phone -> user (one account per phone)
    pk=IDNO#<hash>      sk=LOOKUP           LookupRecord: ID number -> user (one account per ID)
Uniqueness is a conditional put of the lookup item in the same transaction as the profile
update, so two concurrent requests can never bind one phone or one ID number twice.

`auth-sessions` (short-lived, pk only, TTL on `expires_at`):
    pk=FAMILY#<id>      RefreshFamilyRecord: the one live refresh token of a sign-in
    pk=SESSIONS#<user_id>  SessionIndexRecord: the families a user started (to end them all)
    pk=OTP#[<purpose>#]<hash>  OtpChallengeRecord: the current SMS code of a phone, keyed hash
    pk=RATE#...         SendCounterRecord: SMS send limits per phone and per source IP, and
                        real-name checks per user and Asia/Shanghai day
No hash here is of a plain value: every `<hash>` is `pii_vault.keyed_hash`.
"""
from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, TTLAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, IntAttribute, register_table

PROFILE = "PROFILE"
LOOKUP = "LOOKUP"


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


@register_table
class UserRecord(Model):
    """The user's profile item (sk=PROFILE); the table's key schema is declared here."""

    class Meta(BaseMeta):
        table_name = config.table_name("users")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    user_id = UnicodeAttribute()
    created_at = UnicodeAttribute()
    signup_method = UnicodeAttribute()  # wechat | sms
    phone_hash = UnicodeAttribute(null=True)
    phone_sealed = UnicodeAttribute(null=True)
    phone_masked = UnicodeAttribute(null=True)
    id_hash = UnicodeAttribute(null=True)
    identity_sealed = UnicodeAttribute(null=True)  # {"name", "id_number"} sealed together
    name_masked = UnicodeAttribute(null=True)
    id_number_masked = UnicodeAttribute(null=True)
    verified_at = UnicodeAttribute(null=True)
    # Cards on the account, counted in the transaction that adds one: the limit holds under
    # concurrent adds, and other slices learn "has a card" without reading the cards.
    card_count = IntAttribute(null=True)
    # Until when (epoch seconds) drawdowns and new cards are refused: set by a phone
    # replacement, in the transaction that replaces the phone (anti-phishing hold).
    security_hold_until = IntAttribute(null=True)


class CardRecord(Model):
    class Meta(BaseMeta):
        table_name = config.table_name("users")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # CARD#<card_id>
    user_id = UnicodeAttribute()
    card_id = UnicodeAttribute()
    bank_name = UnicodeAttribute()
    last4 = UnicodeAttribute()
    card_sealed = UnicodeAttribute()
    added_at = UnicodeAttribute()


class LookupRecord(Model):
    class Meta(BaseMeta):
        table_name = config.table_name("users")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    user_id = UnicodeAttribute()
    created_at = UnicodeAttribute()


@register_table
class RefreshFamilyRecord(Model):
    """A sign-in's refresh-token family: only `current_jti` may be exchanged, once.

    Access tokens carry the family id, so revoking the family (reuse detected) also stops
    the access tokens issued from it; a family that expired away is as good as revoked."""

    class Meta(BaseMeta):
        table_name = config.table_name("auth-sessions")

    pk = UnicodeAttribute(hash_key=True)  # FAMILY#<family_id>
    user_id = UnicodeAttribute()
    current_jti = UnicodeAttribute()
    generation = IntAttribute()
    revoked = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()
    rotated_at = UnicodeAttribute()
    expires_at = TTLAttribute()


class SessionIndexRecord(Model):
    """The refresh families a user has started, so that a phone replacement can end every
    other session without a scan. A family is listed before it is created (so a live family
    is always listed); revoked ones are taken off the list when they are revoked."""

    class Meta(BaseMeta):
        table_name = config.table_name("auth-sessions")

    pk = UnicodeAttribute(hash_key=True)  # SESSIONS#<user_id>
    family_ids = UnicodeSetAttribute(null=True)


class OtpChallengeRecord(Model):
    class Meta(BaseMeta):
        table_name = config.table_name("auth-sessions")

    pk = UnicodeAttribute(hash_key=True)  # OTP#<phone hash>, OTP#<purpose>#<phone hash>
    challenge_id = UnicodeAttribute()
    code_hash = UnicodeAttribute()  # HMAC of (challenge id, phone, code); never the code
    attempts = IntAttribute()
    used = BooleanAttribute()
    valid_until = IntAttribute()  # epoch seconds; checked on every try (TTL deletes late)
    expires_at = TTLAttribute()


class SendCounterRecord(Model):
    class Meta(BaseMeta):
        table_name = config.table_name("auth-sessions")

    pk = UnicodeAttribute(hash_key=True)  # RATE#<scope>#<hash>[#<window>]
    sent = IntAttribute(null=True)
    last_at = IntAttribute(null=True)
    window_end = IntAttribute(null=True)
    expires_at = TTLAttribute()
