"""The credit decision as the loans slice asks for it: facts in, a stored-ready decision out.

Joins the model (scorer) and the versioned policy; a missing or wrong model never approves.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class ApplicationFacts:
    user_id: str
    product: Any  # chalicelib.loans.catalog.Product
    amount: int
    term_months: int
    applicant: dict
    age: int | None
    identity_verified: bool
    now: datetime
    outstanding_principal: int
    live_loans: int
    overdue_loans: int
    ever_overdue: bool
    last_decline_on: date | None


def decide(facts: ApplicationFacts) -> dict:
    raise NotImplementedError("wired to chalicelib.risk.policy when the model lands")
