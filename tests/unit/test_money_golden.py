"""Golden schedules: the engine against an independent computation written here.

The reference below shares no code with `chalicelib.repay`: it walks the loan day by day with
`fractions.Fraction` (each day's principal not yet due × apr / 365, summed, rounded once), finds
month ends with `date(y, m + 1, 1) − 1 day`, and takes the level payment from the textbook
annuity formula in 80-digit `Decimal`, cross-checked against `numpy_financial.pmt`. A few cases
also carry numbers worked out by hand (apr 7.3 % makes the daily rate exactly 0.0002).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import numpy_financial
import pytest

from chalicelib.money import engine

ONE_DAY = timedelta(days=1)
CAP = Decimal("0.24")


# --- the independent reference -------------------------------------------------------------------

def half_up(value: Fraction) -> int:
    assert value >= 0
    return math.floor(value + Fraction(1, 2))


def month_end(year: int, month: int) -> date:
    first_of_next = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return first_of_next - ONE_DAY


def reference_due_dates(disbursed: date, n: int) -> list[date]:
    dues, year, month = [], disbursed.year, disbursed.month
    for _ in range(n):
        month += 1
        if month == 13:
            year, month = year + 1, 1
        dues.append(date(year, month, min(disbursed.day, month_end(year, month).day)))
    return dues


def reference_level_payment(principal: int, apr: Decimal, n: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 80
        r = apr / Decimal(12)
        factor = (1 + r) ** n
        exact = Decimal(principal) * r * factor / (factor - 1)
        payment = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    # A second, floating-point opinion from a different library (only as a cross-check).
    assert round(numpy_financial.pmt(float(apr) / 12, n, -principal)) == payment
    return payment


def daily_interest(not_yet_due_on, first: date, end: date, apr: Decimal) -> int:
    """Day-by-day sum over first, first+1, ..., end−1, rounded once."""
    total, day = Fraction(0), first
    while day < end:
        total += Fraction(not_yet_due_on(day)) * Fraction(str(apr)) / 365
        day += ONE_DAY
    return half_up(total)


@dataclass
class Row:
    due: date
    principal: int
    interest: int


def reference_rows(method: str, apr: Decimal, remaining: int, periods: list[tuple[date, date]],
                   began: tuple[date, int] | None = None) -> list[Row]:
    """Installments for `periods` [(first day on `remaining`, due date)] sharing `remaining`.

    `began` = (day, principal) says the first period really began earlier, on `day`, with
    `principal` not yet due until its first day here (a prepayment happened inside it).
    """
    rows: list[Row] = []
    n = len(periods)
    payment = reference_level_payment(remaining, apr, n) if method == "equal_installment" else None
    for k, (first, due) in enumerate(periods):
        left = remaining - sum(r.principal for r in rows)
        if k == 0 and began is not None:
            began_on, principal_before = began
            interest = daily_interest(lambda day: principal_before if day < first else left,
                                      began_on, due, apr)
        else:
            interest = daily_interest(lambda day: left, first, due, apr)
        if k == n - 1:
            principal = left
        elif method == "equal_installment":
            principal = max(0, min(payment - interest, left))
        elif method == "equal_principal":
            principal = min(half_up(Fraction(remaining, n)), left)
        else:
            principal = 0
        rows.append(Row(due, principal, interest))
    return rows


def reference_schedule(principal: int, apr: Decimal, n: int, method: str, disbursed: date) -> list[Row]:
    dues = reference_due_dates(disbursed, n)
    return reference_rows(method, apr, principal, list(zip([disbursed] + dues[:-1], dues)))


# --- golden cases --------------------------------------------------------------------------------

CASES = [  # (principal fen, apr, term, method, disbursed on)
    (50_000, "0.0720", 1, "equal_installment", date(2024, 1, 31)),
    (1_000_000, "0.1825", 12, "equal_installment", date(2027, 1, 31)),
    (20_000_000, "0.2400", 24, "equal_installment", date(2023, 12, 31)),
    (5_432_100, "0.0999", 6, "equal_installment", date(2028, 1, 30)),
    (300_000, "0.1560", 18, "equal_installment", date(2026, 5, 29)),
    (50_000, "0.2400", 3, "equal_principal", date(2025, 8, 31)),
    (1_999_999, "0.0720", 24, "equal_principal", date(2027, 10, 31)),
    (12_345_678, "0.1388", 12, "equal_principal", date(2024, 2, 29)),
    (20_000_000, "0.2000", 9, "equal_principal", date(2026, 12, 30)),
    (50_000, "0.0720", 1, "interest_first", date(2027, 1, 29)),
    (7_777_777, "0.2399", 24, "interest_first", date(2024, 1, 30)),
    (20_000_000, "0.1800", 6, "interest_first", date(2025, 3, 31)),
    (888_888, "0.2160", 15, "equal_installment", date(2027, 8, 31)),
    (3_000_000, "0.1095", 2, "equal_principal", date(2027, 12, 29)),
]


@pytest.mark.parametrize("principal,apr,term,method,disbursed", CASES,
                         ids=[f"{c[3]}-{c[0]}-{c[1]}-{c[2]}m-{c[4]}" for c in CASES])
def test_schedule_matches_the_day_by_day_reference(principal, apr, term, method, disbursed):
    # Given a loan paid out at the end of a month
    expected = reference_schedule(principal, Decimal(apr), term, method, disbursed)

    # When the engine builds its schedule
    schedule = engine.build_schedule(principal, Decimal(apr), term, method, disbursed)

    # Then every installment matches to the fen
    got = [(i.due_date, i.principal, i.interest) for i in schedule.installments]
    assert got == [(r.due, r.principal, r.interest) for r in expected]
    assert [i.number for i in schedule.installments] == list(range(1, term + 1))
    assert schedule.total_interest == sum(r.interest for r in expected)
    assert schedule.total_repayment == principal + schedule.total_interest
    if method == "equal_installment":
        assert schedule.level_payment == reference_level_payment(principal, Decimal(apr), term)
    # and the loan state built from it shows the same amounts
    items = engine.schedule_items(engine.new_loan(principal, Decimal(apr), term, method, disbursed, apr_cap=CAP))
    assert [(i["principal"], i["interest"]) for i in items] == [(r.principal, r.interest) for r in expected]


def test_hand_computed_interest_first_one_month():
    # 1,000 CNY at 18.25 % from Jan 31 to Feb 28, 2027 (28 days): 100000 × 0.0005 × 28 = 1400
    schedule = engine.build_schedule(100_000, Decimal("0.1825"), 1, "interest_first", date(2027, 1, 31))
    (only,) = schedule.installments
    assert (only.due_date, only.principal, only.interest, only.total) == (date(2027, 2, 28), 100_000, 1400, 101_400)


def test_hand_computed_equal_principal_three_months():
    # 12,000 CNY at 7.3 % (0.0002 a day): 28, 31 and 30 days on 1.2M, 0.8M and 0.4M fen
    schedule = engine.build_schedule(1_200_000, Decimal("0.073"), 3, "equal_principal", date(2027, 1, 31))
    assert [(i.due_date, i.principal, i.interest) for i in schedule.installments] == [
        (date(2027, 2, 28), 400_000, 6720),
        (date(2027, 3, 31), 400_000, 4960),
        (date(2027, 4, 30), 400_000, 2400),
    ]
    assert (schedule.total_interest, schedule.total_repayment) == (14_080, 1_214_080)


def test_hand_computed_equal_installment_payment():
    # 等额本息 12 × 1% a month on 100,000 fen: the textbook payment 8884.88 -> 8885 fen
    schedule = engine.build_schedule(100_000, Decimal("0.12"), 12, "equal_installment", date(2027, 1, 15))
    assert schedule.level_payment == 8885
    # Jan 15 -> Feb 15 is 31 days: 100000 × 0.12 × 31 / 365 = 1019.18 -> 1019; principal 8885 − 1019
    first = schedule.installments[0]
    assert (first.interest, first.principal, first.total) == (1019, 7866, 8885)


# --- paying before the due date ----------------------------------------------------------------------

EARLY_CASES = [  # (principal, apr, term, method, disbursed, installments paid first, pay day, extra)
    (1_000_000, "0.1825", 12, "equal_installment", date(2027, 1, 31), 2, date(2027, 4, 17), 300_000),
    (6_000_000, "0.0720", 24, "equal_principal", date(2026, 10, 30), 5, date(2027, 4, 2), 1_234_567),
    (2_000_000, "0.2400", 6, "interest_first", date(2027, 5, 31), 1, date(2027, 7, 30), 1_500_000),
    (500_000, "0.1380", 9, "equal_installment", date(2027, 12, 29), 0, date(2028, 1, 10), 100_000),
    (888_888, "0.2160", 15, "equal_principal", date(2027, 8, 31), 3, date(2027, 12, 28), 0),
    (1_200_000, "0.0730", 3, "interest_first", date(2027, 1, 31), 0, date(2027, 2, 25), 720),
]


@pytest.mark.parametrize("principal,apr,term,method,disbursed,paid_first,pay_on,extra", EARLY_CASES)
def test_paying_an_installment_early_then_prepaying_matches_reference(principal, apr, term, method,
                                                                       disbursed, paid_first, pay_on, extra):
    """The contract's rule, computed here without the engine: on day t the accruing
    installment k takes the interest of its days before t (day by day on the principal not yet
    due, rounded once), then its principal; it is then paid, with that interest. What is left
    prepays: installments k+1.. share the new principal by the same method, the first of them
    accruing from t (its days run from the day k was paid)."""
    rate = Decimal(apr)
    planned = reference_schedule(principal, rate, term, method, disbursed)
    dues = [r.due for r in planned]

    # Given a borrower who paid the first installments in full on their due dates
    state = engine.new_loan(principal, rate, term, method, disbursed, apr_cap=CAP)
    for row in planned[:paid_first]:
        state = engine.apply_repayment(state, row.principal + row.interest, row.due).state

    # When they pay installment k's interest so far and its principal, plus `extra`, before D
    k = paid_first
    period_start = disbursed if k == 0 else dues[k - 1]
    assert period_start < pay_on < dues[k]
    not_yet_due = principal - sum(r.principal for r in planned[:k])
    accrued = daily_interest(lambda day: not_yet_due, period_start, pay_on, rate)
    result = engine.apply_repayment(state, accrued + planned[k].principal + extra, pay_on)

    # Then the interest is only what accrued, never a day in advance; the rest is principal
    assert result.allocation.to_dict() == {"penalty": 0, "interest": accrued,
                                           "principal": planned[k].principal + extra}
    # and the reference recomputes what is left, from the payment day
    left = not_yet_due - planned[k].principal - extra
    periods = [(pay_on, dues[k + 1])] + list(zip(dues[k + 1:-1], dues[k + 2:]))
    if extra:
        rest = reference_rows(method, rate, left, periods)
    else:  # nothing prepaid: the later installments keep their principal; the next one's days run from t
        rest, still_due = [], left
        for row, (first, due) in zip(planned[k + 1:], periods):
            rest.append(Row(due, row.principal, daily_interest(lambda day, p=still_due: p, first, due, rate)))
            still_due -= row.principal
    expected = [(r.due, r.principal, r.interest, "paid") for r in planned[:k]]
    expected.append((dues[k], planned[k].principal + extra, accrued, "paid"))
    expected += [(r.due, r.principal, r.interest, "pending") for r in rest]
    got = [(i.due_date, i.principal, i.interest, i.status) for i in result.state.installments]
    assert got == expected
    assert [i.due_date for i in result.state.installments] == dues  # due dates never move
    assert result.state.outstanding_principal == left
    if method == "equal_installment" and extra and len(rest) > 1:
        level = reference_level_payment(left, rate, len(rest))
        assert all(r.principal + r.interest == level for r in rest[:-1] if r.principal)


def test_hand_computed_early_payment_equal_principal():
    """12,000 CNY at 7.3 % (0.0002 a day), 3 months from Jan 31; installment 1 shows
    400,000 + 6720 (28 days on 1,200,000). Paid in full on Feb 25, 3 days early:
    - interest of Jan 31 .. Feb 24 (25 days): 1,200,000 × 0.0002 × 25 = 6000;
    - principal 400,000; the 720 left prepays: 800,000 − 720 = 799,280 not yet due;
    - installments 2 and 3 share it: round(799,280 / 2) = 399,640 each;
    - installment 2 runs from Feb 25 to Mar 31 (34 days): 799,280 × 0.0002 × 34 = 5435.104 -> 5435;
    - installment 3, Mar 31 to Apr 30 (30 days) on 399,640: 2397.84 -> 2398."""
    state = engine.new_loan(1_200_000, Decimal("0.073"), 3, "equal_principal", date(2027, 1, 31), apr_cap=CAP)
    result = engine.apply_repayment(state, 406_720, date(2027, 2, 25))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 6000, "principal": 400_720}
    assert [(i["due_date"], i["principal"], i["interest"], i["status"]) for i in engine.schedule_items(result.state)] == [
        ("2027-02-28", 400_720, 6000, "paid"),
        ("2027-03-31", 399_640, 5435, "pending"),
        ("2027-04-30", 399_640, 2398, "pending"),
    ]


def test_hand_computed_early_payment_interest_first():
    """12,000 CNY at 7.3 %, 3 months from Jan 31, interest first: installment 1 shows 0 + 6720.
    Paid on Feb 27, 1 day early:
    - interest of Jan 31 .. Feb 26 (27 days): 1,200,000 × 0.0002 × 27 = 6480; no principal due;
    - the 240 left prepays: 1,199,760 not yet due;
    - installment 2 runs from Feb 27 to Mar 31 (32 days): 1,199,760 × 0.0002 × 32 = 7678.464 -> 7678;
    - installment 3 (30 days): 1,199,760 × 0.0002 × 30 = 7198.56 -> 7199, with all the principal."""
    state = engine.new_loan(1_200_000, Decimal("0.073"), 3, "interest_first", date(2027, 1, 31), apr_cap=CAP)
    result = engine.apply_repayment(state, 6720, date(2027, 2, 27))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 6480, "principal": 240}
    assert [(i["principal"], i["interest"], i["paid"], i["status"]) for i in engine.schedule_items(result.state)] == [
        (240, 6480, 6720, "paid"), (0, 7678, 0, "pending"), (1_199_760, 7199, 0, "pending")]


def test_hand_computed_early_payment_equal_installment():
    """1,200 CNY at 12 % (r = 1 % a month), 2 months from Jan 15, 2027: level payment
    round(120,000 × 0.01 × 1.01² / (1.01² − 1)) = round(1224.12 / 0.0201) = round(60,901.49)
    = 60,901. Installment 1: Jan 15 -> Feb 15, 31 days: 120,000 × 0.12 × 31 / 365 = 1223.01
    -> 1223; principal 60,901 − 1223 = 59,678; it shows 60,901.
    Paid in full on Feb 12, 3 days early:
    - interest of Jan 15 .. Feb 11 (28 days): 120,000 × 0.12 × 28 / 365 = 1104.66 -> 1105;
    - principal 59,678; the 118 left prepays: 60,322 − 118 = 60,204 not yet due;
    - installment 2 is the last: all 60,204, from Feb 12 to Mar 15 (31 days):
      60,204 × 0.12 × 31 / 365 = 613.59 -> 614."""
    state = engine.new_loan(120_000, Decimal("0.12"), 2, "equal_installment", date(2027, 1, 15), apr_cap=CAP)
    assert engine.schedule_items(state)[0]["total"] == 60_901
    assert engine.schedule_items(state)[0]["interest"] == 1223
    result = engine.apply_repayment(state, 60_901, date(2027, 2, 12))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 1105, "principal": 59_678 + 118}
    assert [(i["principal"], i["interest"], i["status"]) for i in engine.schedule_items(result.state)] == [
        (59_678 + 118, 1105, "paid"), (60_204, 614, "pending")]
