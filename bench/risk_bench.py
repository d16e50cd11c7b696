"""Credit scoring latency in process (figures only; never asserted in tests).

    .venv/bin/python -m bench.risk_bench            # prints JSON; 5,000 applications

Per application: request JSON -> applicant dict -> model inputs -> ONNX session -> reason codes
(and, separately, the same plus the challenger's shadow score and the policy's decision, as
`risk.service.decide` does them), p50/p99 over N runs after a warm-up, with applicants that
vary so no cache flatters the figure. The models are loaded before the timed loop; their load
(the cold start of a scoring container) is measured by `bench.cold_start`.
Targets: p99 <= 0.5 ms in-process with the challenger on (issues 4 and 15); the shadow score
adds < 0.2 ms p99 (issue 15: `shadow` is the challenger's run alone).
"""
from __future__ import annotations

import json
import random
import sys
import time
from datetime import datetime, timezone

from bench.common import emit, size, summary

RUNS = 5_000


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


def measure(runs: int | None = None) -> dict:
    runs = runs or size("BENCH_RISK_RUNS", RUNS, 500)
    from chalicelib.risk import policy, reasons, scorer, service
    from chalicelib.risk.features import features_from_application

    product = policy.ProductTerms("revolving-credit", 50_000, 20_000_000, "0.0720", "0.2400")
    now = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)
    requests = bodies(runs)
    scorer.model_status()  # load outside the timed loop (that is the cold start, measured apart)
    challenger = scorer.challenger_info()
    if challenger is None:
        raise SystemExit("no challenger registered (chalicelib/risk/artifacts/challenger/)")

    def score_only(raw: str) -> list:
        body = json.loads(raw)
        inputs = features_from_application(body["applicant"], body["amount"], body["term_months"],
                                           False)
        return reasons.model_reasons(scorer.score(inputs).contributions)

    def shadow_only(raw: str):  # noqa: ANN202
        body = json.loads(raw)
        inputs = features_from_application(body["applicant"], body["amount"], body["term_months"],
                                           False)
        return scorer.shadow_score(inputs)

    def decide(raw: str) -> policy.Decision:
        body = json.loads(raw)
        inputs = features_from_application(body["applicant"], body["amount"], body["term_months"],
                                           False)
        inp = policy.PolicyInput(product=product, requested_amount=body["amount"],
                                 term_months=body["term_months"],
                                 monthly_income=body["applicant"]["monthly_income"], age=35,
                                 identity_verified=True, outstanding_principal=0, live_loans=0,
                                 overdue_loans=0, last_decline_on=None, now=now)
        decision = policy.decide(inp, scorer.score(inputs))
        service._shadow(inputs, inp, decision)  # the challenger, exactly as the service runs it
        return decision

    results: dict = {"runs": runs, "challenger": challenger["model_version"]}
    for name, fn in (("score", score_only), ("shadow", shadow_only), ("decide", decide)):
        for raw in requests[:500]:
            fn(raw)  # warm-up
        times = []
        for raw in requests:
            t = time.perf_counter()
            fn(raw)
            times.append((time.perf_counter() - t) * 1000)
        results[name] = summary(times, digits=3)
    return results


def main() -> int:
    return emit(measure())


if __name__ == "__main__":
    sys.exit(main())
