"""A borrower's statement of one loan: every ledger entry with its hashes, and for each
anchored day the Merkle proof from the loan's head that day to the day's root, so that it can
be checked offline with SHA-256 alone (docs/LEDGER.md, tools/verify_statement.py).

Reads: the loan, its entries (one query), its proofs (one query) and the days' anchors (batch
gets of 100): a handful of requests whatever the loan's age.
"""
from __future__ import annotations

import json
from typing import Any

from chalicelib.loans.models import LedgerEntryRecord
from chalicelib.loans.service import own_loan


def entry_view(link: Any) -> dict[str, Any]:
    return {"seq": link.seq, "entry_id": link.entry_id, "at": link.at, "kind": link.kind,
            "amount": link.amount, "lines": [dict(l) for l in link.lines],
            "prev_hash": link.prev_hash, "hash": link.hash}


def statement(user_id: str, loan_id: str) -> dict[str, Any]:
    from chalicelib.ledger.models import AnchorRecord, ProofRecord
    loan = own_loan(user_id, loan_id)
    links = sorted((e.link() for e in LedgerEntryRecord.query(loan_id, consistent_read=True)),
                   key=lambda l: l.seq)
    proofs = list(ProofRecord.query(loan_id, consistent_read=True))
    roots: dict[str, str] = {}
    dates = [p.date for p in proofs]
    for i in range(0, len(dates), 100):
        roots.update({a.date: a.root for a in AnchorRecord.batch_get(dates[i:i + 100], consistent_read=True)})
    anchors = [{"date": p.date, "root": roots[p.date], "head": p.head, "seq": p.seq,
                "proof": json.loads(p.proof)}
               for p in proofs if p.date in roots]  # a proof whose day is still being anchored waits
    return {"loan_id": loan.loan_id, "entries": [entry_view(l) for l in links],
            "head": loan.ledger_head or (links[-1].hash if links else None), "anchors": anchors}
