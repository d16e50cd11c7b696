"""The repayment engine: schedules, payoff, repayments, grace and penalties (pure, no AWS)."""
from __future__ import annotations

import ast
import json
import math
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import Conflict, RuleViolation
from chalicelib.money import engine

DAY = timedelta(days=1)
APR = Decimal("0.073")  # 0.0002 a day: amounts below can be checked by hand
CAP = Decimal("0.24")  # the contract's APR cap, which also caps the penalty rate
# 12,000 CNY, 3 months, paid out Jan 31 2027: due Feb 28 (28 days), Mar 31 (31), Apr 30 (30)
D1, D2, D3 = date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)


def hand_loan(method: str = "equal_principal") -> engine.LoanState:
    return engine.new_loan(1_200_000, APR, 3, method, date(2027, 1, 31), apr_cap=CAP)


def penalty_per_day(unpaid_principal: int, apr: Decimal) -> int:
    """round(unpaid × min(1.5 × apr, cap) / 365), half up, computed here without the engine."""
    rate = min(Fraction(3, 2) * Fraction(str(apr)), Fraction(str(CAP)))
    return math.floor(Fraction(unpaid_principal) * rate / 365 + Fraction(1, 2))


# --- strategies -----------------------------------------------------------------------------------

methods = st.sampled_from(["equal_installment", "equal_principal", "interest_first"])
aprs = st.integers(0, 3600).map(lambda bp: Decimal(bp) / 10000)
principals = st.one_of(st.integers(50_000, 20_000_000), st.integers(1, 50_000))
terms = st.integers(1, 36)
disbursement_days = st.one_of(
    st.dates(date(2024, 1, 1), date(2031, 12, 31)),
    st.builds(lambda y, m, d: date(y, m, min(d, 28 if m == 2 else 30 if m in (4, 6, 9, 11) else 31)),
              st.integers(2024, 2031), st.integers(1, 12), st.integers(28, 31)))


@st.composite
def loans(draw, max_term: int = 36):
    return engine.new_loan(draw(principals), draw(aprs), draw(st.integers(1, max_term)),
                           draw(methods), draw(disbursement_days), apr_cap=CAP)


# --- schedules ------------------------------------------------------------------------------------

@given(principal=principals, apr=aprs, term=terms, method=methods, disbursed=disbursement_days)
@settings(max_examples=300)
def test_schedule_adds_up_and_falls_due_on_the_right_days(principal, apr, term, method, disbursed):
    schedule = engine.build_schedule(principal, apr, term, method, disbursed)
    rows = schedule.installments

    assert sum(r.principal for r in rows) == principal
    assert all(r.principal >= 0 and r.interest >= 0 for r in rows)
    assert schedule.total_interest == sum(r.interest for r in rows)
    assert schedule.total_repayment == principal + schedule.total_interest == sum(r.total for r in rows)

    # Due dates: strictly increasing, one calendar month apart, on the day paid out or the
    # month's last day when the month is shorter (counted from the original day, not chained)
    dues = [r.due_date for r in rows]
    assert all(a < b for a, b in zip([disbursed] + dues, dues))
    for k, due in enumerate(dues, 1):
        assert (due.year * 12 + due.month) - (disbursed.year * 12 + disbursed.month) == k
        last_day = ((due.replace(day=1) + timedelta(days=32)).replace(day=1) - DAY).day
        assert due.day == min(disbursed.day, last_day)
    assert [r.start for r in rows] == [disbursed] + dues[:-1]

    # Interest of each period: the principal not yet due, for its days, at apr / 365
    left = principal
    for row in rows:
        exact = Fraction(left) * Fraction(str(apr)) * (row.due_date - row.start).days / 365
        assert row.interest == math.floor(exact + Fraction(1, 2))
        left -= row.principal

    if method == "interest_first":
        assert [r.principal for r in rows[:-1]] == [0] * (term - 1)
    if method == "equal_principal" and principal >= term * term:
        share = math.floor(Fraction(principal, term) + Fraction(1, 2))
        assert [r.principal for r in rows[:-1]] == [share] * (term - 1)
    if method == "equal_installment":
        # every installment but the last pays the level payment, unless its principal had to be
        # clamped: to 0 (interest above the payment) or to all the principal left
        left = principal
        for row in rows[:-1]:
            assert (row.total == schedule.level_payment
                    or (row.principal == 0 and row.interest >= schedule.level_payment)
                    or (row.principal == left and row.total <= schedule.level_payment))
            left -= row.principal


@given(loan=loans())
def test_state_round_trips_through_plain_json(loan):
    data = loan.to_dict()
    text = json.dumps(data)  # ints, strings, bools and None only: no float, no Decimal
    assert "Decimal" not in text and not any(isinstance(v, float) for v in data.values())
    restored = engine.LoanState.from_dict(json.loads(text))
    assert restored == loan
    assert engine.schedule_items(restored) == engine.schedule_items(loan)


def test_due_dates_of_a_loan_paid_out_on_the_31st():
    dues = [i.due_date for i in engine.build_schedule(
        100_000, Decimal("0.1"), 6, "equal_principal", date(2024, 1, 31)).installments]
    assert dues == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31),
                    date(2024, 6, 30), date(2024, 7, 31)]
    assert engine.build_schedule(100_000, Decimal("0.1"), 2, "equal_principal",
                                 date(2025, 12, 30)).installments[1].due_date == date(2026, 2, 28)


@pytest.mark.parametrize("kwargs,error", [
    ({"principal": 0}, ValueError), ({"principal": -5}, ValueError), ({"principal": 10.0}, TypeError),
    ({"principal": True}, TypeError), ({"apr": 0.1}, TypeError), ({"apr": Decimal("-0.1")}, ValueError),
    ({"apr": Decimal("NaN")}, ValueError), ({"term_months": 0}, ValueError),
    ({"method": "balloon"}, ValueError), ({"disbursed_on": "2027-01-31"}, TypeError),
])
def test_build_schedule_refuses_bad_input(kwargs, error):
    args = {"principal": 100_000, "apr": Decimal("0.1"), "term_months": 3, "method": "equal_principal",
            "disbursed_on": date(2027, 1, 31)} | kwargs
    with pytest.raises(error):
        engine.build_schedule(**args)


# --- payoff and repayment ---------------------------------------------------------------------------

def test_payoff_on_the_day_of_disbursement_is_the_principal():
    quote = engine.payoff_quote(hand_loan(), date(2027, 1, 31))
    assert quote.to_dict() == {"amount": 1_200_000, "principal": 1_200_000, "interest": 0, "penalty": 0}


def test_payoff_mid_period_charges_only_the_days_elapsed():
    # Jan 31 .. Feb 9 is 10 days: 1,200,000 × 0.0002 × 10 = 2400; nothing in advance
    quote = engine.payoff_quote(hand_loan(), date(2027, 2, 10))
    assert (quote.amount, quote.principal, quote.interest, quote.penalty) == (1_202_400, 1_200_000, 2400, 0)


def test_paying_exactly_the_payoff_closes_the_loan():
    state = hand_loan("equal_installment")
    quote = engine.payoff_quote(state, date(2027, 2, 10))
    result = engine.apply_repayment(state, quote.amount, date(2027, 2, 10))
    assert result.closed and result.state.closed_on == date(2027, 2, 10)
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 2400, "principal": 1_200_000}
    assert result.state.outstanding_principal == 0
    assert engine.loan_status(result.state, date(2027, 2, 10)) == "closed"
    assert {i["status"] for i in engine.schedule_items(result.state)} == {"paid"}
    # nothing more can be quoted or paid on a closed loan (the contract's 409)
    with pytest.raises(engine.LoanClosedError) as caught:
        engine.payoff_quote(result.state, date(2027, 2, 11))
    assert isinstance(caught.value, Conflict) and caught.value.status == 409
    with pytest.raises(engine.LoanClosedError):
        engine.apply_repayment(result.state, 1, date(2027, 2, 11))


def test_overpayment_is_refused_and_changes_nothing():
    state = hand_loan()
    before = state.to_dict()
    payoff = engine.payoff_quote(state, date(2027, 2, 10)).amount
    with pytest.raises(engine.OverpaymentError) as caught:
        engine.apply_repayment(state, payoff + 1, date(2027, 2, 10))
    assert isinstance(caught.value, RuleViolation)
    assert (caught.value.status, caught.value.code) == (422, "OVERPAYMENT")
    assert state.to_dict() == before


@pytest.mark.parametrize("amount,error", [(0, ValueError), (-100, ValueError), (100.0, TypeError),
                                          (Decimal(100), TypeError), (True, TypeError)])
def test_repayment_amount_must_be_positive_integer_fen(amount, error):
    with pytest.raises(error):
        engine.apply_repayment(hand_loan(), amount, date(2027, 2, 10))


def test_dates_before_the_last_activity_are_refused():
    state = engine.apply_repayment(hand_loan(), 1000, date(2027, 2, 10)).state
    with pytest.raises(engine.PayoffDateError) as caught:
        engine.payoff_quote(state, date(2027, 2, 9))
    assert (caught.value.status, caught.value.code) == (422, "PAYOFF_DATE_INVALID")
    with pytest.raises(engine.RepaymentDateError) as caught:
        engine.apply_repayment(state, 1000, date(2027, 2, 9))
    assert (caught.value.status, caught.value.code) == (422, "REPAYMENT_DATE_INVALID")
    with pytest.raises(engine.PayoffDateError):
        engine.payoff_quote(hand_loan(), date(2027, 1, 30))  # before the money was paid out
    assert engine.payoff_quote(state, date(2027, 2, 10)).amount > 0  # the same day is fine


def test_money_beyond_the_installment_pays_its_interest_so_far_then_prepays_never_in_advance():
    # Given 2400 fen of interest accrued by Feb 10 on 1,200,000 fen (10 days at 0.0002)
    state = hand_loan()
    # When 1,201,000 is paid: installment 1's 2400 of interest so far and its 400,000 of
    # principal, then 798,600 prepays the principal of installments 2 and 3
    result = engine.apply_repayment(state, 1_201_000, date(2027, 2, 10))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 2400, "principal": 1_198_600}
    assert not result.closed
    # Then installment 1 is paid with only the interest of its days before Feb 10, and the
    # 1,400 left is split over installments 2 (days from Feb 10: 49 × 1400 × 0.0002 = 13.72)
    # and 3 (30 × 700 × 0.0002 = 4.2)
    items = engine.schedule_items(result.state)
    assert [(i["principal"], i["interest"], i["paid"], i["status"]) for i in items] == [
        (1_198_600, 2400, 1_201_000, "paid"), (700, 14, 0, "pending"), (700, 4, 0, "pending")]
    # and no more interest accrues on principal already repaid: 15 days on 1,400 = 4.2
    assert engine.payoff_quote(result.state, date(2027, 2, 25)).to_dict() == {
        "amount": 1404, "principal": 1400, "interest": 4, "penalty": 0}
    closing = engine.apply_repayment(result.state, 1404, date(2027, 2, 25))
    assert closing.closed and closing.allocation.interest == 4


def test_part_of_the_accruing_installment_pays_its_interest_so_far_then_its_principal():
    # Given installment 1 paid on its due date
    state = engine.apply_repayment(hand_loan(), 406_720, D1).state
    # When 200,000 is paid on Mar 10: 10 days on 800,000 = 1600 of interest so far, then
    # 198,400 of installment 2's principal (not a prepayment of later installments)
    result = engine.apply_repayment(state, 200_000, date(2027, 3, 10))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 1600, "principal": 198_400}
    # Then installment 2's days from Mar 10 accrue on the 601,600 still not due:
    # 1600 + 21 × 601,600 × 0.0002 = 1600 + 2526.72 -> 4127; installment 3 is untouched
    items = engine.schedule_items(result.state)
    assert [(i["due_date"], i["principal"], i["interest"], i["paid"], i["status"]) for i in items] == [
        ("2027-02-28", 400_000, 6720, 406_720, "paid"),
        ("2027-03-31", 400_000, 4127, 200_000, "partially_paid"),
        ("2027-04-30", 400_000, 2400, 0, "pending")]
    assert result.state.outstanding_principal == 601_600
    # and what is left of installment 2 on its due date pays it
    rest = items[1]["total"] - items[1]["paid"]
    assert rest == 201_600 + 2527
    assert engine.schedule_items(engine.apply_repayment(result.state, rest, D2).state)[1]["status"] == "paid"


def test_equal_installment_prepayment_gives_a_new_level_payment_over_the_installments_left():
    state = engine.new_loan(1_000_000, Decimal("0.1825"), 6, "equal_installment", date(2027, 1, 31),
                            apr_cap=CAP)
    state = engine.apply_repayment(state, engine.schedule_items(state)[0]["total"], date(2027, 2, 28)).state
    # 15 days (Feb 28 .. Mar 14) of interest on what is not yet due, at 0.0005 a day
    accrued = round(Fraction(state.outstanding_principal) * Fraction("0.0005") * 15)
    second = state.installments[1].principal
    result = engine.apply_repayment(state, accrued + second + 300_000, date(2027, 3, 15))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": accrued, "principal": second + 300_000}
    new_payment = engine.level_payment(state.outstanding_principal - second - 300_000, Decimal("0.1825"), 4)
    items = engine.schedule_items(result.state)
    # installment 2 is paid early and keeps the prepaid 300,000 it collected
    assert (items[1]["principal"], items[1]["interest"], items[1]["status"]) == (second + 300_000, accrued, "paid")
    # the four left share a new level payment (the first of them runs from Mar 15)
    assert [i["total"] for i in items[2:-1]] == [new_payment] * 3
    assert [i["due_date"] for i in items] == ["2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31",
                                              "2027-06-30", "2027-07-31"]


# --- paying early is paying ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["equal_installment", "equal_principal", "interest_first"])
@pytest.mark.parametrize("days_early", [3, 1, 0])
@pytest.mark.parametrize("installment", [1, 2])
def test_paying_the_shown_total_up_to_the_due_date_is_never_overdue(method, days_early, installment):
    # Given a loan whose earlier installments were paid on their due dates
    state = engine.new_loan(1_000_000, Decimal("0.1825"), 6, method, date(2027, 1, 31), apr_cap=CAP)
    for item in engine.schedule_items(state)[:installment - 1]:
        state = engine.apply_repayment(state, item["total"], date.fromisoformat(item["due_date"])).state
    shown = engine.schedule_items(state)[installment - 1]
    due = date.fromisoformat(shown["due_date"])

    # When the borrower pays the total a reminder showed, days_early days before the due date
    on = due - timedelta(days=days_early)
    result = engine.apply_repayment(state, shown["total"], on)

    # Then that installment is paid, with no interest for a day not yet come
    paid = engine.schedule_items(result.state)[installment - 1]
    assert paid["status"] == "paid" and paid["paid"] == paid["total"] == shown["total"]
    assert result.allocation.penalty == 0
    # and every close of business after it leaves it paid: no penalty, nothing past due
    later = result.state
    for day in range(1, 12):
        cob = engine.close_of_business(later, due + timedelta(days=day))
        assert all(p.installment != installment for p in cob.posted)
        later = cob.state
    item = engine.schedule_items(later)[installment - 1]
    assert (item["status"], item["penalty"]) == ("paid", 0)
    assert engine.loan_status(later, due + timedelta(days=11)) == "active"
    assert engine.days_past_due(later, due + timedelta(days=3)) == 0
    # and the principal still adds up to the loan
    assert sum(i["principal"] for i in engine.schedule_items(later)) == 1_000_000


def test_a_second_payment_before_the_due_date_pays_the_next_installment_from_the_first_payment_day():
    # Given installment 1 paid on Feb 25 (3 days early)
    state = hand_loan()
    first = engine.apply_repayment(state, 406_720, D1 - 3 * DAY).state
    # Then installment 2's days run from Feb 25: on Feb 27 two days have accrued on 799,280
    quote = engine.payoff_quote(first, D1 - DAY)
    assert quote.interest == round(799_280 * 2 * Fraction(2, 10000))  # 319.712 -> 320
    assert quote.principal == 799_280


def test_nothing_owed_yet_is_not_paid_by_a_payment_that_gives_it_nothing():
    # Given an interest-first loan on the day it is paid out (installment 1 owes nothing yet)
    state = hand_loan("interest_first")
    # When 100,000 is paid that day, it all prepays principal
    result = engine.apply_repayment(state, 100_000, date(2027, 1, 31))
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 0, "principal": 100_000}
    items = engine.schedule_items(result.state)
    # and installment 1 keeps its days: 28 days on the 1,100,000 left = 6160
    assert (items[0]["interest"], items[0]["status"]) == (6160, "partially_paid")
    assert result.state.installments[1].start == D1


# --- grace, overdue and penalty ---------------------------------------------------------------------

def test_repayment_on_the_grace_day_costs_no_penalty():
    state = hand_loan()
    # the close of business for D+1 (grace day) marks nothing
    cob = engine.close_of_business(state, D1 + DAY)
    assert cob.posted == () and engine.schedule_items(cob.state)[0]["status"] == "pending"
    assert engine.days_past_due(cob.state, D1 + DAY) == 1
    assert engine.loan_status(cob.state, D1 + DAY) == "active"

    result = engine.apply_repayment(cob.state, 406_720, D1 + DAY)
    assert result.allocation.to_dict() == {"penalty": 0, "interest": 6720, "principal": 400_000}
    assert engine.schedule_items(result.state)[0]["status"] == "paid"
    assert engine.close_of_business(result.state, D1 + 3 * DAY).posted == ()
    assert engine.days_past_due(result.state, D1 + 3 * DAY) == 0


def test_three_days_after_due_it_is_overdue_with_two_days_of_penalty():
    state = hand_loan()
    per_day = penalty_per_day(400_000, APR)  # 400,000 × 1.5 × 0.0002 = 120
    assert per_day == 120

    result = engine.close_of_business(state, D1 + 3 * DAY)

    assert [(p.installment, p.day, p.amount) for p in result.posted] == [
        (1, D1 + DAY, 120), (1, D1 + 2 * DAY, 120)]
    first = engine.schedule_items(result.state)[0]
    assert (first["status"], first["penalty"], first["total"]) == ("overdue", 240, 406_960)
    assert engine.loan_status(result.state, D1 + 3 * DAY) == "overdue"
    assert engine.days_past_due(result.state, D1 + 3 * DAY) == 3
    # Run again, or late for an earlier day: nothing is posted twice
    assert engine.close_of_business(result.state, D1 + 3 * DAY).posted == ()
    assert engine.close_of_business(result.state, D1 + 2 * DAY).posted == ()
    # The payoff on D+3 includes those two days, plus interest on what is not yet due
    quote = engine.payoff_quote(result.state, D1 + 3 * DAY)
    assert quote.penalty == 240
    assert quote.interest == 6720 + 800_000 * 3 // 5000  # 3 days at 0.0002 on 800,000 = 480


def test_penalty_never_costs_more_than_the_apr_cap_a_year():
    # Given a loan at 20 %: 1.5 × 20 % = 30 % would be above the 24 % cap
    state = engine.new_loan(1_200_000, Decimal("0.20"), 3, "equal_principal", date(2027, 1, 31),
                            apr_cap=CAP)
    assert state.penalty_rate == Decimal("0.24")
    # When installment 1 (400,000 of principal) is 3 days late
    result = engine.close_of_business(state, D1 + 3 * DAY)
    # Then each day costs 400,000 × 0.24 / 365 = 263.01 -> 263, not 400,000 × 0.30 / 365 = 328.77
    assert [p.amount for p in result.posted] == [263, 263]
    assert engine.payoff_quote(result.state, D1 + 4 * DAY).penalty == 3 * 263
    # and below the cap the rate stays 1.5 × apr (7.3 % -> 10.95 %)
    assert hand_loan().penalty_rate == Decimal("0.1095")


def test_skipped_closes_of_business_catch_up_every_day_once():
    state = hand_loan()
    first = engine.close_of_business(state, D1 + 2 * DAY)  # D+1 posted
    assert [p.day for p in first.posted] == [D1 + DAY]
    later = engine.close_of_business(first.state, D1 + 6 * DAY)  # the job missed 3 days
    assert [p.day for p in later.posted] == [D1 + i * DAY for i in range(2, 6)]
    assert engine.schedule_items(later.state)[0]["penalty"] == 5 * 120


def test_repayment_counts_penalty_not_yet_posted_and_splits_it_for_the_ledger():
    # Given close of business posted D+1 and D+2, then did not run
    state = engine.close_of_business(hand_loan(), D1 + 3 * DAY).state
    # When the borrower pays installment 1 on D+5: penalty for D+1..D+4 (D+3, D+4 not posted yet)
    quote = engine.payoff_quote(state, D1 + 5 * DAY)
    assert quote.penalty == 4 * 120
    result = engine.apply_repayment(state, 406_720 + 480, D1 + 5 * DAY)
    allocation = result.allocation
    assert (allocation.penalty, allocation.penalty_posted, allocation.penalty_unposted) == (480, 240, 240)
    assert (allocation.interest, allocation.principal) == (6720, 400_000)
    assert engine.schedule_items(result.state)[0]["status"] == "paid"
    # and a late close of business does not post those days again
    assert engine.close_of_business(result.state, D1 + 6 * DAY).posted == ()
    assert engine.loan_status(result.state, D1 + 6 * DAY) == "active"


def test_partial_payment_lowers_the_penalty_from_that_day_on():
    state = engine.close_of_business(hand_loan(), D1 + 3 * DAY).state  # 2 days × 120 posted
    # pays penalty 240 + interest 6720 + 100,000 of principal on D+3
    result = engine.apply_repayment(state, 240 + 6720 + 100_000, D1 + 3 * DAY)
    assert result.allocation.to_dict() == {"penalty": 240, "interest": 6720, "principal": 100_000}
    first = engine.schedule_items(result.state)[0]
    assert first["status"] == "overdue"
    cob = engine.close_of_business(result.state, D1 + 5 * DAY)
    # days D+3 and D+4 on 300,000 unpaid: 300,000 × 1.5 × 0.0002 = 90 a day
    assert [(p.day, p.amount) for p in cob.posted] == [(D1 + 3 * DAY, 90), (D1 + 4 * DAY, 90)]


def test_oldest_installment_is_settled_first_penalty_then_interest_then_principal():
    state = hand_loan()
    # Nothing paid until the day after installment 2 falls due
    on = D2 + DAY
    quote = engine.payoff_quote(state, on)
    days_late_1 = (on - D1).days - 1  # D1+1 .. on-1
    assert quote.penalty == days_late_1 * 120
    result = engine.apply_repayment(state, days_late_1 * 120 + 6720 + 1000, on)
    assert result.allocation.to_dict() == {"penalty": days_late_1 * 120, "interest": 6720, "principal": 1000}
    items = engine.schedule_items(result.state)
    assert items[0]["status"] == "overdue" and items[1]["status"] == "pending"
    assert items[1]["paid"] == 0
    assert engine.days_past_due(result.state, on) == (on - D1).days


def test_engine_errors_are_rule_violations_with_codes():
    assert issubclass(engine.OverpaymentError, RuleViolation)
    assert issubclass(engine.PayoffDateError, RuleViolation)
    assert engine.OverpaymentError(2, 1).code == "OVERPAYMENT"


# --- properties over whole lives of loans -------------------------------------------------------------

@given(loan=loans(), offset=st.integers(0, 1200), data=st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_paying_the_payoff_closes_the_loan_and_matches_the_quote(loan, offset, data):
    on = loan.disbursed_on + timedelta(days=offset)
    if data.draw(st.booleans()):
        loan = engine.close_of_business(loan, on).state
    quote = engine.payoff_quote(loan, on)
    assert quote.amount == quote.principal + quote.interest + quote.penalty
    assert min(quote.principal, quote.interest, quote.penalty) >= 0
    assert quote.principal == loan.principal

    result = engine.apply_repayment(loan, quote.amount, on)

    assert result.closed and engine.loan_status(result.state, on) == "closed"
    assert result.allocation.to_dict() == {"penalty": quote.penalty, "interest": quote.interest,
                                           "principal": quote.principal}
    assert result.state.outstanding_principal == 0
    assert all(i["status"] == "paid" and i["paid"] == i["total"] for i in engine.schedule_items(result.state))


class LoanLife:
    """Records what the test saw, to check the engine's penalty independently."""

    def __init__(self, state: engine.LoanState) -> None:
        self.state = state
        # per installment: [(from this day on, unpaid principal)]
        self.unpaid_since = {i.number: [(state.disbursed_on, i.unpaid_principal)] for i in state.installments}
        self.posted_days: list[tuple[int, date]] = []
        self.posted_amount: dict[int, int] = {}
        # Interest may only be charged for days that have come: the fen-days of principal
        # outstanding (due or not, an upper bound of what accrues interest) up to `counted_to`.
        self.outstanding = state.principal
        self.fen_days = 0
        self.counted_to = state.disbursed_on
        self.interest_paid = 0

    def repaid(self, on: date, allocation: engine.Allocation) -> None:
        """Check that `allocation` charges no interest for a day not yet come, then count it.
        A repayment on day t pays for the days before t; each installment's interest is
        rounded once, so the engine may be above the exact figure by half a fen per installment."""
        self.fen_days += self.outstanding * (on - self.counted_to).days
        self.counted_to = on
        self.interest_paid += allocation.interest
        accrued = Fraction(self.fen_days) * Fraction(str(self.state.apr)) / 365
        assert self.interest_paid <= accrued + Fraction(len(self.state.installments), 2), \
            f"{self.interest_paid} fen of interest by {on}, only {float(accrued):.2f} accrued"
        self.outstanding -= allocation.principal

    def note_principal(self, on: date) -> None:
        for i in self.state.installments:
            history = self.unpaid_since[i.number]
            if history[-1][1] != i.unpaid_principal:
                history.append((on, i.unpaid_principal))

    def unpaid_on(self, number: int, day: date) -> int:
        return [amount for since, amount in self.unpaid_since[number] if since <= day][-1]


def check_invariants(state: engine.LoanState) -> None:
    assert sum(i.principal for i in state.installments) == state.principal
    assert 0 <= state.outstanding_principal <= state.principal
    for i in state.installments:
        for value in (i.principal, i.interest, i.principal_paid, i.interest_paid, i.penalty_posted,
                      i.penalty_posted_paid, i.penalty_unposted, i.penalty_unposted_paid):
            assert isinstance(value, int) and value >= 0
        assert i.principal_paid <= i.principal and i.interest_paid <= i.interest
        assert i.penalty_posted_paid <= i.penalty_posted and i.penalty_unposted_paid <= i.penalty_unposted
    items = engine.schedule_items(state)
    assert all(item["total"] == item["principal"] + item["interest"] + item["penalty"] for item in items)
    assert all(0 <= item["paid"] <= item["total"] for item in items)


@given(loan=loans(max_term=12), data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_lives_never_go_negative_nor_post_a_day_twice(loan, data):
    life = LoanLife(loan)
    today = loan.disbursed_on
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        today += timedelta(days=data.draw(st.integers(0, 25), label="days pass"))
        # Close of business: for today, or late for an earlier day, up to 3 times
        for _run in range(data.draw(st.integers(0, 3), label="close of business runs")):
            business_date = today - timedelta(days=data.draw(st.integers(0, 4), label="late by"))
            result = engine.close_of_business(life.state, business_date)
            for posting in result.posted:
                assert posting.amount > 0
                life.posted_days.append((posting.installment, posting.day))
                life.posted_amount[posting.installment] = life.posted_amount.get(posting.installment, 0) + posting.amount
            life.state = engine.LoanState.from_dict(json.loads(json.dumps(result.state.to_dict())))
            check_invariants(life.state)
        if life.state.closed:
            break
        # Whatever happened, paying the payoff would close the loan that day
        quote = engine.payoff_quote(life.state, today)
        assert engine.apply_repayment(life.state, quote.amount, today).closed
        # A repayment: the next installment as shown, a random part of the payoff, or all of it
        if data.draw(st.booleans(), label="repays"):
            payoff = quote.amount
            shown = next(i["total"] - i["paid"] for i in engine.schedule_items(life.state)
                         if i["status"] != "paid")
            how = data.draw(st.sampled_from(["installment", "part", "payoff"]), label="how")
            amount = {"installment": min(shown, payoff), "payoff": payoff}.get(how) or data.draw(
                st.integers(1, payoff), label="amount")
            outstanding_before = life.state.outstanding_principal
            result = engine.apply_repayment(life.state, amount, today)
            allocation = result.allocation
            life.repaid(today, allocation)
            assert allocation.penalty + allocation.interest + allocation.principal == amount
            assert allocation.penalty == allocation.penalty_posted + allocation.penalty_unposted
            assert min(allocation.penalty, allocation.interest, allocation.principal) >= 0
            assert result.state.outstanding_principal == outstanding_before - allocation.principal
            assert result.closed == (amount == payoff)
            life.state = result.state
            life.note_principal(today)
            check_invariants(life.state)

    # No (installment, day) was ever posted twice, and the posted amounts are all the engine holds
    assert len(life.posted_days) == len(set(life.posted_days))
    for i in life.state.installments:
        assert i.penalty_posted == life.posted_amount.get(i.number, 0)
        # Every day of penalty counted (by close of business or a repayment) exactly once, at that
        # day's unpaid principal: recomputed here day by day
        if i.penalty_through is None:
            assert i.penalty == 0
            continue
        expected, day = 0, i.due_date + DAY
        while day <= i.penalty_through:
            expected += penalty_per_day(life.unpaid_on(i.number, day), life.state.apr)
            day += DAY
        assert i.penalty == expected
    if not life.state.closed:
        on = max(today, life.state.last_activity)
        closing = engine.apply_repayment(life.state, engine.payoff_quote(life.state, on).amount, on)
        assert closing.closed and closing.state.outstanding_principal == 0
        life.repaid(on, closing.allocation)


@given(loan=loans(), data=st.data())
@settings(max_examples=150)
def test_days_past_due_counts_from_the_oldest_unpaid_installment(loan, data):
    # (at 0 % an interest-first installment owes nothing, so it counts as paid)
    first_due = next(i.due_date for i in loan.installments if i.principal + i.interest)
    on = first_due + timedelta(days=data.draw(st.integers(-20, 60)))
    if on < loan.disbursed_on:
        on = loan.disbursed_on
    assert engine.days_past_due(loan, on) == max(0, (on - first_due).days)
    assert engine.loan_status(loan, on) == ("overdue" if (on - first_due).days >= 2 else "active")
