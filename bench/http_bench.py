"""Latency and throughput over HTTP on the local stack (`make run`'s server in a subprocess).

- latency, one client: POST /v1/applications (N=200), POST /v1/loans (N/4) and
  POST /v1/loans/{id}/repayments (N/4), p50/p99, spread over a pool of ready borrowers so no
  borrower's history grows past what a real one has (nor past 3 live loans);
- sustained applications per second on one process: C clients (1, then BENCH_CLIENTS=4, each a
  thread with its own connection and borrowers) post applications back to back for a fixed
  time (BENCH_SECONDS=30); completed decisions (201: approve, review or decline) per second.

The stack is the local one: moto's server, the chalice local server and the event pump share
one Python process (one GIL) on loopback, so every DynamoDB call is an HTTP round trip into
moto inside the same interpreter. `python -m bench.http_bench` prints the figures as JSON.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.common import emit, size, summary

BORROWERS = 8  # below the sandbox's SMS limit of 30 codes per 10 minutes per IP
LIVE_LOANS = 3  # a borrower's live loans at most (CONTRACT.md, credit line: TOO_MANY_LOANS)


@contextmanager
def local_stack() -> Iterator[tuple[str, Path, Path]]:
    """The local stack on free loopback ports: (base URL, outbox file, its log). The log is kept
    when the run fails."""
    with local_stack_proc() as (base, outbox, log, _proc):
        yield base, outbox, log


@contextmanager
def local_stack_proc() -> Iterator[tuple[str, Path, Path, Any]]:
    """`local_stack()` and the stack's process (its memory is measured)."""
    from tests.e2e.conftest import serving

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    finished = False
    try:
        with serving(work, timeout=120, POWERTOOLS_LOG_LEVEL="WARNING") as stack:
            yield stack["base"], stack["outbox"], stack["log"], stack["proc"]
        finished = True
    finally:
        if finished:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"bench: the local stack's log is kept in {work}", file=sys.stderr)


def logged_errors(log: Path, most: int = 5) -> list[str]:
    """The stack's ERROR log lines, each as "route: message: the exception's last line" (the
    first `most` distinct ones, with a count), so the report says why a request failed."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"level":"ERROR"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        trace = (entry.get("exception") or "").strip().splitlines()
        frames = [t.strip() for t in trace if t.strip().startswith('File "')]
        ours = [f for f in frames if "site-packages" not in f and "/lib/python3" not in f]
        theirs = [f for f in frames if "site-packages" in f]
        where = "".join(f" [{label}: {picked[-1][:160]}]" for label, picked in
                        (("our last frame", ours), ("library's first frame", theirs[:1]), ("last frame", frames))
                        if picked)
        cause = (trace[-1][:300] if trace else "") + where
        key = f"{entry.get('route') or entry.get('function', '?')}: {entry.get('message')}: {cause}"
        counts[key] = counts.get(key, 0) + 1
    return [f"{n}x {key}" for key, n in list(counts.items())[:most]]


class Route:
    """One route's latencies (successful calls only) and its failures as "status code"."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.errors: list[str] = []
        self.outcomes: dict[str, int] = {}  # the answers' `status` (approved, declined, ...)

    def call(self, request: Callable[[], tuple[int, Any]], expect: int = 201) -> Any:
        started = time.perf_counter()
        status, body = request()
        elapsed = (time.perf_counter() - started) * 1000
        if status == expect:
            self.ms.append(elapsed)
            outcome = body.get("status") if isinstance(body, dict) else None
            if outcome:
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.errors.append(f"{status} {error.get('code', '')}".strip())
        return None

    def figures(self) -> dict:
        return {**(summary(self.ms) if self.ms else {"n": 0}), "errors": len(self.errors),
                "error_codes": sorted(set(self.errors)), "outcomes": self.outcomes}


def application(applicant: dict) -> dict:
    return {"product_id": "revolving-credit", "amount": 2_000_000, "term_months": 12,
            "purpose": "bench", "applicant": applicant}


def ready_borrowers(base: str, outbox: Path, count: int) -> list[dict]:
    from tests.journeys import HttpApi, card_ending, ready_borrower

    return [{**ready_borrower(HttpApi(base), outbox, openid=f"bench-{i}", phone=f"1350000{3000 + i}",
                              card=card_ending("2468"), born=date(1980, 1, 1) + timedelta(days=400 * i)),
             "openid": f"bench-{i}"} for i in range(count)]


def latency(base: str, people: list[dict], n: int) -> dict:
    from tests.journeys import GOOD_APPLICANT, HttpApi, with_key

    api = HttpApi(base)
    body = application(GOOD_APPLICANT)
    for me in people:  # warm-up: the first one loads the model
        api.post("/v1/applications", body, with_key(me["headers"]))
    decide, draw, repay = Route(), Route(), Route()
    approved: dict[str, str] = {}
    for i in range(n):
        me = people[i % len(people)]
        decision = decide.call(lambda: api.post("/v1/applications", body, with_key(me["headers"])))
        if decision and decision["status"] == "approved":
            approved[me["user_id"]] = decision["application_id"]
    # Drawdowns round-robin over the borrowers, in rounds of at most LIVE_LOANS each (a draw
    # at 3 live loans is refused); after its timed repayment each loan is paid off (untimed),
    # so the next round draws again.
    not_disbursed: dict[str, str] = {}
    drawers = [me for me in people if me["user_id"] in approved]
    todo = max(10, n // 4)
    while todo > 0:
        drawn: list[tuple[dict, str]] = []
        for k in range(min(todo, LIVE_LOANS * len(drawers))):
            me = drawers[k % len(drawers)]
            terms = {"application_id": approved[me["user_id"]], "amount": 50_000, "term_months": 3,
                     "repayment_method": "equal_installment", "bank_card_id": me["card_id"]}
            loan = draw.call(lambda: api.post("/v1/loans", terms, with_key(me["headers"])))
            if loan:
                drawn.append((me, loan["loan_id"]))
        todo -= max(1, len(drawn))
        for me, loan_id in drawn:  # disbursed by the stack's pump: wait (untimed) until active
            status = disbursed(api, loan_id, me["headers"])
            if status != "active":
                not_disbursed[loan_id] = status
                continue
            repay.call(lambda: api.post(f"/v1/loans/{loan_id}/repayments", {"amount": 10_000},
                                        with_key(me["headers"])))
            payoff = api.get(f"/v1/loans/{loan_id}/payoff", me["headers"])[1]
            api.post(f"/v1/loans/{loan_id}/repayments", {"amount": payoff["amount"]},
                     with_key(me["headers"]))
    # The credit report (issue 19), once every borrower has a decision, loans and repayments:
    # three items whatever the history.
    report = Route()
    for i in range(n):
        me = people[i % len(people)]
        report.call(lambda: api.get("/v1/me/credit-report", me["headers"]), expect=200)
    return {"applications": decide.figures(), "drawdowns": draw.figures(), "repayments": repay.figures(),
            "credit_report": report.figures(), "not_disbursed": not_disbursed}


def disbursed(api: Any, loan_id: str, headers: dict, timeout: float = 150) -> str:
    """The loan's status once active, or as it still is after `timeout` s (the sweep runs each
    minute and takes over a lease older than 60 s, so a stuck loan gets two chances)."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        status = api.get(f"/v1/loans/{loan_id}", headers)[1]["status"]
        if status == "active":
            break
        time.sleep(0.2)
    return status


def throughput(base: str, people: list[dict], clients: int, seconds: float) -> dict:
    """C clients posting applications back to back for `seconds`; decisions (201) per second."""
    from tests.journeys import GOOD_APPLICANT, HttpApi, with_key

    body = application(GOOD_APPLICANT)
    decide = Route()  # shared by the threads: list.append is atomic
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def client(mine: list[dict]) -> None:
        api = HttpApi(base)
        start.wait()
        i = 0
        while time.perf_counter() < stop_at[0]:
            me = mine[i % len(mine)]
            i += 1
            decide.call(lambda: api.post("/v1/applications", body, with_key(me["headers"])))

    threads = [threading.Thread(target=client, args=(people[c::clients],)) for c in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at.append(began + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began  # includes the last requests begun before the stop
    return {"clients": clients, "seconds": round(elapsed, 1), "decisions": len(decide.ms),
            "per_second": round(len(decide.ms) / elapsed, 2), "latency": decide.figures()}


def measure() -> dict:
    n = size("BENCH_N", 200, 20)
    seconds = size("BENCH_SECONDS", 30, 5)
    clients = int(os.environ.get("BENCH_CLIENTS", "4"))
    with local_stack() as (base, outbox, log):
        people = ready_borrowers(base, outbox, max(BORROWERS, clients))
        result = latency(base, people, n)
        result["throughput"] = [throughput(base, people, c, seconds) for c in sorted({1, clients})]
        result["stack_errors"] = logged_errors(log)
    result.update(n=n, borrowers=len(people))
    return result


def main() -> int:
    return emit(measure())


if __name__ == "__main__":
    sys.exit(main())
