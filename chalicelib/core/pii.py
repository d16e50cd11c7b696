"""Masking of personal data, for every response, log line and notification."""
from __future__ import annotations

import re

_PHONE = re.compile(r"^(?:\+?86)?(1\d{10})$")


def mask_phone(phone: str) -> str:
    """`13812348000` -> `138****8000`; anything else keeps only its last 4 characters."""
    match = _PHONE.match(phone.strip())
    if match:
        digits = match.group(1)
        return f"{digits[:3]}****{digits[-4:]}"
    return "****" + phone[-4:] if len(phone) > 4 else "****"


def mask_id_number(id_number: str) -> str:
    """`110101199003071234` -> `1101**********1234` (first 4, last 4)."""
    if len(id_number) <= 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def mask_card(card_number: str) -> str:
    """Bank cards show their last 4 digits only."""
    return card_number[-4:]


_NUMBER_IN_TEXT = re.compile(r"(?<![0-9])\+?[0-9]{11,19}[Xx]?(?![0-9A-Za-z])")


def mask_text(text: str) -> str:
    """Free text someone typed (an operator's note): every phone, ID or card number in it
    masked as the contract masks it, the rest left as written."""
    def masked(match: re.Match[str]) -> str:
        number = match.group(0)
        if _PHONE.match(number):
            return mask_phone(number)
        if len(number) == 18:
            return mask_id_number(number)
        return "****" + number[-4:]
    return _NUMBER_IN_TEXT.sub(masked, text)
