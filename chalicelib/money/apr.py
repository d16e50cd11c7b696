"""All-in annual rate of a product by the IRR method, fees included (pure).

The rate is the daily internal rate of return of the borrower's cash flows times 365: the
borrower receives the principal less upfront fees on the disbursement day and pays each
installment on its due date. Interest in this project accrues daily on a 365-day year, so
with no fees the all-in rate never exceeds the loan's APR.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, localcontext

REFERENCE_DISBURSEMENT = date(2027, 1, 31)  # month ends and February: the least favourable days


def irr_annual(cash_flows: list[tuple[int, int]]) -> Decimal:
    """Annual rate 365·d where d solves Σ amount / (1+d)^day = 0; `cash_flows` are
    (day offset, fen), the first negative (money out to the borrower). 40 significant digits:
    an estimate of a rate, compared with the cap, never a posted amount."""
    with localcontext() as ctx:
        ctx.prec = 40

        def npv(daily: Decimal) -> Decimal:
            base = 1 + daily
            return sum((Decimal(amount) / base ** day for day, amount in cash_flows), Decimal(0))

        low, high = Decimal(0), Decimal("0.01")  # 0 % .. 365 % a year
        if npv(low) <= 0:
            return Decimal(0)
        for _ in range(70):  # bisection to ~1e-23 a day
            mid = (low + high) / 2
            low, high = (mid, high) if npv(mid) > 0 else (low, mid)
        return +((low + high) / 2 * 365)


def all_in_apr(principal: int, apr: Decimal, term_months: int, method: str,
               upfront_fee: int = 0, disbursed_on: date = REFERENCE_DISBURSEMENT) -> Decimal:
    from chalicelib.money.engine import build_schedule
    schedule = build_schedule(principal, apr, term_months, method, disbursed_on)
    flows = [(0, -(principal - upfront_fee))]
    flows += [((i.due_date - disbursed_on).days, i.total) for i in schedule.installments]
    return irr_annual(flows)
