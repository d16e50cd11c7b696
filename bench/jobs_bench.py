"""Daily jobs at scale (moto, in-process): 10,000 active loans paid out over 100 days.

Reports for the reminders job the installments read per reminder queued (target: about 1) and
its run time, and the close-of-business run time. `python -m bench.jobs_bench`.
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from bench.sweep_bench import ROOT  # noqa: F401 - sets up the environment for moto
from moto import mock_aws

LOANS = int(os.environ.get("BENCH_LOANS", "10000"))
SPREAD_DAYS = 100  # about 100 loans per disbursement day, so about 1 % are late on the day
# Note: moto's TransactWriteItems deep-copies the tables for rollback, so close-of-business
# time here grows with the table size; DynamoDB's does not. Items read is the figure to watch.


def main() -> int:
    import app  # noqa: F401
    from chalicelib.core import aws
    from chalicelib.loans import schedules
    from chalicelib.loans.models import LoanRecord
    from chalicelib.loans.service import iso_utc
    from chalicelib.repay import engine, service
    from chalicelib.repay.models import InstallmentRecord
    from infra.bootstrap import bootstrap

    business_date = date(2027, 2, 17)  # loans paid out on Jan 15 are two days past due
    with mock_aws():
        aws.reset()
        bootstrap("local")
        states = {}
        for day in range(SPREAD_DAYS):  # one state per disbursement day, shared by its loans
            state = engine.new_loan(principal=300_000, apr=Decimal("0.18"), term_months=3,
                                    method="equal_installment", disbursed_on=date(2027, 1, 15) + timedelta(days=day))
            states[day] = json.dumps(state.to_dict())
        with LoanRecord.batch_write() as loans, InstallmentRecord.batch_write() as index:
            for n in range(LOANS):
                loan_id, state = str(uuid.uuid4()), states[n % SPREAD_DAYS]
                loans.save(LoanRecord(
                    loan_id=loan_id, user_id=f"u{n}", application_id="a", product_id="revolving-credit",
                    status="active", principal=300_000, outstanding_principal=300_000, apr="0.1800",
                    repayment_method="equal_installment", term_months=3, bank_card_id="c", card_last4="1234",
                    disburse_at=iso_utc(datetime(2027, 1, 15, tzinfo=timezone.utc)),
                    created_at=iso_utc(datetime(2027, 1, 15, tzinfo=timezone.utc)), state=state))
                for item in schedules.index_items(loan_id, f"u{n}", "revolving-credit", state):
                    index.save(item)
        started = time.perf_counter()
        reminders = service.send_reminders(business_date)
        reminders_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        closed = service.close_of_business(business_date, datetime(2027, 2, 16, 16, 5, tzinfo=timezone.utc))
        cob_ms = (time.perf_counter() - started) * 1000
    ratio = reminders["installments_read"] / max(1, reminders["queued"])
    print(f"| reminders job | {LOANS} active loans | {reminders['queued']} queued | "
          f"{reminders['installments_read']} installments read | {ratio:.2f} read per reminder | "
          f"{reminders_ms:.0f} ms (moto) |")
    print(f"| close of business | {LOANS} active loans | {closed['loans']} loans late | "
          f"{closed['installments_read']} installments read | {closed['penalty_days_posted']} penalty days "
          f"posted | {cob_ms:.0f} ms (moto) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
