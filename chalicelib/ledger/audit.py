"""Checking the whole record: every chain, every anchor (`POST /v1/ops/ledger/verify`,
`make verify-ledger`).

Chains: each loan's entries must link from GENESIS by `prev_hash`, each hash must recompute
from its content, and the loan's recorded head (count, last hash, last entry id) must be the
chain's end (`chain.check_chain`). Anchors: each day's record must equal the copy locked in the
S3 anchor bucket, that copy's leaves must give its root, and each leaf must still be the head
that day of its loan's chain as the ledger holds it now. Every problem is reported with the
loan and entry it concerns (or the anchor's date), none stops the check.

One loan: its chain, and its proofs against the anchors. The whole book: a scan of the
ledger, the loans and the anchors; an operator runs it with `make verify-ledger`, which calls
this code with the stage's own credentials when the book outgrows an API request.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable

from pynamodb.exceptions import DoesNotExist

from chalicelib.core.errors import NotFound
from chalicelib.money import chain


def _break(loan_id: str | None, entry_id: str | None, why: str, date: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"loan_id": loan_id, "entry_id": entry_id, "why": why}
    if date is not None:
        found["date"] = date
    return found


def _check_loan(loan_id: str, records: list[Any], loan: Any | None) -> list[dict[str, Any]]:
    legacy = [r for r in records if r.seq is None]
    out = [_break(loan_id, r.entry_id, "posted before the ledger was chained: no hash to check")
           for r in legacy]
    breaks = chain.check_chain(loan_id, [r.link() for r in records if r.seq is not None],
                               length=getattr(loan, "ledger_seq", None) or 0 if loan is not None else None,
                               head=getattr(loan, "ledger_head", None),
                               head_entry=getattr(loan, "ledger_head_entry", None))
    if loan is None and records:
        out.append(_break(loan_id, None, "entries of a loan that does not exist"))
    return out + [_break(b.loan_id, b.entry_id, b.why) for b in breaks]


def _heads_by_day(records: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """{day: {loan_id: its last entry that day}} as the ledger holds it now."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in records:
        if r.seq is None:
            continue
        day = r.link().at[:10]
        if r.loan_id not in out[day] or r.seq > out[day][r.loan_id].seq:
            out[day][r.loan_id] = r
    return out


def _check_anchor(anchor: Any, heads: dict[str, Any]) -> list[dict[str, Any]]:
    from chalicelib.ledger.anchors import stored_document
    day = anchor.date
    doc = stored_document(day)
    if doc is None:
        return [_break(None, None, "no locked copy of this anchor in the anchor bucket", day)]
    out = []
    if doc.get("root") != anchor.root:
        out.append(_break(None, None, f"the anchor record's root {anchor.root[:12]}… is not the locked "
                                      f"copy's {str(doc.get('root'))[:12]}…: the record was changed", day))
    leaves = {leaf["loan_id"]: leaf for leaf in doc.get("leaves", [])}
    if chain.root({k: v["head"] for k, v in leaves.items()}) != doc.get("root"):
        out.append(_break(None, None, "the locked copy's leaves do not give its root", day))
    for loan_id in sorted(set(leaves) | set(heads)):
        anchored, now = leaves.get(loan_id), heads.get(loan_id)
        if anchored is None:
            out.append(_break(loan_id, now.entry_id, "an entry of this day is in no anchor of the day "
                                                     "(posted with a date it was not posted on)", day))
        elif now is None:
            out.append(_break(loan_id, None, f"the day's anchored head (entry {anchored['seq']}) "
                                             "is gone from the ledger", day))
        elif now.hash != anchored["head"] or now.seq != anchored["seq"]:
            out.append(_break(loan_id, now.entry_id, f"the chain's head that day is not the anchored one "
                                                     f"(entry {anchored['seq']})", day))
    return out


def verify(loan_id: str | None = None) -> dict[str, Any]:
    """{"checked": entries checked, "anchors": anchors checked, "broken": [...]}."""
    from chalicelib.ledger.models import AnchorRecord, ProofRecord
    from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
    broken: list[dict[str, Any]] = []
    if loan_id is not None:
        try:
            loan = LoanRecord.get(loan_id, consistent_read=True)
        except (DoesNotExist, ValueError):
            raise NotFound("No such loan.", code="LOAN_NOT_FOUND") from None
        records = list(LedgerEntryRecord.query(loan_id, consistent_read=True))
        broken += _check_loan(loan_id, records, loan)
        by_hash = {r.hash: r for r in records}
        proofs = list(ProofRecord.query(loan_id, consistent_read=True))
        anchors = {a.date: a for a in AnchorRecord.batch_get([p.date for p in proofs], consistent_read=True)} \
            if proofs else {}
        heads = _heads_by_day(records)
        for p in proofs:
            anchor = anchors.get(p.date)
            if anchor is None:
                continue  # the day is being anchored
            if chain.root_from_proof(loan_id, p.head, json.loads(p.proof)) != anchor.root:
                broken.append(_break(loan_id, None, "the proof does not lead to the day's root", p.date))
            now = heads.get(p.date, {}).get(loan_id)
            if now is None or now.hash != p.head:
                entry = by_hash.get(p.head)
                broken.append(_break(loan_id, entry.entry_id if entry else None,
                                     f"the chain's head that day is not the anchored one (entry {p.seq})", p.date))
        return {"checked": len(records), "anchors": len(proofs), "broken": broken}

    by_loan: dict[str, list[Any]] = defaultdict(list)
    for record in LedgerEntryRecord.scan(consistent_read=True):
        by_loan[record.loan_id].append(record)
    loans = {l.loan_id: l for l in LoanRecord.scan(consistent_read=True)}
    for lid in sorted(set(by_loan) | {k for k, l in loans.items() if l.ledger_seq}):
        broken += _check_loan(lid, by_loan.get(lid, []), loans.get(lid))
    heads = _heads_by_day(r for records in by_loan.values() for r in records)
    anchors = sorted(AnchorRecord.scan(consistent_read=True), key=lambda a: a.date)
    for anchor in anchors:
        broken += _check_anchor(anchor, heads.get(anchor.date, {}))
    return {"checked": sum(len(v) for v in by_loan.values()), "anchors": len(anchors), "broken": broken}
