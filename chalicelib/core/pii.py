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
