"""Daily jobs at scale (moto, in-process): 10,000 active loans, 50 of them late (BENCH_LATE).

Loans are paid out over 100 days (about 100 a day), so on the business date about 400 have an
installment on a reminder day (D-3, D-1, D, D+1); `late` of them were paid out on the first day
and are two days past due. Measures, for reminders and close of business, the items read from
DynamoDB per item acted on (issue 6: about as many as it sends) and the run time in moto.
`python -m bench.jobs_bench` prints the figures as JSON.

moto's TransactWriteItems deep-copies every table it touches for rollback, once per item of the
transaction, so each late loan's close-of-business transaction copies the whole portfolio and
the run time grows with the table (about 4 s a late loan at 10,000 loans, over 7 minutes for
100); DynamoDB does not do that. Hence `late` is kept modest; the figure that carries over to
AWS is the items read per late loan, which does not depend on how many are late.
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from bench.common import counting_reads, emit, loan_record, moto_account, size

LOANS = 10_000
LATE = 50  # each late loan costs about 4 s of moto's table copying at 10,000 loans
SPREAD_DAYS = 100
BUSINESS_DATE = date(2027, 2, 17)  # loans paid out on Jan 15 are due Feb 15: two days past due
FIRST_PAYOUT = date(2027, 1, 15)


def measure(loans: int | None = None, late: int | None = None) -> dict:
    loans = loans or size("BENCH_LOANS", LOANS, 200)
    late = late or size("BENCH_LATE", LATE, 5)
    with moto_account():
        from chalicelib.loans import schedules
        from chalicelib.loans.models import LoanRecord
        from chalicelib.loans.service import iso_utc
        from chalicelib.money import engine
        from chalicelib.repay import service
        from chalicelib.repay.models import InstallmentRecord

        states = [json.dumps(engine.new_loan(principal=300_000, apr=Decimal("0.18"), term_months=3,
                                             method="equal_installment",
                                             disbursed_on=FIRST_PAYOUT + timedelta(days=day),
                                             apr_cap=Decimal("0.24")).to_dict())
                  for day in range(SPREAD_DAYS)]  # one state per payout day, shared by its loans
        paid_out = iso_utc(datetime(2027, 1, 15, tzinfo=timezone.utc))
        started = time.perf_counter()
        with LoanRecord.batch_write() as loan_batch, InstallmentRecord.batch_write() as index:
            for n in range(loans):
                loan_id = str(uuid.uuid4())
                state = states[0 if n < late else 1 + (n - late) % (SPREAD_DAYS - 1)]
                loan_batch.save(loan_record(loan_id, n, status="active", term_months=3,
                                            disburse_at=paid_out, created_at=paid_out, state=state))
                for item in schedules.index_items(loan_id, f"u{n}", "revolving-credit", state):
                    index.save(item)
        seed_s = time.perf_counter() - started

        with counting_reads() as reads:
            started = time.perf_counter()
            reminders = service.send_reminders(BUSINESS_DATE)
            reminders_ms = (time.perf_counter() - started) * 1000
        reminders.update(items_read=reads["items"], read_calls=reads["calls"], ms=round(reminders_ms),
                         items_read_per_acted=reads["items"] / max(1, reminders["queued"]),
                         index_items_per_acted=reminders["installments_read"] / max(1, reminders["queued"]))

        with counting_reads() as reads:
            started = time.perf_counter()
            closed = service.close_of_business(BUSINESS_DATE, datetime(2027, 2, 16, 16, 5, tzinfo=timezone.utc))
            cob_ms = (time.perf_counter() - started) * 1000
        closed.update(items_read=reads["items"], read_calls=reads["calls"], ms=round(cob_ms),
                      items_read_per_acted=reads["items"] / max(1, closed["loans"]),
                      index_items_per_acted=closed["installments_read"] / max(1, closed["loans"]))
    return {"loans": loans, "installments": loans * 3, "late": late, "seed_s": round(seed_s, 1),
            "reminders": reminders, "close_of_business": closed}


def main() -> int:
    return emit(measure())


if __name__ == "__main__":
    sys.exit(main())
