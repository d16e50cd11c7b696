"""Money: integer fen everywhere; `Decimal` only where a rate is applied, then rounded half up.

Never a float. Round once per amount that is posted or shown (see the contract's money rules).
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DAYS_PER_YEAR = 365
MONTHS_PER_YEAR = 12


def to_fen(amount: Decimal) -> int:
    """Round an exact amount of fen half up to a whole fen."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"expected Decimal, got {type(amount).__name__}")
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_rate(rate: str | Decimal) -> Decimal:
    """A rate given as a decimal string (`"0.1825"` is 18.25 % a year)."""
    value = Decimal(rate)
    if not value.is_finite() or value < 0:
        raise ValueError(f"invalid rate {rate!r}")
    return value


def format_rate(rate: Decimal) -> str:
    return str(rate.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def format_cny(fen: int) -> str:
    """`123456` -> `"1234.56"`, for text shown to people (exact; no float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"
