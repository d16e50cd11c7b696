"""The ops portfolio at 100 and 10,000 loans (moto, in-process): DynamoDB items read by one
`GET /v1/ops/portfolio` (issue 17: constant, from the counter shards) and by the nightly
recount that checks them (grows with the book, once a night).

The book is written straight into the tables, its counters too (as the writes would have left
them: the routes' tests check that every write moves them); the figures are the reads.
`python -m bench.portfolio_bench` prints them as JSON.
"""
from __future__ import annotations

import random
import sys
import time
import uuid
from datetime import datetime, timezone

from bench.common import counting_reads, emit, loan_record, moto_account, size, summary

SIZES = (100, 10_000)
STATUS_MIX = (("active", 70), ("overdue", 5), ("closed", 20), ("scheduled", 3), ("failed", 2))


def measure_one(loans: int) -> dict:
    with moto_account():
        from chalicelib.loans import aggregates, ops
        from chalicelib.loans.models import LoanRecord

        rng = random.Random(loans)
        statuses = [s for s, weight in STATUS_MIX for _ in range(weight)]
        shards: dict[int, dict[str, int]] = {}
        with LoanRecord.batch_write() as batch:
            for n in range(loans):
                status = rng.choice(statuses)
                outstanding = 0 if status in ("closed", "failed") else 300_000
                dpd = None if status not in aggregates.LIVE else ("0" if status == "active" else "1-30")
                batch.save(loan_record(str(uuid.uuid4()), n, status=status, outstanding_principal=outstanding,
                                       dpd_bucket=dpd, term_months=3, disburse_at="2027-01-15T00:00:00Z",
                                       created_at="2027-01-15T00:00:00Z", state="{}"))
                cell = shards.setdefault(rng.randrange(aggregates.SHARDS), {})
                for name, delta in aggregates._place(status, dpd, outstanding).items():
                    cell[name] = cell.get(name, 0) + delta
        for shard in range(aggregates.SHARDS):  # a running book has written every shard
            aggregates.PortfolioShardRecord(shard=shard, **shards.get(shard, {})).save()

        now = datetime(2027, 2, 1, 2, tzinfo=timezone.utc)
        timings = []
        for _ in range(50):
            with counting_reads() as reads:
                started = time.perf_counter()
                report = ops.portfolio(now)
                timings.append((time.perf_counter() - started) * 1000)
        assert sum(c["count"] for c in report["by_status"].values()) == loans
        with counting_reads() as recount_reads:
            started = time.perf_counter()
            assert aggregates.drift(aggregates.read(), aggregates.recount()) == []
            recount_ms = (time.perf_counter() - started) * 1000
    return {"loans": loans, "items_read": reads["items"], "read_calls": reads["calls"],
            "request": summary(timings), "recount_items_read": recount_reads["items"],
            "recount_calls": recount_reads["calls"], "recount_ms": round(recount_ms)}


def main() -> int:
    sizes = [size("BENCH_PORTFOLIO_SMALL", SIZES[0], 10), size("BENCH_PORTFOLIO_LOANS", SIZES[1], 200)]
    return emit({"sizes": [measure_one(n) for n in sizes]})


if __name__ == "__main__":
    sys.exit(main())
