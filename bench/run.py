"""`make bench`: every benchmark, then one report against the targets of the issues.

    .venv/bin/python -m bench.run                 # all of it; rewrites the table in bench/README.md
    BENCH_SCALE=0.1 .venv/bin/python -m bench.run # smoke run: smaller sizes, README left alone
    .venv/bin/python -m bench.run --only risk,sweep   # some parts, printed only

Each part runs in a fresh interpreter (`python -m bench.<module>` prints a JSON dict), so one
part's moto account, environment or loaded model cannot flatter another. The report is printed,
written to build/bench.json with every raw figure, and, at full scale with every part run,
written between the markers in bench/README.md. Figures are printed, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import ROOT, scale

README = ROOT / "bench" / "README.md"
JSON_OUT = ROOT / "build" / "bench.json"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PARTS = {"package": None, "cold_start": "bench.cold_start", "risk": "bench.risk_bench",
         "sweep": "bench.sweep_bench", "jobs": "bench.jobs_bench", "http": "bench.http_bench",
         "longrun": "bench.longrun_bench", "ledger": "bench.ledger_bench", "portfolio": "bench.portfolio_bench",
         "cost": "bench.cost_bench"}
ZIP = ROOT / "build" / "prod" / "deployment.zip"
MET, NOT_MET, NO_TARGET = "met", "**not met**", "—"


def package() -> dict:
    from infra.package import LAMBDA_UNZIPPED_LIMIT, unzipped_size

    if not ZIP.exists():
        raise SystemExit(f"{ZIP.relative_to(ROOT)} missing: run `make package` first")
    return {"zip": str(ZIP.relative_to(ROOT)), "zipped_mib": round(ZIP.stat().st_size / 2**20, 1),
            "unzipped_mib": round(unzipped_size(ZIP) / 2**20, 1), "limit_mib": LAMBDA_UNZIPPED_LIMIT / 2**20}


def run_part(name: str) -> dict:
    module = PARTS[name]
    if module is None:
        return package()
    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench part {name} ({module}) failed with exit code {done.returncode}")
    return json.loads(done.stdout)


# ---- the report -------------------------------------------------------------------------------

def verdict(ok: bool | None) -> str:
    return NO_TARGET if ok is None else MET if ok else NOT_MET


def p50_p99(s: dict, unit: str = "ms", digits: int = 0) -> str:
    return f"p50 {s['p50']:,.{digits}f} / p99 {s['p99']:,.{digits}f} {unit} (n={s['n']:,})"


def row(figure: str, measured: str, target: str = NO_TARGET, ok: bool | None = None) -> dict:
    return {"figure": figure, "measured": measured, "target": target, "met": verdict(ok)}


def risk_rows(r: dict) -> list[dict]:
    return [row("decision in process: JSON → features → ONNX → reasons", p50_p99(r["score"], digits=3),
                "p99 ≤ 0.5 ms (issue 4)", r["score"]["p99"] <= 0.5),
            row("… + the challenger in shadow + the policy's decision", p50_p99(r["decide"], digits=3),
                "p99 ≤ 0.5 ms (issues 4, 15)", r["decide"]["p99"] <= 0.5)] + (
            [row("the challenger's shadow score alone", p50_p99(r["shadow"], digits=3),
                 "p99 < 0.2 ms (issue 15)", r["shadow"]["p99"] < 0.2)] if "shadow" in r else [])


def with_errors(s: dict) -> str:
    figure = p50_p99(s) if s["n"] else "no successful call"
    return figure + (f"; **{s['errors']} failed**: {', '.join(s['error_codes'])}" if s["errors"] else "")


def http_rows(h: dict) -> list[dict]:
    apps = h["applications"]
    rows = [row("POST /v1/applications over HTTP, local stack, one client", with_errors(apps),
                "p99 ≤ 50 ms (issue 4)", bool(apps["n"]) and not apps["errors"] and apps["p99"] <= 50),
            row("POST /v1/loans (drawdown) over HTTP", with_errors(h["drawdowns"]), "— (issue 5 gives none)"),
            row("POST /v1/loans/{id}/repayments over HTTP", with_errors(h["repayments"]),
                "— (issue 6 gives none)")]
    if "credit_report" in h:
        rows.append(row("GET /v1/me/credit-report over HTTP", with_errors(h["credit_report"]),
                        "— (issue 19 asks for the figure)"))
    stuck = h.get("not_disbursed") or {}
    rows.append(row("drawn loans the stack's pump disbursed within 150 s",
                    f"{h['drawdowns']['n'] - len(stuck)} of "
                    f"{h['drawdowns']['n']}" + (f"; still {', '.join(sorted(set(stuck.values())))}" if stuck else ""),
                    "all (issue 5: active within seconds)", not stuck))
    for t in h["throughput"]:
        who = "one client" if t["clients"] == 1 else f"{t['clients']} concurrent clients"
        lat = t["latency"]
        rows.append(row(f"sustained applications per second, one process, {who}",
                        f"{t['per_second']:.1f}/s ({t['decisions']:,} decisions in {t['seconds']:.0f} s: "
                        + ", ".join(f"{v:,} {k}" for k, v in sorted(lat.get("outcomes", {}).items())) + "; "
                        + (f"p99 {lat['p99']:,.0f} ms" if lat["n"] else "none") + "; "
                        + (f"**{lat['errors']} failed**: {', '.join(lat['error_codes'])})" if lat["errors"]
                           else "0 failed)"), "— (issue 7 gives none)"))
    return rows


def longrun_rows(r: dict) -> list[dict]:
    first, last = r["first"], r["last"]
    failed = f"; **{r['errors']} failed**: {', '.join(r['error_codes'])}" if r["errors"] else ""
    return [row(f"long-running local stack: decisions {first['decisions']} vs {last['decisions']} "
                f"(one client, {r['decisions']:,} in all)",
                f"{first['per_second']:.1f}/s → {last['per_second']:.1f}/s; stack CPU "
                f"{first['cpu_ms_per_decision']:.0f} → {last['cpu_ms_per_decision']:.0f} ms per decision; "
                f"memory {r['rss_start_mib']:,.0f} → {first['rss_mib']:,.0f} → {last['rss_mib']:,.0f} MiB{failed}",
                "CPU per decision of the last block ≤ 1.3 × the first's (issue 14: no slowdown)",
                r["cpu_growth"] <= 1.3 and not r["errors"])]


def cold_rows(c: dict) -> list[dict]:
    rows = []
    for name, f in c["functions"].items():
        onnx = "imports onnxruntime" if f["onnxruntime"] else "no onnxruntime"
        rows.append(row(f"cold start {name} (`{f['handler']}`): import from the package",
                        f"{p50_p99(f['import'])}, {onnx}", "no onnxruntime at import (issue 4)",
                        not f["onnxruntime"]))
    scoring = c["scoring_function"]
    for figure, probe in ((f"cold start of the scoring function: {scoring} import + model load and verify "
                           f"({c['bytecode_modules']:,} modules' bytecode in the zip)", c["functions"][scoring]),
                          ("… the scoring path alone: import scorer + model load and verify", c["scoring_path"])):
        both = probe["import_and_load"]
        rows.append(row(figure, p50_p99(both), "≤ 1 s (issue 4)", both["p99"] <= 1000))
    rows.append(row(f"… {scoring} + model with the zip's bytecode removed (compiled from source at start)",
                    p50_p99(c["scoring_function_source_only"]["import_and_load"]),
                    "— (what the bytecode saves)"))
    return rows


def job_rows(s: dict, j: dict) -> list[dict]:
    rem, cob = j["reminders"], j["close_of_business"]
    return [
        row(f"disbursement sweep: items read per loan queued ({s['loans']:,} scheduled, {s['due']} due)",
            f"{s['items_read_per_queued']:.2f} ({s['items_read']} items in {s['read_calls']} queries for "
            f"{s['queued']} queued; {s['ms'] / 1000:.1f} s in moto)",
            "≈ 1, not 10,000/100 (issue 5)", s["items_read_per_queued"] <= 1.1),
        row(f"reminders: items read per reminder queued ({j['loans']:,} active loans)",
            f"{rem['items_read_per_acted']:.2f} ({rem['items_read']} items, {rem['installments_read']} of them "
            f"installments, for {rem['queued']} reminders)", "≈ 1 (issue 6)", rem["items_read_per_acted"] <= 1.1),
        row("reminders: run time in moto", f"{rem['ms'] / 1000:.1f} s", "— (issue 6 gives none)"),
        row(f"close of business: items read per late loan ({j['loans']:,} active, {j['late']} late)",
            f"{cob['items_read_per_acted']:.2f} ({cob['installments_read']} late installments + the "
            f"{cob['loans']} loans; {cob['penalty_days_posted']} penalty days posted)",
            "≤ 2: its installment + its loan (DESIGN.md)", cob["items_read_per_acted"] <= 2),
        row("close of business: run time in moto", f"{cob['ms'] / 1000:.0f} s ({cob['loans']} late loans)",
            "— (issue 6 gives none)"),
    ]


def ledger_rows(l: dict) -> list[dict]:
    out = []
    for name, label in (("typical_day", "a typical day"), ("worst_day", "the worst day")):
        d = l[name]
        out.append(row(f"ledger anchor of {label}: {d['changed']:,} of {d['loans']:,} active loans changed",
                       f"{d['items_read']:,} items read in {d['read_calls']} queries, {d['items_written']:,} "
                       f"written + {d['s3_puts']} S3 object; {d['ms'] / 1000:.1f} s in moto",
                       "reads = that day's entries only (issue 16)", d["items_read"] == d["entries_that_day"]))
    s = l["statement"]
    out.append(row(f"statement of a 12-installment loan after a year ({s['entries']} entries, "
                   f"{s['anchored_days']} anchored days), in process on moto", p50_p99(s, digits=1),
                   "— (issue 16 asks for the figure)"))
    return out


def portfolio_rows(p: dict) -> list[dict]:
    sizes = p["sizes"]
    constant = all(s["read_calls"] == 1 and s["items_read"] == sizes[0]["items_read"] for s in sizes)
    out = [row(f"GET /v1/ops/portfolio at {s['loans']:,} loans, in process on moto",
               f"{s['items_read']} items in {s['read_calls']} BatchGet; {p50_p99(s['request'], digits=1)}",
               "items read constant from 100 to 10,000 loans (issue 17)", constant) for s in sizes]
    big = sizes[-1]
    out.append(row(f"nightly portfolio recount (drift check) at {big['loans']:,} loans",
                   f"{big['recount_items_read']:,} items in {big['recount_calls']} queries; "
                   f"{big['recount_ms'] / 1000:.1f} s in moto", "— (once a night, off the request path)"))
    return out


def cost_rows(c: dict) -> list[dict]:
    b = c["bill"]
    where = f"{b['region']} list prices of {b['as_of']} (bench/prices.json), 1 USD = {b['usd_to_cny']} CNY"
    by_service = ", ".join(f"{name} {usd * b['usd_to_cny'] * 1000:.2f}" for name, usd in
                           sorted(b["life_usd_by_service"].items(), key=lambda kv: -kv[1]))
    return [row(f"AWS charges of one 12-month loan's whole life ({where})",
                f"{b['life_cny']:.4f} CNY (${b['life_usd']:.5f}); by service, in 0.001 CNY: {by_service}",
                "≤ 0.01 CNY (issue 17)", b["life_cny"] <= 0.01),
            row("the same life at the China regions' prices found offline (bench/prices.json `china_cross_check`: "
                "DynamoDB's from before the November 2024 reduction, an upper bound; the rest us-east-1's at the rate)",
                f"{b['china_life_cny']:.4f} CNY; by service, in 0.001 CNY: " + ", ".join(
                    f"{name} {cny * 1000:.2f}" for name, cny in
                    sorted(b["china_life_cny_by_service"].items(), key=lambda kv: -kv[1])),
                "≤ 0.01 CNY (issue 17, at cn-north-1's prices)", b["china_life_cny"] <= 0.01),
            row("AWS charges of 1 million credit decisions (application + decision, signed in)",
                f"{b['million_decisions_cny']:,.1f} CNY (${b['million_decisions_usd']:,.2f})", "— (issue 17 asks for it)"),
            row("jobs and pollers whatever the book (sweep each minute, reconciler, daily jobs, an empty "
                "day's anchor, SQS long polls)", f"{b['fixed_usd_per_month'] * b['usd_to_cny']:.2f} CNY a month",
                "— (fixed)"),
            row("SMS over one loan's life (vendor fee, not AWS)",
                f"{b['sms_per_life']} texts ({', '.join(f'{k} {v}' for k, v in b['sms_by_phase'].items())}); "
                f"{b['sms_cny_per_life']:.2f} CNY at the assumed fee", "— (issue 17: count them apart)")]


def package_rows(p: dict) -> list[dict]:
    return [row("deployment package (`make package`)",
                f"{p['zipped_mib']:.1f} MiB zipped, {p['unzipped_mib']:.1f} MiB unzipped",
                f"unzipped < {p['limit_mib']:.0f} MiB (Lambda)", p["unzipped_mib"] < p["limit_mib"])]


def rows(parts: dict[str, dict]) -> list[dict]:
    out: list[dict] = []
    if "risk" in parts:
        out += risk_rows(parts["risk"])
    if "http" in parts:
        out += http_rows(parts["http"])
    if "longrun" in parts:
        out += longrun_rows(parts["longrun"])
    if "cold_start" in parts:
        out += cold_rows(parts["cold_start"])
    if "sweep" in parts and "jobs" in parts:
        out += job_rows(parts["sweep"], parts["jobs"])
    if "ledger" in parts:
        out += ledger_rows(parts["ledger"])
    if "portfolio" in parts:
        out += portfolio_rows(parts["portfolio"])
    if "cost" in parts:
        out += cost_rows(parts["cost"])
    if "package" in parts:
        out += package_rows(parts["package"])
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": f"{platform.system()} {platform.machine()}"}


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def render(report: dict) -> str:
    m = report["machine"]
    lines = [f"Measured {report['date']} on {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
             f"{m['platform']}; commit {report['commit']}; BENCH_SCALE={report['scale']:g}; "
             f"the benchmarks took {report['runtime_s'] / 60:.1f} min after `make package` "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in report['part_seconds'].items() if k != 'package')}).",
             "", "| figure | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['measured']} | {r['target']} | {r['met']} |" for r in report["rows"]]
    logged = report["parts"].get("http", {}).get("stack_errors")
    if logged:
        lines += ["", "The local stack logged errors during the HTTP part (count, route, message, exception):", ""]
        lines += [f"    {line}" for line in logged]
    return "\n".join(lines)


def write_readme(table: str, begin: str = BEGIN, end: str = END) -> None:
    text = README.read_text(encoding="utf-8")
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise SystemExit(f"{README.relative_to(ROOT)} lacks the {begin} ... {end} markers")
    README.write_text(f"{head}{begin}\n{table}\n{end}{tail}", encoding="utf-8")


PROJECTION = ("<!-- projection:begin -->", "<!-- projection:end -->")
PROJECTION_PARTS = {"cost", "jobs", "sweep"}


def projection(parts: dict[str, dict], report: dict) -> str:
    from bench import projection as model
    return (f"Computed {report['date']} from this run's per-item figures (commit {report['commit']}; "
            f"`bench/projection.py` holds the assumptions):\n\n" + model.markdown(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--only", help=f"comma-separated parts of {','.join(PARTS)}; printed only")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(PARTS)
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    started = time.perf_counter()
    parts: dict[str, Any] = {}
    part_seconds: dict[str, float] = {}
    for name in chosen:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        parts[name] = run_part(name)
        part_seconds[name] = time.perf_counter() - t
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "commit": commit(), "scale": scale(), "runtime_s": round(time.perf_counter() - started),
              "part_seconds": {k: round(v) for k, v in part_seconds.items()}, "rows": rows(parts),
              "parts": parts}
    table = render(report)
    print(table)
    projected = projection(parts, report) if PROJECTION_PARTS <= set(parts) else None
    if projected:
        print("\n" + projected)
        if scale() == 1:  # its own block: regenerated whenever its parts run at full scale
            write_readme(projected, *PROJECTION)
    if args.only:
        return 0
    JSON_OUT.parent.mkdir(exist_ok=True)
    JSON_OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten: {JSON_OUT.relative_to(ROOT)}", end="")
    if scale() == 1:
        write_readme(table)
        print(f", {README.relative_to(ROOT)}")
    else:
        print(f" (BENCH_SCALE={scale():g}: {README.relative_to(ROOT)} keeps its full-scale figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
