"""Disbursement sweep at scale: 10,000 scheduled loans, 100 of them due (moto, in-process).

Measures the items the sweep reads per loan it queues (issue 5: about 100 items, not 10,000)
and its run time in moto. `python -m bench.sweep_bench` prints the figures as JSON.
"""
from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from bench.common import counting_reads, emit, loan_record, moto_account, size

TOTAL = 10_000
DUE = 100


def measure(total: int | None = None, due: int | None = None) -> dict:
    total = total or size("BENCH_LOANS", TOTAL, 100)
    due = due or size("BENCH_DUE", DUE, 5)
    with moto_account():
        from chalicelib.loans import disbursement
        from chalicelib.loans.models import LoanRecord
        from chalicelib.loans.service import iso_utc, shard_for

        now = datetime(2027, 3, 1, 2, 0, tzinfo=timezone.utc)
        with LoanRecord.batch_write() as batch:
            for n in range(total):
                loan_id = str(uuid.uuid4())
                when = now - timedelta(minutes=1) if n < due else now + timedelta(days=1 + n % 6)
                batch.save(loan_record(loan_id, n, status="scheduled", term_months=12,
                                       disburse_at=iso_utc(when), disburse_shard=shard_for(loan_id),
                                       created_at=iso_utc(now), state="{}"))
        with counting_reads() as reads:
            started = time.perf_counter()
            result = disbursement.sweep(now)
            elapsed_ms = (time.perf_counter() - started) * 1000
    return {"loans": total, "due": due, "queued": result["queued"], "items_read": reads["items"],
            "read_calls": reads["calls"], "items_read_per_queued": reads["items"] / max(1, result["queued"]),
            "ms": round(elapsed_ms)}


def main() -> int:
    return emit(measure())


if __name__ == "__main__":
    sys.exit(main())
