"""What every benchmark shares: sizes, percentiles, the in-process moto account, read counting.

Each bench module has a `measure() -> dict` and a `main()` that prints that dict as JSON, so
`python -m bench.<module>` runs one part alone and `bench.run` (`make bench`) runs them all in
fresh interpreters and turns their dicts into the one report.

`BENCH_SCALE` (default 1; `make bench QUICK=1` sets 0.1) shrinks every size for a smoke check;
each size also has its own variable (BENCH_LOANS, BENCH_LATE, BENCH_N, ...), read by `size()`.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

READ_OPERATIONS = ("Query", "Scan", "GetItem", "BatchGetItem")


def scale() -> float:
    return float(os.environ.get("BENCH_SCALE", "1"))


def scaled(full: int, minimum: int = 1) -> int:
    """`full` at BENCH_SCALE=1, shrunk proportionally (never below `minimum`) for a smoke run."""
    return max(minimum, round(full * scale()))


def size(variable: str, full: int, minimum: int = 1) -> int:
    """The environment's `variable` if set, else `full` scaled by BENCH_SCALE."""
    return int(os.environ.get(variable) or scaled(full, minimum))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values_ms: list[float], digits: int = 1) -> dict[str, float]:
    """p50 / p99 / max of a list of milliseconds (nearest-rank p99, so n >= 100 is meaningful)."""
    return {"n": len(values_ms), "p50": round(statistics.median(values_ms), digits),
            "p99": round(percentile(values_ms, 0.99), digits), "max": round(max(values_ms), digits)}


def emit(result: dict[str, Any]) -> int:
    """A bench module's `main()`: its figures as JSON on stdout (what `bench.run` parses)."""
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def clean_env() -> dict[str, str]:
    """The environment without AWS settings, so nothing here can reach a real account."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@contextmanager
def moto_account() -> Iterator[None]:
    """A fresh in-process moto account with the local stage's tables, queues and products."""
    for var in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[var]
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_TRACE_DISABLED="true")
    from infra.stage import apply_stage_env
    apply_stage_env("local")
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    import app  # noqa: F401 - defines the tables from the stage's names
    from infra.bootstrap import fresh_moto_account

    with fresh_moto_account(local_visibility=None):
        yield


@contextmanager
def counting_reads() -> Iterator[dict[str, int]]:
    """Count the DynamoDB read calls and the items they return, whichever code makes them."""
    import botocore.client

    counts = {"calls": 0, "items": 0}
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):  # type: ignore[no-untyped-def]
        answer = original(self, operation, params)
        if operation in READ_OPERATIONS:
            counts["calls"] += 1
            if operation == "BatchGetItem":
                counts["items"] += sum(len(items) for items in answer.get("Responses", {}).values())
            else:
                counts["items"] += answer.get("Count", 1 if "Item" in answer else 0)
        return answer

    botocore.client.BaseClient._make_api_call = counting
    try:
        yield counts
    finally:
        botocore.client.BaseClient._make_api_call = original


def loan_record(loan_id: str, n: int, **fields: Any) -> Any:
    """A LoanRecord as the seeding of a large portfolio needs it; `fields` override the defaults."""
    from chalicelib.loans.models import LoanRecord

    values: dict[str, Any] = dict(
        loan_id=loan_id, user_id=f"u{n}", application_id="a", product_id="revolving-credit",
        principal=300_000, outstanding_principal=300_000, apr="0.1800",
        repayment_method="equal_installment", bank_card_id="c", card_last4="1234")
    values.update(fields)
    return LoanRecord(**values)
