"""What the lender's staff see and decide: reviews, one loan in full, the portfolio."""
from __future__ import annotations

import json
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.core.clock import shanghai_date
from chalicelib.core.errors import NotFound
from chalicelib.loans import schedules
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from chalicelib.loans.service import loan_view, shanghai_iso

STATUSES = ("scheduled", "disbursing", "active", "overdue", "closed", "cancelled", "failed")
BUCKETS = (("0", 0, 0), ("1-30", 1, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))


def loan_detail(loan_id: str, lang: str = "zh") -> dict:
    try:
        loan = LoanRecord.get(loan_id, consistent_read=True)
    except (DoesNotExist, ValueError):
        raise NotFound("No such loan.", code="LOAN_NOT_FOUND") from None
    entries = [{"entry_id": e.entry_id, "cause": e.cause, "cause_id": e.cause_id,
                "lines": json.loads(e.lines), "posted_at": shanghai_iso(e.posted_at)}
               for e in LedgerEntryRecord.query(loan_id, consistent_read=True)]
    events = [{"at": shanghai_iso(loan.created_at), "event": "drawn"}]
    if loan.disbursing_since:
        events.append({"at": shanghai_iso(loan.disbursing_since), "event": "disbursing"})
    if loan.disbursed_at:
        events.append({"at": shanghai_iso(loan.disbursed_at), "event": "disbursed",
                       "payout_reference": loan.payout_reference})
    events += [{"at": e["posted_at"], "event": e["cause"], "entry_id": e["entry_id"]} for e in entries
               if e["cause"] != "disbursement"]
    if loan.closed_at:
        events.append({"at": shanghai_iso(loan.closed_at), "event": loan.status,
                       "reason": loan.failure_reason})
    events.sort(key=lambda e: e["at"] or "")
    return {**loan_view(loan, lang), "user_id": loan.user_id, "application_id": loan.application_id,
            "ledger": entries, "events": events}


def bucket_of(days_past_due: int) -> str:
    for name, low, high in BUCKETS:
        if days_past_due >= low and (high is None or days_past_due <= high):
            return name
    raise ValueError(days_past_due)


def portfolio(now: datetime) -> dict:
    """Counts and outstanding principal by status, and for live loans by days past due."""
    today = shanghai_date(now)
    by_status = {s: {"count": 0, "outstanding_principal": 0} for s in STATUSES}
    by_dpd = {name: {"count": 0, "outstanding_principal": 0} for name, _, _ in BUCKETS}
    for status in STATUSES:
        for loan in LoanRecord.by_status.query(status):
            by_status[status]["count"] += 1
            by_status[status]["outstanding_principal"] += loan.outstanding_principal
            if status in ("active", "overdue"):
                dpd = schedules.days_past_due(loan.state, today)
                bucket = by_dpd[bucket_of(dpd)]
                bucket["count"] += 1
                bucket["outstanding_principal"] += loan.outstanding_principal
    return {"as_of": today.isoformat(), "by_status": by_status, "by_days_past_due": by_dpd}
