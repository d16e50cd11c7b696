"""Does a long-running local stack slow down? Decisions per second and memory as it runs.

One client posts applications back to back (spread over a few ready borrowers) to the local
stack (`make run`'s server in a subprocess) and notes, for every block of decisions, how many
it completed per second, the stack's CPU time per decision (what a shared machine's load does
not change) and the stack's resident memory at the block's end. The report compares the
first block with the last one.

Sizes: BENCH_LONGRUN (decisions in all; 4,000 by default, scaled by BENCH_SCALE; the figure of
issue 14 is 20,000, i.e. `BENCH_LONGRUN=20000`, about 15 minutes) and BENCH_LONGRUN_BLOCK
(decisions per block; 1,000, scaled). `python -m bench.longrun_bench` prints the figures as JSON.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.common import emit, size

BORROWERS = 8  # below the sandbox's SMS limit of 30 codes per 10 minutes per address


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used (Linux): unlike requests per second on a
    machine shared with other work, it does not depend on what else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed_in(api, me: dict, request):  # type: ignore[no-untyped-def]
    """`request()`, signed in again first if the access token has expired (the run outlives it)."""
    status, body = request()
    if status != 401:
        return status, body
    status, signed = api.post("/v1/auth/wechat", {"code": f"dev-{me['openid']}"})
    assert status == 200, signed
    me["headers"] = {"Authorization": f"Bearer {signed['access_token']}"}
    return request()


def measure() -> dict:
    from bench.http_bench import Route, application, local_stack_proc, logged_errors, ready_borrowers
    from tests.journeys import GOOD_APPLICANT, HttpApi, with_key

    total = size("BENCH_LONGRUN", 4_000, 200)
    block = min(total, size("BENCH_LONGRUN_BLOCK", 1_000, 100))
    blocks = []
    with local_stack_proc() as (base, outbox, log, proc):
        people = ready_borrowers(base, outbox, BORROWERS)
        api = HttpApi(base)
        body = application(GOOD_APPLICANT)
        started_rss = rss_mib(proc.pid)
        done = 0
        decide = Route()
        while done + block <= total:
            began, cpu_began = time.perf_counter(), cpu_seconds(proc.pid)
            route = Route()
            for i in range(block):
                me = people[(done + i) % len(people)]
                route.call(lambda: signed_in(api, me, lambda: api.post("/v1/applications", body,
                                                                     with_key(me["headers"]))))
            seconds, cpu = time.perf_counter() - began, cpu_seconds(proc.pid) - cpu_began
            figures = route.figures()
            blocks.append({"decisions": f"{done + 1}-{done + block}", "per_second": round(len(route.ms) / seconds, 1),
                           "cpu_ms_per_decision": round(1000 * cpu / block, 1),
                           "p50_ms": figures.get("p50"), "p99_ms": figures.get("p99"),
                           "errors": figures["errors"], "rss_mib": rss_mib(proc.pid)})
            decide.ms += route.ms
            decide.errors += route.errors
            done += block
            print(f"longrun: {blocks[-1]}", file=sys.stderr, flush=True)
        errors = logged_errors(log)
    first, last = blocks[0], blocks[-1]
    return {"decisions": done, "block": block, "borrowers": len(people), "rss_start_mib": started_rss,
            "first": first, "last": last, "slowdown": round(first["per_second"] / max(last["per_second"], 0.01), 2),
            "cpu_growth": round(last["cpu_ms_per_decision"] / max(first["cpu_ms_per_decision"], 0.01), 2),
            "blocks": blocks, "errors": len(decide.errors), "error_codes": sorted(set(decide.errors)),
            "stack_errors": errors}


def main() -> int:
    return emit(measure())


if __name__ == "__main__":
    sys.exit(main())
