"""Questions the auth slice asks of other slices, answered through registries they fill.

Core and auth import no other slice: the loans slice registers its answers when its module is
imported (app.py imports every blueprint), and until it does, the defaults below apply.

- `OUTSTANDING_LOAN_CHECKS`: callables `user_id -> bool`. If any answers True, adding a bank
  card needs a fresh SMS code sent to the bound phone (anti-phishing step-up). Default: no
  loans, so no step-up.
- `CREDIT_SUMMARIES`: callables `user_id -> {"limit", "available", "apr"} | None`. `GET /v1/me`
  shows the first non-None answer as `credit`. Default: `credit` is null.

    from chalicelib.auth import hooks
    hooks.OUTSTANDING_LOAN_CHECKS.append(lambda user_id: loans.has_live_loan(user_id))
    hooks.CREDIT_SUMMARIES.append(lambda user_id: (line := credit.get_line(user_id)) and line.to_api())
"""
from __future__ import annotations

from typing import Any, Callable

OUTSTANDING_LOAN_CHECKS: list[Callable[[str], bool]] = []
CREDIT_SUMMARIES: list[Callable[[str], dict[str, Any] | None]] = []


def has_outstanding_loan(user_id: str) -> bool:
    return any(check(user_id) for check in OUTSTANDING_LOAN_CHECKS)


def credit_summary(user_id: str) -> dict[str, Any] | None:
    for summary in CREDIT_SUMMARIES:
        found = summary(user_id)
        if found is not None:
            return found
    return None
