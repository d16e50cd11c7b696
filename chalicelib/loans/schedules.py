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


def _engine():  # imported on use: the engine is pure and light, but keeps this module's deps clear
    from chalicelib.repay import engine
    return engine


def preview(principal: int, apr: str, term_months: int, method: str, on: date) -> dict:
    """The schedule as it would be if paid out on `on`; `state` is what the loan stores."""
    engine = _engine()
    state = engine.new_loan(principal=principal, apr=Decimal(apr), term_months=term_months,
                            method=method, disbursed_on=on)
    shown = render_state(state)
    return {"state": json.dumps(state.to_dict()), **shown}


def activate(state_json: str, principal: int, apr: str, term_months: int, method: str,
             disbursed_on: date) -> str:
    """The schedule again from the actual disbursement date (Asia/Shanghai)."""
    engine = _engine()
    state = engine.new_loan(principal=principal, apr=Decimal(apr), term_months=term_months,
                            method=method, disbursed_on=disbursed_on)
    return json.dumps(state.to_dict())


def load(state_json: str):  # type: ignore[no-untyped-def]
    return _engine().LoanState.from_dict(json.loads(state_json))


def render_state(state) -> dict:  # type: ignore[no-untyped-def]
    engine = _engine()
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
    return _engine().days_past_due(load(state_json), on)


def ever_overdue(state_json: str) -> bool:
    """Whether any installment of the loan went past its grace day unpaid (a credit record)."""
    return any(i.overdue for i in load(state_json).installments)
