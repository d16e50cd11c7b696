"""Disbursement sweep at scale: 10,000 scheduled loans, 100 of them due (moto, in-process).

Reports the items the sweep reads per loan it queues (target: about 1, not 10,000/100) and
its run time. `python -m bench.sweep_bench` (or `make bench`).
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(var, None)
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")

from infra.stage import apply_stage_env  # noqa: E402

apply_stage_env("local")
import moto  # noqa: E402,F401
from moto import mock_aws  # noqa: E402

TOTAL = int(os.environ.get("BENCH_LOANS", "10000"))
DUE = int(os.environ.get("BENCH_DUE", "100"))


def main() -> int:
    import botocore.client

    import app  # noqa: F401
    from chalicelib.core import aws
    from chalicelib.loans import disbursement
    from chalicelib.loans.models import LoanRecord
    from chalicelib.loans.service import iso_utc, shard_for
    from infra.bootstrap import bootstrap

    with mock_aws():
        aws.reset()
        bootstrap("local")
        now = datetime(2027, 3, 1, 2, 0, tzinfo=timezone.utc)
        with LoanRecord.batch_write() as batch:
            for n in range(TOTAL):
                loan_id = str(uuid.uuid4())
                when = now - timedelta(minutes=1) if n < DUE else now + timedelta(days=1 + n % 6)
                batch.save(LoanRecord(
                    loan_id=loan_id, user_id=f"u{n}", application_id="a", product_id="p",
                    status="scheduled", principal=100_000, outstanding_principal=100_000, apr="0.1800",
                    repayment_method="equal_installment", term_months=12, bank_card_id="c",
                    card_last4="1234", disburse_at=iso_utc(when), disburse_shard=shard_for(loan_id),
                    created_at=iso_utc(now), state="{}"))
        returned = {"items": 0, "calls": 0}
        original = botocore.client.BaseClient._make_api_call

        def counting(self, operation, params):  # type: ignore[no-untyped-def]
            answer = original(self, operation, params)
            if operation in ("Query", "Scan", "GetItem", "BatchGetItem"):
                returned["calls"] += 1
                returned["items"] += answer.get("Count", 1 if "Item" in answer else 0)
            return answer

        botocore.client.BaseClient._make_api_call = counting
        try:
            started = time.perf_counter()
            result = disbursement.sweep(now)
            elapsed = (time.perf_counter() - started) * 1000
        finally:
            botocore.client.BaseClient._make_api_call = original
    print(f"| sweep | {TOTAL} scheduled, {DUE} due | queued {result['queued']} | items read "
          f"{returned['items']} in {returned['calls']} reads | {returned['items'] / max(1, result['queued']):.2f} "
          f"items per loan queued | {elapsed:.0f} ms (moto) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
