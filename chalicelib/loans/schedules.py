"""Adapter between the loans slice and the repay schedule engine (pure, in chalicelib.repay).

The loan item stores the engine's state as JSON; this module builds it (preview at drawdown,
the real schedule at disbursement), renders it for the API, and derives the installment index
items the daily jobs query.
"""
from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal

from chalicelib.money import engine


def _fresh(principal: int, apr: str, term_months: int, method: str, disbursed_on: date):  # type: ignore[no-untyped-def]
    from chalicelib.loans.catalog import apr_cap
    return engine.new_loan(principal=principal, apr=Decimal(apr), term_months=term_months,
                           method=method, disbursed_on=disbursed_on, apr_cap=apr_cap())


def new_state(principal: int, apr: str, term_months: int, method: str, disbursed_on: date) -> str:
    """The stored state (JSON) of a loan paid out on `disbursed_on`, nothing paid yet: built
    again from the actual disbursement date when the loan is paid out."""
    return json.dumps(_fresh(principal, apr, term_months, method, disbursed_on).to_dict())


def preview(principal: int, apr: str, term_months: int, method: str, on: date) -> dict:
    """The schedule as it would be if paid out on `on`; `state` is what the loan stores."""
    state = _fresh(principal, apr, term_months, method, on)
    return {"state": json.dumps(state.to_dict()), **render_state(state)}


def load(state_json: str):  # type: ignore[no-untyped-def]
    return engine.LoanState.from_dict(json.loads(state_json))


def render_state(state) -> dict:  # type: ignore[no-untyped-def]
    items = engine.schedule_items(state)
    return {"schedule": items,
            "total_interest": sum(i["interest"] for i in items),
            "total_repayment": sum(i["total"] for i in items)}


def render(state_json: str) -> dict:
    return render_state(load(state_json))


OPEN_SHARDS = 4


def open_shard(loan_id: str) -> str:
    """Spreads unpaid installments over a few index partitions (by loan, so a loan's stay together)."""
    return f"o{uuid.UUID(loan_id).int % OPEN_SHARDS}"


def index_items(loan_id: str, user_id: str, product_id: str, state_json: str) -> list:
    """One index item per installment; only unpaid ones carry `open_shard` (sparse GSI)."""
    from chalicelib.repay.models import InstallmentRecord
    return [InstallmentRecord(loan_id=loan_id, installment=item["installment"], user_id=user_id,
                              product_id=product_id, due_date=item["due_date"], status=item["status"],
                              open_shard=open_shard(loan_id) if item["status"] != "paid" else None)
            for item in render(state_json)["schedule"]]


def days_past_due(state_json: str, on: date) -> int:
    return engine.days_past_due(load(state_json), on)


def ever_overdue(state_json: str) -> bool:
    """Whether any installment of the loan went past its grace day unpaid (a credit record)."""
    return any(i.overdue for i in load(state_json).installments)
