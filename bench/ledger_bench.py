"""The ledger anyone can check (issue 16), in moto, in process.

Anchoring a day at 10,000 active loans (BENCH_LOANS): the items the day's anchor reads (that
day's entries, through the ledger's `by_day` index), the items it writes (a proof per changed
loan, the anchor, one S3 object) and its time in moto, for a typical day (BENCH_CHANGED loans
changed: a repayment each, about 1 in 20 of the book on a due day) and for the worst day (every
loan changed). The entries are seeded as the postings write them (chained, one per loan).

The statement of a 12-installment loan after a year: the loan drawn, paid out, each
installment repaid on its due date and the day anchored each morning for 365 days, then
`GET /v1/loans/{id}/statement` through chalice's test client (middleware included), BENCH_N
times: p50 / p99 in process. `python -m bench.ledger_bench` prints the figures as JSON.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from datetime import date, datetime, time as clock_time, timedelta, timezone

from bench.common import counting_reads, emit, moto_account, size, summary

LOANS = 10_000
CHANGED = 500
DAY = date(2027, 3, 10)


def _seed_day(loans: int, at: datetime) -> None:
    """`loans` loans, each with one entry posted at `at` (its chain's first: a disbursement)."""
    from chalicelib.loans.models import LEDGER_DAY_SHARDS, LedgerEntryRecord, ledger_shard  # noqa: F401
    from chalicelib.loans.service import iso_utc
    from chalicelib.money import chain, ledger
    from chalicelib.core.clock import shanghai_iso

    posted = iso_utc(at)
    with LedgerEntryRecord.batch_write() as batch:
        for _ in range(loans):
            loan_id = str(uuid.uuid4())
            entry = ledger.disbursement(loan_id, 300_000)
            link = chain.link(loan_id, 1, entry.entry_id, shanghai_iso(posted), entry.cause, entry.to_json(),
                              chain.GENESIS)
            batch.save(LedgerEntryRecord(
                loan_id=loan_id, entry_id=entry.entry_id, cause=entry.cause, cause_id=entry.cause_id,
                lines=json.dumps(entry.to_json()), posted_at=posted, seq=1, prev_hash=chain.GENESIS,
                hash=link.hash, day_shard=f"{at.date().isoformat()}#{ledger_shard(loan_id)}"))


def anchoring(loans: int, changed: int) -> dict:
    with moto_account():  # first: the app's logger takes the bench's level at import
        from chalicelib.adapters import aws
        from chalicelib.ledger import anchors

        day_at = datetime.combine(DAY, clock_time(3, 0), timezone.utc)  # 11:00 Beijing on DAY
        _seed_day(changed, day_at)
        # the rest of the book changed on other days: never read by this day's anchor
        _seed_day(loans - changed, day_at - timedelta(days=3))
        calls = {"puts": 0}
        s3 = aws.client("s3")
        s3.meta.events.register("before-call.s3.PutObject", lambda **_: calls.__setitem__("puts", calls["puts"] + 1))
        with counting_reads() as reads:
            started = time.perf_counter()
            result = anchors.anchor_day(DAY, day_at + timedelta(days=1))
            ms = (time.perf_counter() - started) * 1000
        return {"loans": loans, "changed": changed, "entries_that_day": result["entries"],
                "items_read": reads["items"], "read_calls": reads["calls"],
                "items_written": result["loans"] + 1, "s3_puts": calls["puts"], "ms": round(ms)}


def statement_after_a_year(n: int) -> dict:
    start = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)
    with moto_account():
        from chalice.test import Client

        import app as app_module
        from chalicelib import wiring
        from chalicelib.core.clock import SHANGHAI, FixedClock
        from chalicelib.api.http import AUTHENTICATORS
        from chalicelib.ledger import anchors
        from chalicelib.loans import credit, disbursement, people, service
        from chalicelib.loans.models import ApplicationRecord
        from chalicelib.loans.payout import SandboxPayout
        from chalicelib.repay import service as repay
        from infra.stage import ROOT

        wiring.override("clock", FixedClock(start))
        wiring.override("payout_gateway", SandboxPayout())
        people.card_owned = lambda user, card: "1234"
        people.payout_card = lambda user, card: people.PayoutCard(card, "1234", "6222020000000001234", "张三")
        people.borrower = lambda user: people.Borrower(user, True, True, True, 30)
        people.sms_phone = lambda user: "13812348000"
        application_id = str(uuid.uuid4())
        ApplicationRecord(application_id=application_id, user_id="u-1", product_id="revolving-credit",
                          amount=1_000_000, term_months=12, purpose="装修", status="approved",
                          applicant=json.dumps({"monthly_income": 3_000_000, "monthly_expenses": 500_000,
                                                "assets": 0, "debt": 0, "job_type": "fixed",
                                                "job_seniority_years": 5, "home": "owner"}),
                          credit_limit=1_000_000, apr="0.1800", reasons="[]", model_version="bench",
                          decided_at=service.iso_utc(start), decision="{}").save()
        credit.set_line("u-1", limit=1_000_000, apr="0.1800", application_id=application_id,
                        product_id="revolving-credit", now=start)
        loan_id = service.draw("u-1", service.DrawRequest(application_id, 600_000, 12, "equal_installment",
                                                          "c-ok", None), start)["loan_id"]
        disbursement.disburse(loan_id, start)
        for offset in range(1, 366):
            day = start.astimezone(SHANGHAI).date() + timedelta(days=offset)
            at = datetime.combine(day, clock_time(10), SHANGHAI).astimezone(timezone.utc)
            anchors.anchor_through(day - timedelta(days=1), at)
            quote = repay.payoff("u-1", loan_id, None, at) if offset % 30 == 0 else None
            if quote and quote["amount"]:
                repay.repay("u-1", loan_id, min(quote["amount"], 55_000), at)
        AUTHENTICATORS["bearer"] = lambda request: "u-1"
        times = []
        with Client(app_module.app, stage_name="local", project_dir=str(ROOT)) as client:
            for k in range(n + 20):
                started = time.perf_counter()
                response = client.http.get(f"/v1/loans/{loan_id}/statement", headers={"Authorization": "Bearer t"})
                if k >= 20:  # warm-up
                    times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.body
        body = json.loads(response.body)
        return {"entries": len(body["entries"]), "anchored_days": len(body["anchors"]),
                "statement_bytes": len(response.body), **summary(times)}


def measure() -> dict:
    loans = size("BENCH_LOANS", LOANS, 200)
    changed = min(loans, size("BENCH_CHANGED", CHANGED, 20))
    return {"typical_day": anchoring(loans, changed), "worst_day": anchoring(loans, loans),
            "statement": statement_after_a_year(size("BENCH_N", 200, 50))}


def main() -> int:
    with contextlib.redirect_stdout(sys.stderr):  # the metrics' EMF lines: stdout is the JSON's
        result = measure()
    return emit(result)


if __name__ == "__main__":
    sys.exit(main())
