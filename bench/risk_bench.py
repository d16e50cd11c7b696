"""Credit scoring latency and cold start (prints figures; never asserted in tests).

    .venv/bin/python -m bench.risk_bench            # RISK_BENCH_RUNS=5000 RISK_BENCH_COLD=15

- in-process, per application: request JSON -> applicant dict -> model inputs -> ONNX session
  -> reason codes (and, separately, the same plus the policy's decision), p50/p99 over N runs
  after a warm-up, with applicants that vary so no cache flatters the figure;
- cold start: a fresh interpreter imports the scorer and loads + verifies the model (SHA-256,
  card, self-check), which is what the first scoring request of a Lambda container pays.
Targets (issue 4): p99 <= 0.5 ms in-process, cold start <= 1 s.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RUNS = int(os.environ.get("RISK_BENCH_RUNS", "5000"))
COLD_RUNS = int(os.environ.get("RISK_BENCH_COLD", "15"))

COLD_PROBE = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from chalicelib.risk import scorer
t1 = time.perf_counter()
ok, detail = scorer.model_status()
t2 = time.perf_counter()
assert ok, detail
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bodies(n: int) -> list[str]:
    rng = random.Random(7)
    out = []
    for _ in range(n):
        out.append(json.dumps({
            "product_id": "revolving-credit", "amount": rng.randrange(50_000, 20_000_000, 100),
            "term_months": rng.choice([3, 6, 9, 12, 18, 24]), "purpose": "家装",
            "applicant": {"monthly_income": rng.randrange(0, 5_000_000),
                          "monthly_expenses": rng.randrange(0, 1_000_000),
                          "assets": rng.randrange(0, 500_000_000), "debt": rng.randrange(0, 50_000_000),
                          "job_type": rng.choice(["fixed", "freelance", "partime", "others"]),
                          "job_seniority_years": rng.randrange(0, 40),
                          "home": rng.choice(["owner", "rent", "parents", "priv", "other"]),
                          "marital_status": rng.choice(["single", "married", "widow", "separated",
                                                        "divorced"])}}))
    return out


def in_process() -> dict:
    from chalicelib.risk import policy, reasons, scorer
    from chalicelib.risk.features import features_from_application

    product = policy.ProductTerms("revolving-credit", 50_000, 20_000_000, "0.0720", "0.2400")
    now = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)
    requests = bodies(RUNS)
    scorer.model_status()  # load outside the timed loop (that is the cold start, measured apart)

    def score_only(raw: str) -> list:
        body = json.loads(raw)
        inputs = features_from_application(body["applicant"], body["amount"], body["term_months"],
                                           35, False)
        return reasons.model_reasons(scorer.score(inputs).contributions)

    def decide(raw: str) -> policy.Decision:
        body = json.loads(raw)
        inputs = features_from_application(body["applicant"], body["amount"], body["term_months"],
                                           35, False)
        inp = policy.PolicyInput(product=product, requested_amount=body["amount"],
                                 term_months=body["term_months"],
                                 monthly_income=body["applicant"]["monthly_income"], age=35,
                                 identity_verified=True, outstanding_principal=0, live_loans=0,
                                 overdue_loans=0, last_decline_on=None, now=now)
        return policy.decide(inp, scorer.score(inputs))

    results = {}
    for name, fn in (("json->features->onnx->reasons", score_only),
                     ("... + policy decision", decide)):
        for raw in requests[:500]:
            fn(raw)  # warm-up
        times = []
        for raw in requests:
            t = time.perf_counter()
            fn(raw)
            times.append((time.perf_counter() - t) * 1000)
        results[name] = (statistics.median(times), percentile(times, 0.99), max(times))
    return results


def cold_start() -> tuple[list[float], list[float]]:
    imports, loads = [], []
    env = {k: v for k, v in os.environ.items() if k != "RISK_MODEL_DIR"}
    for _ in range(COLD_RUNS):
        out = subprocess.run([sys.executable, "-c", COLD_PROBE.format(root=str(ROOT))], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        imports.append(float(out[0]))
        loads.append(float(out[1]))
    return imports, loads


def main() -> int:
    print(f"credit scoring, in process, {RUNS} applications (ms)")
    print(f"{'path':<34} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, (p50, p99, worst) in in_process().items():
        print(f"{name:<34} {p50:8.3f} {p99:8.3f} {worst:8.3f}")
    imports, loads = cold_start()
    totals = [a + b for a, b in zip(imports, loads)]
    print(f"\ncold start in a fresh interpreter, {COLD_RUNS} runs (ms)")
    print(f"{'step':<34} {'p50':>8} {'p99':>8}")
    for name, values in (("import chalicelib.risk.scorer", imports),
                         ("load + verify model (ort import)", loads), ("total", totals)):
        print(f"{name:<34} {statistics.median(values):8.1f} {percentile(values, 0.99):8.1f}")
    print("\ntargets: in-process p99 <= 0.5 ms, cold start <= 1000 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
