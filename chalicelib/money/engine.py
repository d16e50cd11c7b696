"""The loan's money engine: installments as they are paid, payoff quotes, repayments, penalties.

Pure: integer fen, `Decimal` rates, `datetime.date` business dates (Asia/Shanghai), no I/O and
no clock; the caller passes the day. Every function takes a `LoanState` and returns a new one,
so a service can compute, check and only then store. The rules are the contract's "Money
rules"; schedule arithmetic lives in `chalicelib.money.schedule`.

Vocabulary:
- an installment is *due on or before t* when its due date D <= t; its principal is then
  *past due* and accrues penalty (after the grace day), never interest;
- *principal not yet due* on day t is the unpaid principal of installments with D > t; it alone
  accrues interest, day by day;
- the *accruing* installment on day t is the first unpaid one with D > t: its days hold t, and
  the interest accrued on all principal not yet due belongs to it. Its days run from the latest
  due date, the disbursement date, or the day the installment before it was paid early.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from chalicelib.core.errors import Conflict, RuleViolation
from chalicelib.money.schedule import (
    EQUAL_INSTALLMENT, EQUAL_PRINCIPAL, INTEREST_FIRST, METHODS, AccrualBasis, Schedule,
    ScheduledInstallment, accrued_interest, build_schedule, check_apr, check_date, check_fen,
    daily_penalty, due_date, due_dates, level_payment, penalty_rate, plan_installments, round_fen)

__all__ = [
    "EQUAL_INSTALLMENT", "EQUAL_PRINCIPAL", "INTEREST_FIRST", "METHODS", "GRACE_DAYS",
    "Schedule", "ScheduledInstallment", "build_schedule", "due_date", "due_dates", "level_payment",
    "penalty_rate",
    "Installment", "LoanState", "new_loan", "PayoffQuote", "payoff_quote", "Allocation",
    "RepaymentResult", "apply_repayment", "PenaltyPosting", "CloseOfBusinessResult",
    "close_of_business", "days_past_due", "loan_status", "schedule_items",
    "OverpaymentError", "PayoffDateError", "RepaymentDateError", "LoanClosedError",
]

# An installment due on D may be paid through the end of D + GRACE_DAYS at no cost.
GRACE_DAYS = 1
ONE_DAY = timedelta(days=1)


class OverpaymentError(RuleViolation):
    """More than the payoff: the lender would have to hand money back."""
    code = "OVERPAYMENT"

    def __init__(self, amount: int, payoff: int) -> None:
        super().__init__(f"{amount} fen is more than the {payoff} fen that pays the loan off today.",
                         params={"payoff": payoff})
        self.amount, self.payoff = amount, payoff


class PayoffDateError(RuleViolation):
    """A quote for a day before the loan's last activity (or before it was paid out)."""
    code = "PAYOFF_DATE_INVALID"


class RepaymentDateError(PayoffDateError):
    """A repayment dated before the loan's last activity would rewrite settled history."""
    code = "REPAYMENT_DATE_INVALID"


class LoanClosedError(Conflict):
    """Nothing is left to quote or to pay (the contract's 409 for a loan that is not active)."""
    code = "LOAN_NOT_ACTIVE"


@dataclass
class Installment:
    number: int
    # First day of its period: the previous due date, the disbursement date, or the day the
    # installment before it was paid early.
    start: date
    due_date: date
    principal: int  # principal it collects, including any prepaid during its period
    interest: int
    # How the period's principal not yet due changed over its days (prepayments), so the
    # interest stays weighted by the principal outstanding on each day.
    accrual_basis: AccrualBasis
    principal_paid: int = 0
    interest_paid: int = 0
    # Penalty is counted per day exactly once: by close of business ("posted", a receivable in
    # the ledger) or, for days no close of business reached yet, by a repayment ("unposted",
    # income when received). `penalty_through` is the last day counted either way.
    penalty_posted: int = 0
    penalty_posted_paid: int = 0
    penalty_unposted: int = 0
    penalty_unposted_paid: int = 0
    penalty_through: date | None = None
    overdue: bool = False

    @property
    def penalty(self) -> int:
        return self.penalty_posted + self.penalty_unposted

    @property
    def penalty_paid(self) -> int:
        return self.penalty_posted_paid + self.penalty_unposted_paid

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.penalty

    @property
    def paid(self) -> int:
        return self.principal_paid + self.interest_paid + self.penalty_paid

    @property
    def unpaid(self) -> int:
        return self.total - self.paid

    @property
    def unpaid_principal(self) -> int:
        return self.principal - self.principal_paid

    @property
    def settled(self) -> bool:
        return self.unpaid == 0

    @property
    def status(self) -> str:
        if self.settled:
            return "paid"
        if self.overdue:
            return "overdue"
        return "partially_paid" if self.paid else "pending"


STATE_VERSION = 2  # 2: the penalty rate is part of the loan (min(1.5 × apr, cap))


@dataclass
class LoanState:
    principal: int
    apr: Decimal
    # Annual penalty rate on past-due principal, fixed when the loan is made.
    penalty_rate: Decimal
    term_months: int
    method: str
    disbursed_on: date
    installments: list[Installment]
    # The latest day a repayment was applied: quotes and repayments may not go back before it.
    last_activity: date
    closed_on: date | None = None

    @property
    def outstanding_principal(self) -> int:
        return sum(i.unpaid_principal for i in self.installments)

    @property
    def closed(self) -> bool:
        return self.closed_on is not None

    def due_by(self, on: date) -> list[Installment]:
        """Installments due on or before `on`, oldest first."""
        return [i for i in self.installments if i.due_date <= on]

    def accruing(self, on: date) -> Installment | None:
        """The installment that the interest accrued on `on` belongs to: the first unpaid one
        with D > on (None once the last due date has come, or all of it is paid)."""
        return next((i for i in self.installments if i.due_date > on and not i.settled), None)

    def principal_not_yet_due(self, on: date) -> int:
        return sum(i.unpaid_principal for i in self.installments if i.due_date > on)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (ints, strings, ISO dates) for the loan item."""
        return {
            "version": STATE_VERSION, "principal": self.principal, "apr": str(self.apr),
            "penalty_rate": str(self.penalty_rate),
            "term_months": self.term_months, "method": self.method,
            "disbursed_on": self.disbursed_on.isoformat(),
            "last_activity": self.last_activity.isoformat(),
            "closed_on": _iso(self.closed_on),
            "installments": [{
                "number": i.number, "start": i.start.isoformat(), "due_date": i.due_date.isoformat(),
                "principal": i.principal, "interest": i.interest,
                "accrual_basis": [[day.isoformat(), amount] for day, amount in i.accrual_basis],
                "principal_paid": i.principal_paid, "interest_paid": i.interest_paid,
                "penalty_posted": i.penalty_posted, "penalty_posted_paid": i.penalty_posted_paid,
                "penalty_unposted": i.penalty_unposted,
                "penalty_unposted_paid": i.penalty_unposted_paid,
                "penalty_through": _iso(i.penalty_through), "overdue": i.overdue,
            } for i in self.installments],
        }

    @classmethod
    def from_dict(cls, data: dict) -> LoanState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown loan state version {data.get('version')!r}")
        fen = _fen_reader
        installments = [Installment(
            number=int(i["number"]), start=date.fromisoformat(i["start"]),
            due_date=date.fromisoformat(i["due_date"]),
            principal=fen(i, "principal"), interest=fen(i, "interest"),
            accrual_basis=[(date.fromisoformat(day), check_fen(amount, "accrual basis"))
                           for day, amount in i["accrual_basis"]],
            principal_paid=fen(i, "principal_paid"), interest_paid=fen(i, "interest_paid"),
            penalty_posted=fen(i, "penalty_posted"), penalty_posted_paid=fen(i, "penalty_posted_paid"),
            penalty_unposted=fen(i, "penalty_unposted"),
            penalty_unposted_paid=fen(i, "penalty_unposted_paid"),
            penalty_through=_date_or_none(i["penalty_through"]), overdue=bool(i["overdue"]),
        ) for i in data["installments"]]
        return cls(principal=fen(data, "principal"), apr=check_apr(Decimal(data["apr"])),
                   penalty_rate=check_apr(Decimal(data["penalty_rate"])),
                   term_months=int(data["term_months"]), method=data["method"],
                   disbursed_on=date.fromisoformat(data["disbursed_on"]),
                   installments=installments,
                   last_activity=date.fromisoformat(data["last_activity"]),
                   closed_on=_date_or_none(data["closed_on"]))


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _date_or_none(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _fen_reader(data: dict, key: str) -> int:
    return check_fen(data[key], key)


def new_loan(principal: int, apr: Decimal, term_months: int, method: str,
             disbursed_on: date, *, apr_cap: Decimal) -> LoanState:
    """A loan just paid out on `disbursed_on`, nothing paid yet. `apr_cap` (the legal ceiling
    on the annual rate) caps its penalty rate."""
    schedule = build_schedule(principal, apr, term_months, method, disbursed_on)
    installments = []
    not_yet_due = principal  # what each period accrues interest on, with no prepayment yet
    for planned in schedule.installments:
        installments.append(Installment(
            number=planned.number, start=planned.start, due_date=planned.due_date,
            principal=planned.principal, interest=planned.interest,
            accrual_basis=[(planned.start, not_yet_due)]))
        not_yet_due -= planned.principal
    return LoanState(principal=principal, apr=apr, penalty_rate=penalty_rate(apr, apr_cap),
                     term_months=term_months, method=method,
                     disbursed_on=disbursed_on, installments=installments,
                     last_activity=disbursed_on)


# --- penalty ---------------------------------------------------------------------------------

def _first_penalty_day(installment: Installment) -> date:
    first = installment.due_date + ONE_DAY  # the grace day is the first day of penalty if missed
    if installment.penalty_through is not None:
        first = max(first, installment.penalty_through + ONE_DAY)
    return first


def _uncounted_penalty_days(installment: Installment, through: date) -> int:
    """Days from D+1 to `through` whose penalty has not been counted yet."""
    if installment.settled:
        return 0
    return max(0, (through - _first_penalty_day(installment)).days + 1)


def _is_late(installment: Installment, on: date) -> bool:
    """Still unpaid on `on` after its grace day ended (D + 1 < on)."""
    return not installment.settled and installment.due_date + timedelta(days=GRACE_DAYS) < on


class PenaltyPosting(NamedTuple):
    installment: int
    day: date
    amount: int


class CloseOfBusinessResult(NamedTuple):
    state: LoanState
    posted: tuple[PenaltyPosting, ...]


def close_of_business(state: LoanState, business_date: date) -> CloseOfBusinessResult:
    """Close of business for date X: every unpaid installment with D <= X-2 becomes `overdue`
    and gets penalty for each day from D+1 to X-1 that is not counted yet.

    Idempotent per installment and day (through `penalty_through`), so running it twice, late,
    out of order or after skipped days counts each day once. Days whose penalty rounds to
    0 fen (only interest or penalty left unpaid) are counted but not returned: there is
    nothing to post for them.
    """
    check_date(business_date, "business_date")
    if state.closed:
        return CloseOfBusinessResult(state, ())
    new = copy.deepcopy(state)
    last_day = business_date - ONE_DAY
    posted = []
    for installment in new.installments:
        if not _is_late(installment, business_date):
            continue
        installment.overdue = True
        days = _uncounted_penalty_days(installment, last_day)
        if not days:
            continue
        per_day = daily_penalty(installment.unpaid_principal, new.penalty_rate)
        first = _first_penalty_day(installment)
        for offset in range(days):
            if per_day:
                posted.append(PenaltyPosting(installment.number, first + timedelta(days=offset), per_day))
        installment.penalty_posted += per_day * days
        installment.penalty_through = last_day
    return CloseOfBusinessResult(new, tuple(posted))


# --- payoff ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PayoffQuote:
    amount: int
    principal: int
    interest: int
    penalty: int

    def to_dict(self) -> dict[str, int]:
        return {"amount": self.amount, "principal": self.principal, "interest": self.interest,
                "penalty": self.penalty}


def _check_open(state: LoanState) -> None:
    if state.closed:
        raise LoanClosedError("This loan is already paid off.")


def _check_not_backdated(state: LoanState, on: date, error: type[PayoffDateError]) -> None:
    check_date(on, "on")
    if on < state.last_activity:
        raise error(f"{on.isoformat()} is before the loan's last activity "
                    f"({state.last_activity.isoformat()}); choose that day or a later one.")


def _accrued_to(installment: Installment, on: date, apr: Decimal) -> int:
    """The interest of the installment's days before `on`, rounded once."""
    return round_fen(accrued_interest(installment.accrual_basis, on, apr))


def _accrued_unpaid_interest(state: LoanState, on: date) -> int:
    """Interest the accruing installment has accrued for its days before `on`, not yet paid."""
    accruing = state.accruing(on)
    if accruing is None:
        return 0
    return max(0, _accrued_to(accruing, on, state.apr) - accruing.interest_paid)


def payoff_quote(state: LoanState, on: date) -> PayoffQuote:
    """What closes the loan on day `on`: everything unpaid of installments due on or before
    `on` (with penalty for the days before `on`), the interest accrued and not yet paid since
    the latest due date, the disbursement date or the day an installment was paid early, and
    the principal not yet due. No early-repayment fee."""
    _check_open(state)
    _check_not_backdated(state, on, PayoffDateError)
    due = state.due_by(on)
    penalty = sum(i.penalty - i.penalty_paid
                  + _uncounted_penalty_days(i, on - ONE_DAY) * daily_penalty(i.unpaid_principal,
                                                                             state.penalty_rate)
                  for i in due)
    interest = sum(i.interest - i.interest_paid for i in due) + _accrued_unpaid_interest(state, on)
    principal = sum(i.unpaid_principal for i in due) + state.principal_not_yet_due(on)
    return PayoffQuote(penalty + interest + principal, principal, interest, penalty)


# --- repayment ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Allocation:
    penalty: int
    interest: int
    principal: int
    # How the penalty splits for the ledger: posted by close of business (settles a
    # receivable) or counted by this repayment for days no close of business reached (income).
    penalty_posted: int = 0
    penalty_unposted: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"penalty": self.penalty, "interest": self.interest, "principal": self.principal}


class RepaymentResult(NamedTuple):
    state: LoanState
    allocation: Allocation
    closed: bool


class _Purse:
    """The money of one repayment as it is handed out, and where it went."""

    def __init__(self, amount: int) -> None:
        self.left = amount
        self.penalty_posted = self.penalty_unposted = self.interest = self.principal = 0

    def take(self, owed: int) -> int:
        paid = min(self.left, owed)
        self.left -= paid
        return paid


def apply_repayment(state: LoanState, amount: int, on: date) -> RepaymentResult:
    """Apply `amount` fen received on day `on`.

    1. The installments due on or before `on`, oldest first, each penalty -> interest ->
       principal (penalty counted for every day from D+1 to on-1).
    2. The accruing installment (the first unpaid one with D > on): the interest accrued and
       not yet paid for its days before `on`, then its principal. Paying it early is paying it:
       once both are paid it is `paid`, its interest is what accrued until `on`, and the next
       installment's days run from `on` (so a borrower who pays the amount shown, on any day
       up to D, is never overdue for it).
    3. Only what is left prepays the principal of the later installments, which keep their due
       dates and are recomputed on the new principal with the same method.
    Interest is never charged in advance, so more than the payoff is refused.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be integer fen, got {type(amount).__name__}")
    if amount <= 0:
        raise ValueError(f"a repayment must be a positive amount of fen: {amount}")
    _check_open(state)
    _check_not_backdated(state, on, RepaymentDateError)
    payoff = payoff_quote(state, on).amount
    if amount > payoff:
        raise OverpaymentError(amount, payoff)

    new = copy.deepcopy(state)
    purse = _Purse(amount)
    for installment in new.due_by(on):
        if installment.settled:
            continue
        if _is_late(installment, on):
            installment.overdue = True
            days = _uncounted_penalty_days(installment, on - ONE_DAY)
            if days:
                installment.penalty_unposted += days * daily_penalty(installment.unpaid_principal,
                                                                     new.penalty_rate)
                installment.penalty_through = on - ONE_DAY
        paid = purse.take(installment.penalty_posted - installment.penalty_posted_paid)
        installment.penalty_posted_paid += paid
        purse.penalty_posted += paid
        paid = purse.take(installment.penalty_unposted - installment.penalty_unposted_paid)
        installment.penalty_unposted_paid += paid
        purse.penalty_unposted += paid
        paid = purse.take(installment.interest - installment.interest_paid)
        installment.interest_paid += paid
        purse.interest += paid
        paid = purse.take(installment.unpaid_principal)
        installment.principal_paid += paid
        purse.principal += paid

    paid_early = _pay_accruing(new, purse, on) if purse.left else None
    prepaid = purse.take(new.principal_not_yet_due(on))
    if prepaid:
        _prepay(new, prepaid, on, paid_early)
        purse.principal += prepaid
    if purse.left:  # cannot happen when amount <= payoff; refuse rather than lose money
        raise AssertionError(f"{purse.left} fen of a repayment found nothing to pay")

    new.last_activity = on
    closed = all(i.settled for i in new.installments)
    if closed:
        new.closed_on = on
    allocation = Allocation(penalty=purse.penalty_posted + purse.penalty_unposted,
                            interest=purse.interest, principal=purse.principal,
                            penalty_posted=purse.penalty_posted,
                            penalty_unposted=purse.penalty_unposted)
    return RepaymentResult(new, allocation, closed)


def _pay_accruing(state: LoanState, purse: _Purse, on: date) -> Installment | None:
    """Pay the accruing installment what it owes on `on`: the interest accrued and not yet
    paid, then its principal. Returns it when this paid it off early, else None.

    An installment that owes nothing yet on `on` (an interest-first month on its first day)
    is not "paid" by a payment that gave it nothing: the money prepays principal instead.
    """
    accruing = state.accruing(on)
    if accruing is None:
        return None
    accrued = _accrued_to(accruing, on, state.apr)
    owed = max(0, accrued - accruing.interest_paid) + accruing.unpaid_principal
    interest = purse.take(max(0, accrued - accruing.interest_paid))
    accruing.interest_paid += interest
    purse.interest += interest
    principal = purse.take(accruing.unpaid_principal)
    accruing.principal_paid += principal
    purse.principal += principal
    if owed and interest + principal == owed:
        _paid_early(state, accruing, on)
        return accruing
    if principal:  # part of the principal not yet due is repaid: less accrues from `on`
        _rebase(state, accruing, on)
    return None


def _paid_early(state: LoanState, installment: Installment, on: date) -> None:
    """The installment is paid on `on`, before its due date: its interest is what its days
    before `on` accrued (all paid), and the next installment's days run from `on`."""
    installment.interest = installment.interest_paid
    installment.accrual_basis = [(day, principal) for day, principal in installment.accrual_basis
                                 if day < on]
    following = next((i for i in state.installments
                      if i.number > installment.number and not i.settled), None)
    if following is not None:
        following.start = on
        following.accrual_basis = [(on, state.principal_not_yet_due(on))]
        following.interest = max(_accrued_to(following, following.due_date, state.apr),
                                 following.interest_paid)


def _rebase(state: LoanState, installment: Installment, on: date) -> None:
    """The principal not yet due changed on `on`: the installment's days from `on` accrue on
    the new amount (its days before keep what they accrued)."""
    installment.accrual_basis = [(day, principal) for day, principal in installment.accrual_basis
                                 if day < on] + [(on, state.principal_not_yet_due(on))]
    installment.interest = _accrued_to(installment, installment.due_date, state.apr)


def _prepay(state: LoanState, amount: int, on: date, paid_early: Installment | None) -> None:
    """Prepay `amount` of the principal not yet due on `on` and recompute what is left.

    The prepaid principal is booked as paid on the installment this repayment paid early (or,
    when none was, on the accruing one), so the schedule still adds up to the loan and shows
    where the money went. The installments left keep their due dates and are recomputed on the
    new principal with the same method; the first of them keeps what its days before `on`
    accrued and accrues on the new principal from `on`.
    """
    left = [i for i in state.installments if i.due_date > on and not i.settled]
    assert left  # there is principal not yet due, so an unpaid installment holds it
    remaining = sum(i.unpaid_principal for i in left) - amount
    booked = paid_early or left[0]
    booked.principal_paid += amount
    if booked is paid_early:  # settled, not recomputed below: it keeps what it collected
        booked.principal += amount
    first = left[0]
    carried = [(day, principal) for day, principal in first.accrual_basis if day < on]
    periods = [(on, first.due_date)] + [(i.start, i.due_date) for i in left[1:]]
    for installment, plan in zip(left, plan_installments(state.method, state.apr, periods,
                                                         remaining, carried)):
        installment.principal = installment.principal_paid + plan.principal
        installment.interest = plan.interest
        installment.accrual_basis = list(plan.accrual_basis)


# --- status -----------------------------------------------------------------------------------

def days_past_due(state: LoanState, on: date) -> int:
    """on − D of the oldest unpaid installment due before `on` (1 on the grace day), else 0."""
    oldest = next((i for i in state.installments if not i.settled), None)
    if oldest is None or oldest.due_date >= on:
        return 0
    return (on - oldest.due_date).days


def loan_status(state: LoanState, on: date | None = None) -> str:
    """`closed`, `overdue` (an installment marked overdue, or still unpaid after its grace day
    on `on`) or `active`."""
    if state.closed or all(i.settled for i in state.installments):
        return "closed"
    if any(i.overdue and not i.settled for i in state.installments):
        return "overdue"
    if on is not None and any(_is_late(i, on) for i in state.installments):
        return "overdue"
    return "active"


def schedule_items(state: LoanState) -> list[dict]:
    """The contract's schedule: one item per installment, amounts in fen."""
    return [{"installment": i.number, "due_date": i.due_date.isoformat(), "principal": i.principal,
             "interest": i.interest, "penalty": i.penalty, "total": i.total, "paid": i.paid,
             "status": i.status} for i in state.installments]
