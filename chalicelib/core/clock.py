"""Time comes from an injected clock; business dates are Asia/Shanghai calendar dates."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that stands still until moved (tests, replays)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at


def shanghai_date(at: datetime) -> date:
    """The Asia/Shanghai calendar date of an aware instant."""
    if at.tzinfo is None:
        raise ValueError("need an aware datetime")
    return at.astimezone(SHANGHAI).date()


def parse_instant(text: str) -> datetime:
    """An aware instant from ISO 8601 text with an offset or `Z` (event times, stored stamps)."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"instant without an offset: {text!r}")
    return at


def shanghai_iso(stamp: str | None) -> str | None:
    """A stored instant (any offset) as the API shows every timestamp: Asia/Shanghai, +08:00."""
    if stamp is None:
        return None
    return parse_instant(stamp).astimezone(SHANGHAI).isoformat(timespec="seconds")
