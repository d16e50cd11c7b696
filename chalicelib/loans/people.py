"""What the loans slice needs to know about a person, asked of the auth slice.

One seam, so the loans code does not reach into auth's tables.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Borrower:
    user_id: str
    identity_verified: bool
    phone_bound: bool
    has_card: bool
    age: int | None


@dataclass(frozen=True)
class PayoutCard:
    card_id: str
    last4: str
    card_number: str  # decrypted only for the payout call
    holder_name: str


def borrower(user_id: str) -> Borrower:
    from chalicelib.auth import service as auth
    profile = auth.borrower_profile(user_id)
    return Borrower(user_id=user_id, identity_verified=profile["identity_verified"],
                    phone_bound=profile["phone_bound"], has_card=profile["has_card"],
                    age=profile["age"])


def refuse_during_security_hold(user_id: str) -> None:
    """403 SECURITY_HOLD (with Retry-After) while the 24 hours after a phone replacement last:
    a drawdown then could be a thief's who took the account over (anti-phishing)."""
    from chalicelib.auth import service as auth
    auth.refuse_during_security_hold(user_id)


def sms_phone(user_id: str) -> str | None:
    """The bound phone number, decrypted for an SMS send only; never logged or shown unmasked."""
    from chalicelib.auth import service as auth
    return auth.bound_phone(user_id)


def card_owned(user_id: str, card_id: str) -> str | None:
    """The card's last 4 digits if `card_id` is one of the user's cards, else None."""
    from chalicelib.auth import service as auth
    return auth.card_last4(user_id, card_id)


def payout_card(user_id: str, card_id: str) -> PayoutCard | None:
    from chalicelib.auth import service as auth
    found = auth.card_for_payout(user_id, card_id)
    if found is None:
        return None
    return PayoutCard(card_id=card_id, last4=found["last4"], card_number=found["card_number"],
                      holder_name=found["holder_name"])
