"""Repayment schedules: due dates, the level payment, and interest accrued by the day.

Pure and exact. Amounts are integer fen; a rate is a `Decimal`. Where a rate is applied the
arithmetic runs on exact rationals (`Fraction`), because `apr / 365` and `apr / 12` have no
finite decimal expansion: a `Decimal` quotient would already be rounded at 28 digits. Each
amount that is posted or shown (the level payment, an installment's principal and interest, a
day's penalty, a payoff's accrued interest) is rounded half up to the fen exactly once, as
`core.money.to_fen` does; intermediate results are never rounded.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

from chalicelib.money.fen import DAYS_PER_YEAR, MONTHS_PER_YEAR

EQUAL_INSTALLMENT = "equal_installment"  # 等额本息
EQUAL_PRINCIPAL = "equal_principal"  # 等额本金
INTEREST_FIRST = "interest_first"  # 先息后本
METHODS = (EQUAL_INSTALLMENT, EQUAL_PRINCIPAL, INTEREST_FIRST)

# Past-due principal owes penalty instead of interest, at 1.5 times the loan's rate, but never
# above the APR cap: min(1.5 × apr, cap) a year.
PENALTY_RATE_MULTIPLIER = Decimal("1.5")

# (from this date on, principal not yet due): the principal on which a period accrues interest,
# one entry per change (the period's first day, then each prepayment within it).
AccrualBasis = list[tuple[date, int]]


def round_fen(amount: Fraction) -> int:
    """Round an exact amount of fen half up (away from zero on a tie), like `to_fen`."""
    whole, rest = divmod(abs(amount.numerator), amount.denominator)
    rounded = whole + (1 if 2 * rest >= amount.denominator else 0)
    return -rounded if amount < 0 else rounded


def check_fen(value: object, what: str, *, positive: bool = False) -> int:
    """Money crosses into the engine only as integer fen (never a bool, float or Decimal)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be integer fen, got {type(value).__name__}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be {'positive' if positive else 'non-negative'}: {value}")
    return value


def check_apr(apr: object) -> Decimal:
    if not isinstance(apr, Decimal):
        raise TypeError(f"apr must be a Decimal, got {type(apr).__name__}")
    if not apr.is_finite() or apr < 0:
        raise ValueError(f"invalid apr {apr!r}")
    return apr


def check_date(value: object, what: str) -> date:
    # A datetime is a date too, but mixing the two silently shifts days across time zones.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime.date (an Asia/Shanghai calendar date)")
    return value


def due_date(disbursed_on: date, number: int) -> date:
    """Due date of installment `number`: `number` months after disbursement, on the
    disbursement day of month or the month's last day when that month is shorter.

    Always counted from the original day, never from the previous due date, so a loan paid
    out on Jan 31 falls due Feb 28 (29), Mar 31, Apr 30, ... and never drifts to the 28th.
    """
    months = disbursed_on.month - 1 + number
    year, month = disbursed_on.year + months // 12, months % 12 + 1
    return date(year, month, min(disbursed_on.day, calendar.monthrange(year, month)[1]))


def due_dates(disbursed_on: date, term_months: int) -> list[date]:
    return [due_date(disbursed_on, k) for k in range(1, term_months + 1)]


def days_between(start: date, end: date) -> int:
    """"The days from A to B" are A, A+1, ..., B-1."""
    return (end - start).days


def accrued_interest(basis: Sequence[tuple[date, int]], until: date, apr: Decimal) -> Fraction:
    """Exact interest accrued on `basis` for its days before `until`: each day's principal not
    yet due times apr / 365, summed (the caller rounds the sum once)."""
    weighted = 0  # fen-days
    for index, (start, principal) in enumerate(basis):
        end = basis[index + 1][0] if index + 1 < len(basis) else until
        end = min(end, until)
        if end > start:
            weighted += principal * days_between(start, end)
    return weighted * Fraction(apr) / DAYS_PER_YEAR


def penalty_rate(apr: Decimal, cap: Decimal) -> Decimal:
    """The annual rate of penalty on past-due principal: min(1.5 × apr, cap), so overdue
    principal never costs more than the APR cap a year. Exact (a rate has few digits)."""
    check_apr(apr)
    check_apr(cap)
    return min(apr * PENALTY_RATE_MULTIPLIER, cap)


def daily_penalty(unpaid_principal: int, rate: Decimal) -> int:
    """One day's penalty on an installment's unpaid principal at the annual penalty `rate`."""
    return round_fen(unpaid_principal * Fraction(rate) / DAYS_PER_YEAR)


def level_payment(principal: int, apr: Decimal, installments: int) -> int:
    """等额本息 payment round(P·r·(1+r)^n / ((1+r)^n − 1)) with r = apr / 12, exactly."""
    rate = Fraction(apr) / MONTHS_PER_YEAR
    if rate == 0:  # the annuity formula's limit at r = 0 (a 0 % promotion): P / n
        return round_fen(Fraction(principal, installments))
    growth = (1 + rate) ** installments
    return round_fen(principal * rate * growth / (growth - 1))


@dataclass(frozen=True)
class PlannedInstallment:
    principal: int
    interest: int
    accrual_basis: tuple[tuple[date, int], ...]


def plan_installments(method: str, apr: Decimal, periods: Sequence[tuple[date, date]],
                      principal: int, carried: Sequence[tuple[date, int]] = ()) -> list[PlannedInstallment]:
    """Split `principal` over the installments whose periods are `periods` ((accrual start,
    due date), oldest first) by `method`, each with its interest on the principal not yet due.

    Used for a new loan (`carried` empty) and after a prepayment: then the first period starts
    accruing on the new principal on the prepayment date, and `carried` holds what that period
    already accrued before it (the interest accrued stays with the current installment).
    """
    if method not in METHODS:
        raise ValueError(f"unknown repayment method {method!r}")
    count = len(periods)
    payment = level_payment(principal, apr, count) if method == EQUAL_INSTALLMENT else None
    even_share = round_fen(Fraction(principal, count))
    left = principal
    planned = []
    for index, (accrues_from, due) in enumerate(periods):
        basis = (tuple(carried) if index == 0 else ()) + ((accrues_from, left),)
        interest = round_fen(accrued_interest(basis, due, apr))
        if index == count - 1:
            share = left  # the last installment takes all principal left, so its total can differ
        elif method == EQUAL_INSTALLMENT:
            # Interest follows the actual days, so the principal is what the payment leaves.
            share = min(max(payment - interest, 0), left)
        elif method == EQUAL_PRINCIPAL:
            share = min(even_share, left)  # only a loan of a few fen could run out early
        else:  # INTEREST_FIRST
            share = 0
        left -= share
        planned.append(PlannedInstallment(share, interest, basis))
    return planned


@dataclass(frozen=True)
class ScheduledInstallment:
    number: int
    start: date  # the first day of its period: the previous due date, or the disbursement date
    due_date: date
    principal: int
    interest: int

    @property
    def total(self) -> int:
        return self.principal + self.interest


@dataclass(frozen=True)
class Schedule:
    principal: int
    apr: Decimal
    method: str
    disbursed_on: date
    installments: tuple[ScheduledInstallment, ...]
    level_payment: int | None  # equal_installment only

    @property
    def total_interest(self) -> int:
        return sum(i.interest for i in self.installments)

    @property
    def total_repayment(self) -> int:
        return sum(i.total for i in self.installments)


def build_schedule(principal: int, apr: Decimal, term_months: int, method: str,
                   disbursed_on: date) -> Schedule:
    """The schedule of a loan paid out on `disbursed_on` and repaid as agreed."""
    check_fen(principal, "principal", positive=True)
    check_apr(apr)
    check_date(disbursed_on, "disbursed_on")
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
        raise ValueError(f"term_months must be a positive integer: {term_months!r}")
    if method not in METHODS:
        raise ValueError(f"unknown repayment method {method!r}")
    dues = due_dates(disbursed_on, term_months)
    starts = [disbursed_on] + dues[:-1]
    planned = plan_installments(method, apr, list(zip(starts, dues)), principal)
    return Schedule(
        principal=principal, apr=apr, method=method, disbursed_on=disbursed_on,
        installments=tuple(ScheduledInstallment(number, start, due, plan.principal, plan.interest)
                           for number, (start, due, plan) in enumerate(zip(starts, dues, planned), 1)),
        level_payment=level_payment(principal, apr, term_months) if method == EQUAL_INSTALLMENT else None)
