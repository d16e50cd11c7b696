"""Double-entry journal: every money movement as balanced lines in integer fen.

Pure: builds entries and checks they balance; the stores write them append-only.
"""
from __future__ import annotations

from dataclasses import dataclass

# Accounts, from the lender's side.
PRINCIPAL_RECEIVABLE = "loan_principal_receivable"
PENALTY_RECEIVABLE = "penalty_receivable"
PAYOUT_CLEARING = "payout_clearing"  # money sent to the borrower's card via the payout bank
COLLECTIONS_CLEARING = "collections_clearing"  # money received from the borrower
INTEREST_INCOME = "interest_income"
PENALTY_INCOME = "penalty_income"


@dataclass(frozen=True)
class Line:
    account: str
    debit: int = 0
    credit: int = 0

    def __post_init__(self) -> None:
        for amount in (self.debit, self.credit):
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise ValueError(f"ledger amounts are non-negative integer fen: {amount!r}")
        if (self.debit == 0) == (self.credit == 0):
            raise ValueError("a line is either a debit or a credit")


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    cause: str
    cause_id: str
    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        if not self.lines:
            raise ValueError("an entry needs lines")
        if sum(l.debit for l in self.lines) != sum(l.credit for l in self.lines):
            raise ValueError(f"entry {self.entry_id} does not balance")

    def to_json(self) -> list[dict]:
        return [{"account": l.account, "debit": l.debit, "credit": l.credit} for l in self.lines]


def disbursement(loan_id: str, principal: int) -> JournalEntry:
    return JournalEntry(f"disbursement#{loan_id}", "disbursement", loan_id, (
        Line(PRINCIPAL_RECEIVABLE, debit=principal), Line(PAYOUT_CLEARING, credit=principal)))


def repayment(repayment_id: str, amount: int, *, principal: int, interest: int,
              penalty_posted: int, penalty_unposted: int) -> JournalEntry:
    """Cash in; principal and posted penalty leave the receivables; interest (never accrued
    ahead) and not-yet-posted penalty are income on receipt."""
    lines = [Line(COLLECTIONS_CLEARING, debit=amount)]
    for account, value in ((PRINCIPAL_RECEIVABLE, principal), (INTEREST_INCOME, interest),
                           (PENALTY_RECEIVABLE, penalty_posted), (PENALTY_INCOME, penalty_unposted)):
        if value:
            lines.append(Line(account, credit=value))
    return JournalEntry(f"repayment#{repayment_id}", "repayment", repayment_id, tuple(lines))


def penalty_accrual(loan_id: str, installment: int, day: str, amount: int) -> JournalEntry:
    return JournalEntry(f"penalty#{installment}#{day}", "penalty", f"{loan_id}#{installment}#{day}", (
        Line(PENALTY_RECEIVABLE, debit=amount), Line(PENALTY_INCOME, credit=amount)))


def balances(entries: list[list[dict]]) -> dict[str, int]:
    """Debit-positive balance per account over JSON entries."""
    out: dict[str, int] = {}
    for lines in entries:
        for line in lines:
            out[line["account"]] = out.get(line["account"], 0) + line["debit"] - line["credit"]
    return out
