"""Each day's anchor: the Merkle root over the heads of the chains that changed that day.

Close of business for date D anchors D-1 (the day just ended; contract, "Ledger transparency"):
1. it reads that day's entries through the ledger's `by_day` index (LEDGER_DAY_SHARDS
   queries of that day's entries, never the book) and takes each loan's last one, its head;
2. it writes each loan's proof (`ProofRecord`, for the borrower's statement);
3. it puts the day's document (root, counts and every leaf) in the S3 anchor bucket, under
   Object Lock in compliance mode when deployed, unless an object for that day is already
   there: then that object is the anchor, whatever the ledger says now;
4. it writes the `AnchorRecord` once (a conditional put): the mark that the day is done.

A replay of any step finds its work done and changes nothing; a run that died between steps
finishes the day. Days missed by an outage (up to CATCH_UP_DAYS back) are anchored in order,
empty ones included (root `chain.EMPTY_ROOT`), so the anchors have no gap after the first;
before any anchor exists, only days with entries are anchored.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.clock import SHANGHAI
from chalicelib.adapters.db import condition_failed
from chalicelib.core.observability import logger, metrics
from chalicelib.money import chain

CATCH_UP_DAYS = 31


def object_key(day: str) -> str:
    return f"anchors/{day}.json"


def day_heads(day: str) -> tuple[dict[str, tuple[int, str]], int]:
    """{loan_id: (seq, hash) of its last entry that day}, and the number of entries read."""
    from chalicelib.loans.models import LEDGER_DAY_SHARDS, LedgerEntryRecord
    heads: dict[str, tuple[int, str]] = {}
    read = 0
    for shard in range(LEDGER_DAY_SHARDS):
        for item in LedgerEntryRecord.by_day.query(f"{day}#{shard}"):
            read += 1
            if item.loan_id not in heads or item.seq > heads[item.loan_id][0]:
                heads[item.loan_id] = (item.seq, item.hash)
    return heads, read


def document(day: str, heads: dict[str, tuple[int, str]], entries: int) -> dict[str, Any]:
    """The day's anchor as stored in S3: everything needed to rebuild the root and any proof."""
    return {"date": day, "root": chain.root({k: h for k, (_, h) in heads.items()}),
            "loans": len(heads), "entries": entries,
            "leaves": [{"loan_id": k, "seq": heads[k][0], "head": heads[k][1]} for k in sorted(heads)],
            "rules": "docs/LEDGER.md: leaf = sha256('leaf:' + loan_id + ':' + head), "
                     "node = sha256('node:' + left + right), odd node carried up"}


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def stored_document(day: str) -> dict[str, Any] | None:
    """The day's document in the anchor bucket, or None when there is none."""
    s3 = aws.client("s3")
    try:
        body = s3.get_object(Bucket=config.anchor_bucket(), Key=object_key(day))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def _put_document(doc: dict[str, Any]) -> dict[str, Any]:
    """Put the day's document unless one is there already; the one in the bucket wins."""
    existing = stored_document(doc["date"])
    if existing is not None:
        if existing["root"] != doc["root"]:
            logger.error("ledger anchor: the bucket holds another root for this day; it stands",
                         extra={"date": doc["date"], "stored": existing["root"], "recomputed": doc["root"]})
        return existing
    aws.client("s3").put_object(Bucket=config.anchor_bucket(), Key=object_key(doc["date"]), Body=_dumps(doc),
                                ContentType="application/json", ChecksumAlgorithm="SHA256")
    return doc


def _write_proofs(day: str, doc: dict[str, Any]) -> None:
    from chalicelib.ledger.models import ProofRecord
    every = chain.proofs({leaf["loan_id"]: leaf["head"] for leaf in doc["leaves"]})
    with ProofRecord.batch_write() as batch:
        for leaf in doc["leaves"]:
            batch.save(ProofRecord(loan_id=leaf["loan_id"], date=day, head=leaf["head"], seq=leaf["seq"],
                                   proof=json.dumps(every[leaf["loan_id"]], separators=(",", ":"))))


def anchor_day(day: date, now: datetime) -> dict[str, Any]:
    """Anchor one day, once: {"date", "root", "loans", "entries", "written"}."""
    from chalicelib.ledger.models import AnchorRecord
    text = day.isoformat()
    try:
        found = AnchorRecord.get(text, consistent_read=True)
        return {"date": text, "root": found.root, "loans": found.loans, "entries": found.entries,
                "written": False}
    except AnchorRecord.DoesNotExist:
        pass
    heads, read = day_heads(text)
    doc = _put_document(document(text, heads, read))
    _write_proofs(text, doc)
    record = AnchorRecord(date=text, root=doc["root"], loans=doc["loans"], entries=doc["entries"],
                          anchored_at=now.astimezone(SHANGHAI).isoformat(timespec="seconds"),
                          object_key=object_key(text))
    try:
        record.save(condition=AnchorRecord.date.does_not_exist())
    except Exception as err:  # noqa: BLE001
        if not condition_failed(err):
            raise
        return anchor_day(day, now)  # another run wrote it meanwhile: report theirs
    metrics.add_metric(name="LedgerDayAnchored", unit="Count", value=1)
    logger.info("ledger day anchored", extra={"date": text, "root": doc["root"], "loans": doc["loans"],
                                              "entries": doc["entries"]})
    return {"date": text, "root": doc["root"], "loans": doc["loans"], "entries": doc["entries"], "written": True}


def days_to_anchor(last_day: date) -> list[date]:
    """The days up to `last_day` that have no anchor yet, oldest first (see the module)."""
    from chalicelib.ledger.models import AnchorRecord
    window = [last_day - timedelta(days=i) for i in range(CATCH_UP_DAYS)]  # newest first
    anchored = {a.date for a in AnchorRecord.batch_get([d.isoformat() for d in window], consistent_read=True)}
    todo: list[date] = []
    for day in window:
        if day.isoformat() in anchored:
            return list(reversed(todo))
        todo.append(day)
    # no anchor in the window: the first ones, for the days that have entries (and the last)
    return [d for d in reversed(todo) if d == last_day or day_heads(d.isoformat())[1]]


def anchor_through(last_day: date, now: datetime) -> list[dict[str, Any]]:
    """Anchor every day still missing up to `last_day` (close of business: the day before)."""
    return [anchor_day(day, now) for day in days_to_anchor(last_day)]
