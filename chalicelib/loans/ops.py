"""What the lender's staff see and decide: reviews, one loan in full, the portfolio."""
from __future__ import annotations

import json
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.core.clock import shanghai_date
from chalicelib.core.errors import NotFound
from chalicelib.core.observability import logger, metrics
from chalicelib.loans import aggregates
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from chalicelib.loans.service import loan_view, shanghai_iso



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


def portfolio(now: datetime) -> dict:
    """Counts and outstanding principal by status, and for live loans by days past due (as of
    the last close of business), from the aggregates: one read of the counter shards."""
    return {"as_of": shanghai_date(now).isoformat(), **aggregates.read()}


def check_portfolio(now: datetime) -> dict:
    """The counters against a recount of every loan (each live loan in its bucket as of the
    Asia/Shanghai date of `now`): the cells that differ, logged and counted."""
    today = shanghai_date(now)
    drift = aggregates.drift(aggregates.read(), aggregates.recount(today))
    for cell in drift:
        logger.warning("portfolio counter drift", extra={
            "cell": f"{cell['group']}.{cell['name']}.{cell['field']}", "counters": cell["counters"],
            "recount": cell["recount"], "as_of": today.isoformat()})
    metrics.add_metric(name="PortfolioDrift", unit="Count", value=len(drift))
    return {"as_of": today.isoformat(), "drift": drift}
