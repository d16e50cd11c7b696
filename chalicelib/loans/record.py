"""The borrower's record with us (信用报告's history, issue 19), kept as counters on one item
per user, updated in the same transaction as the write that changes it, so the credit report
reads one item instead of the user's whole history, and a retried or replayed write (refused by
its own condition) never counts twice.

| counter | moved by | when |
|---|---|---|
| `applications`, `latest_application_id` | an application | decided (every one) |
| `approved` | an automatic approval, an operator's approval | the line is set |
| `loans` | a payout | the loan turns `active` (a cancelled or refused one is not a loan) |
| `installments_on_time` | a repayment | an installment is paid without ever being overdue |
| `installments_late` | close of business (or a repayment that finds it) | an installment turns `overdue` |
| `days_past_due_seen` | close of business | the loan's days past due, each night it is `overdue` (alone on a night that writes no loan: `see_late_days`) |

Days past due count once an installment is overdue: the grace day (D+1, free of charge) is
not a late day. The worst is the largest number in `days_past_due_seen`, a DynamoDB number
set: adding a number is idempotent and commutes, so two loans of one user closed at the same
moment need no read-modify-write (a set holds each number once, at most a few hundred).
"""
from __future__ import annotations

from datetime import date

from pynamodb.attributes import NumberSetAttribute, UnicodeAttribute
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, IntAttribute, register_table
from chalicelib.money import engine


@register_table
class CreditRecord(Model):
    """One borrower's record: the credit report's counters and the latest decision's id."""

    class Meta(BaseMeta):
        table_name = config.table_name("credit-records")

    user_id = UnicodeAttribute(hash_key=True)
    applications = IntAttribute(default=0)
    approved = IntAttribute(default=0)
    loans = IntAttribute(default=0)
    installments_on_time = IntAttribute(default=0)
    installments_late = IntAttribute(default=0)
    days_past_due_seen = NumberSetAttribute(null=True)
    latest_application_id = UnicodeAttribute(null=True)


def count(tx: TransactWrite, user_id: str, *, applications: int = 0, approved: int = 0, loans: int = 0,
          on_time: int = 0, late: int = 0, days_past_due: int = 0, latest: str | None = None) -> None:
    """Add to the user's record inside `tx` (nothing when there is nothing to add)."""
    actions = _additions(applications=applications, approved=approved, loans=loans, on_time=on_time,
                         late=late, days_past_due=days_past_due, latest=latest)
    if actions:
        tx.update(CreditRecord(user_id=user_id), actions=actions)


def _additions(*, applications: int = 0, approved: int = 0, loans: int = 0, on_time: int = 0, late: int = 0,
               days_past_due: int = 0, latest: str | None = None) -> list:
    """The update actions that add these to a record: what `count` writes in a transaction,
    and `see_late_days` alone."""
    actions = [attribute.add(amount) for attribute, amount in (
        (CreditRecord.applications, applications), (CreditRecord.approved, approved),
        (CreditRecord.loans, loans), (CreditRecord.installments_on_time, on_time),
        (CreditRecord.installments_late, late)) if amount]
    if days_past_due > 0:
        actions.append(CreditRecord.days_past_due_seen.add({days_past_due}))
    if latest is not None:
        actions.append(CreditRecord.latest_application_id.set(latest))
    return actions


def installment_changes(before: engine.LoanState, after: engine.LoanState) -> tuple[int, int]:
    """(paid on time, turned overdue) between two states of one loan. An installment is on
    time when it is paid without ever having been overdue; paying early is paying on time."""
    on_time = late = 0
    for old, new in zip(before.installments, after.installments, strict=True):
        if new.overdue and not old.overdue:
            late += 1
        if new.settled and not old.settled and not new.overdue:
            on_time += 1
    return on_time, late


def late_days(state: engine.LoanState, on: date) -> int:
    """The loan's days past due on `on` if it is overdue (past a grace day), else 0."""
    return engine.days_past_due(state, on) if engine.loan_status(state, on) == "overdue" else 0


def see_late_days(user_id: str, state: engine.LoanState, on: date) -> None:
    """Record the loan's days past due on `on` outside a transaction: for a night whose close
    of business writes nothing else (an overdue installment whose daily penalty rounds to 0
    fen, its status and bucket unchanged), when the days still grow. Adding to the set is
    idempotent, so a night closed twice adds nothing more."""
    actions = _additions(days_past_due=late_days(state, on))
    if actions:
        CreditRecord(user_id=user_id).update(actions=actions)


def count_changes(tx: TransactWrite, user_id: str, before: engine.LoanState, after: engine.LoanState,
                  on: date) -> None:
    """What one write of a loan's state adds to its borrower's record."""
    on_time, late = installment_changes(before, after)
    count(tx, user_id, on_time=on_time, late=late, days_past_due=late_days(after, on))
