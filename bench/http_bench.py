"""Latency over HTTP on the local stack (`make run`'s server in a subprocess, loopback only):
POST /v1/applications, POST /v1/loans and POST /v1/loans/{id}/repayments, p50/p99, plus
applications per second from one client. `python -m bench.http_bench` (BENCH_N sets N)."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
N = int(os.environ.get("BENCH_N", "200"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    from tests.e2e.test_local_stack import free_port, wait_for
    from tests.journeys import GOOD_APPLICANT, HttpApi, card_ending, ready_borrower, with_key
    import requests

    api_port, moto_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(API_PORT=str(api_port), MOTO_PORT=str(moto_port), OUTBOX_PATH=str(work / "outbox.jsonl"),
               SMS_QUIET_HOURS="", POWERTOOLS_LOG_LEVEL="WARNING")
    with (work / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "infra.local_stack", "serve"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait_for(lambda: _up(requests, base), timeout=120)
        api = HttpApi(base)
        me = ready_borrower(api, work / "outbox.jsonl", openid="bench-1", phone="13500003333",
                            card=card_ending("2468"))
        body = {"product_id": "revolving-credit", "amount": 2_000_000, "term_months": 12,
                "purpose": "bench", "applicant": GOOD_APPLICANT}
        api.post("/v1/applications", body, with_key(me["headers"]))  # warm: loads the model
        decide = []
        started = time.perf_counter()
        for _ in range(N):
            t = time.perf_counter()
            status, decision = api.post("/v1/applications", body, with_key(me["headers"]))
            decide.append((time.perf_counter() - t) * 1000)
            assert status == 201, decision
        rate = N / (time.perf_counter() - started)
        draws, loans = [], []
        for _ in range(max(10, N // 4)):
            t = time.perf_counter()
            status, loan = api.post("/v1/loans", {"application_id": decision["application_id"],
                                                  "amount": 50_000, "term_months": 3,
                                                  "repayment_method": "equal_installment",
                                                  "bank_card_id": me["card_id"]}, with_key(me["headers"]))
            draws.append((time.perf_counter() - t) * 1000)
            assert status == 201, loan
            loans.append(loan["loan_id"])
        wait_for(lambda: api.get(f"/v1/loans/{loans[-1]}", me["headers"])[1]["status"] == "active", timeout=60)
        repays = []
        for loan_id in loans:
            wait_for(lambda: api.get(f"/v1/loans/{loan_id}", me["headers"])[1]["status"] == "active", timeout=60)
            t = time.perf_counter()
            status, paid = api.post(f"/v1/loans/{loan_id}/repayments", {"amount": 10_000}, with_key(me["headers"]))
            repays.append((time.perf_counter() - t) * 1000)
            assert status == 201, paid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    for name, values in (("POST /v1/applications", decide), ("POST /v1/loans", draws),
                         ("POST /v1/loans/{id}/repayments", repays)):
        print(f"| {name} | n={len(values)} | p50 {statistics.median(values):.1f} ms | p99 {pct(values, 0.99):.1f} ms |")
    print(f"| applications per second, one client, one process | {rate:.0f} |")
    return 0


def _up(requests, base: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        return requests.get(f"{base}/health", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


if __name__ == "__main__":
    sys.exit(main())
