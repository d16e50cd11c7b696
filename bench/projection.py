"""The projection to 10 million borrowers (issue 17), computed from the benches' per-item figures
and the assumptions below; `bench/run.py` writes it into bench/README.md with the report.

Per-item figures measured: items read per loan queued by the disbursement sweep and per late
loan by close of business (`bench.jobs_bench`, `bench.sweep_bench`), write units per repayment,
per reminder text and per loan-night of close of business (`bench.cost_bench`). What is assumed:
the book, and the time of one AWS request (DynamoDB documents single-digit milliseconds).
"""
from __future__ import annotations

from typing import Any

BORROWERS = 10_000_000          # one 12-month loan each
DUE_PER_DAY = BORROWERS // 30   # due dates spread over the month
LATE_SHARE = 0.01               # late at any time
GRACE_SHARE = 0.05              # installments still unpaid on their due day
NEW_PER_DAY = BORROWERS // 365
CHANGED_PER_DAY = DUE_PER_DAY + int(BORROWERS * LATE_SHARE) + NEW_PER_DAY  # chains that move a day
REQUEST_MS = 10                 # one DynamoDB or SQS request on AWS
LOAN_CLOSE_MS = 25              # a late loan: one read and one transaction
TEXT_MS = 80                    # one notification: the user, the vendor's API, the inbox
INDEX_PAGE_ITEMS = 5_000        # index items of ~200 B in a 1 MB query page
BATCH = 25                      # BatchWriteItem


def _spec(key: str) -> Any:
    from chalicelib.core.resources import queue_spec
    return queue_spec(key)


def _fits(seconds: float, limit: float = 900) -> str:
    """Whether one invocation of `seconds` fits Lambda's 15 minutes, and from what size of book
    (it grows in proportion) it would not: the point to fan it out by shard."""
    if seconds >= limit:
        return "**over Lambda's 15 min: must fan out by shard (not done)**"
    return (f"fits, up to ~{BORROWERS * limit / seconds / 1e6:.0f} million borrowers; **beyond, it must "
            f"fan out by shard (not done)**")


def rows(parts: dict[str, dict]) -> list[list[str]]:
    from chalicelib.loans import aggregates, catalog, schedules

    counts = parts["cost"]["bill"]["counts"]
    sms = parts["cost"]["bill"]["sms_by_phase"]
    wru_repayment = counts["repayment"]["ddb_wru"] / 12
    wru_text = counts["reminder"]["ddb_wru"] / max(1, sms.get("reminder", 1))
    wru_cob_night = counts["close_of_business"]["ddb_wru"] / parts["cost"]["life"]["late_days_closed"]
    cob_reads = parts["jobs"]["close_of_business"]["items_read_per_acted"]
    sweep_reads = parts["sweep"]["items_read_per_queued"]

    late = int(BORROWERS * LATE_SHARE) + int(DUE_PER_DAY * GRACE_SHARE)
    closing = _spec("closing")
    cob_sweep_s = late / 10 * REQUEST_MS / 1000
    cob_s = late * LOAN_CLOSE_MS / 1000 / closing.max_concurrency
    cob_wru = late * wru_cob_night
    texts = DUE_PER_DAY * 3
    pages = len(catalog.DEFAULT_REMINDER_DAYS) * schedules.OPEN_SHARDS
    per_page = texts // pages
    page_s = per_page / 10 * REQUEST_MS / 1000
    notes = _spec("notifications")
    per_second = notes.max_concurrency * 1000 / TEXT_MS
    anchor_s = (CHANGED_PER_DAY / BATCH + CHANGED_PER_DAY / INDEX_PAGE_ITEMS * 4) * REQUEST_MS / 1000
    recount_pages = BORROWERS * 3_500 / 2**20
    return [
        ["disbursement sweep (each minute)", f"~{NEW_PER_DAY / 1440 * sweep_reads:,.0f} index items a minute "
         f"({sweep_reads:.2f} per loan due, measured)", "1 message per loan",
         f"~{NEW_PER_DAY / 1440:,.0f} / {_spec('disbursements').max_concurrency} consumers",
         "loans `disburse_due` index, sharded", "seconds"],
        ["close of business (00:05)", f"~{late * cob_reads:,.0f} index items and loans ({cob_reads:.2f} per late "
         f"loan, measured) for {late:,} late and grace-day loans", f"{late:,} messages, "
         f"{late // 10:,} SendMessageBatch (~{cob_sweep_s / 60:.0f} min)",
         f"{late:,} / {closing.max_concurrency} consumers × batch {closing.batch_size}",
         f"~{cob_wru / 1e6:.1f} M WRU ({wru_cob_night:.0f} a loan-night, measured), ~{cob_wru / cob_s:,.0f} WRU/s: "
         f"warm the table first (a new on-demand table starts at 4,000). Counter shards: "
         f"{late / cob_s / aggregates.SHARDS:,.0f} updates/s each", f"~{(cob_sweep_s + cob_s) / 60:.0f} min"],
        ["reminders (09:00)", f"~{texts:,} index items ({DUE_PER_DAY:,} installments × 3 reminder days)",
         f"{pages} pages ({len(catalog.DEFAULT_REMINDER_DAYS)} days × {schedules.OPEN_SHARDS} shards) of ~{per_page:,} texts",
         f"{pages} / {_spec('reminding').max_concurrency} consumers; then {texts:,} notifications",
         f"~{texts * wru_text / 1e6:.1f} M WRU for the texts ({wru_text:.1f} each, measured)",
         f"pages ~{page_s:.0f} s each; **texts: {notes.max_concurrency} consumers send ~{per_second:.0f} a second, "
         f"{texts / per_second / 3600:.1f} h for the day: raise its concurrency**"],
        ["ledger anchor (in close of business)", f"~{CHANGED_PER_DAY:,} entries of the day", "none: one invocation",
         "—", f"{CHANGED_PER_DAY:,} proofs in {CHANGED_PER_DAY // BATCH:,} BatchWriteItem",
         f"~{anchor_s / 60:.0f} min a typical day, ~{3 * anchor_s / 60:.0f} min on a day of 3 times the changes "
         f"(month end): {_fits(3 * anchor_s)}"],
        ["portfolio", f"GET: {aggregates.SHARDS} items; nightly recount: {BORROWERS:,} loans", "none",
         "—", f"recount reads `by_status` with every attribute (~{recount_pages / 1024:.0f} GB)",
         f"GET constant; recount ~{recount_pages * REQUEST_MS / 1000 / 60:.0f} min in one invocation: "
         f"{_fits(recount_pages * REQUEST_MS / 1000)}"],
        ["repayments (through the day)", f"{DUE_PER_DAY:,} a day", "—", "—",
         f"~{DUE_PER_DAY * wru_repayment / 1e6:.1f} M WRU a day ({wru_repayment:.0f} each, measured)", "—"],
    ]


def markdown(parts: dict[str, dict]) -> str:
    head = ["job", "items read", "fan-out", "peak SQS depth / consumers", "DynamoDB (on-demand) and hot keys",
            "time to finish"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(parts)]
    return "\n".join(lines)
