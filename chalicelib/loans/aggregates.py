"""The book's aggregates (issue 17): counts and outstanding principal by status and by days past
due, kept in the same transactions that change a loan, so `GET /v1/ops/portfolio` reads a
constant number of items (one BatchGet of `SHARDS` items) whatever the size of the book.

Each transaction that changes a loan's status, outstanding principal or days-past-due bucket
adds its difference to ONE of `SHARDS` counter items, picked at random: a hot single item
would throttle (1,000 writes a second per partition) and make concurrent transactions conflict.
The reader sums the shards.

A loan's bucket moves with time, not only with writes: it is the bucket of its days past due
as of its last write (`LoanRecord.dpd_bucket`), and close of business rewrites it the night it
changes (the grace day, then D+31, D+61, D+91: close of business visits every late loan each
night, and its sweep also queues the loans whose installment fell due the day before). So the
buckets are those of the last close of business, five minutes after midnight.

`recount` reads every loan (the nightly drift check only); `drift` compares the two.
"""
from __future__ import annotations

import random
from datetime import date
from typing import Any

from pynamodb.models import Model
from pynamodb.attributes import NumberAttribute

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, IntAttribute, register_table
from chalicelib.money import engine

SHARDS = 32
STATUSES = ("scheduled", "disbursing", "active", "overdue", "closed", "cancelled", "failed")
LIVE = ("active", "overdue")  # the statuses that have days past due
BUCKETS = (("0", 0, 0), ("1-30", 1, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))


def _counter(group: str, name: str) -> tuple[str, str]:
    """The attribute names of a counter: (count, outstanding principal)."""
    slug = name.replace("-", "_").replace("+", "_plus")
    return f"n_{group}_{slug}", f"p_{group}_{slug}"


COUNTERS = [("status", s) for s in STATUSES] + [("dpd", name) for name, _, _ in BUCKETS]


def _shard_model() -> type[Model]:
    attributes: dict[str, Any] = {
        "Meta": type("Meta", (BaseMeta,), {"table_name": config.table_name("portfolio")}),
        "shard": NumberAttribute(hash_key=True),
        "__doc__": "One shard of the book's counters; the book is the sum of the shards."}
    for group, name in COUNTERS:
        count, principal = _counter(group, name)
        attributes[count] = IntAttribute(default=0)
        attributes[principal] = IntAttribute(default=0)
    return type("PortfolioShardRecord", (Model,), attributes)


PortfolioShardRecord = register_table(_shard_model())


def bucket_of(days_past_due: int) -> str:
    for name, low, high in BUCKETS:
        if days_past_due >= low and (high is None or days_past_due <= high):
            return name
    raise ValueError(days_past_due)


def bucket(status: str, state: engine.LoanState | None, on: date) -> str | None:
    """A loan's days-past-due bucket on `on`: None unless it is live."""
    if status not in LIVE or state is None:
        return None
    return bucket_of(engine.days_past_due(state, on))


def _place(status: str, dpd_bucket: str | None, outstanding: int) -> dict[str, int]:
    """The counter cells one loan adds to: its status's, and its bucket's when it has one."""
    place: dict[str, int] = {}
    for group, name in (("status", status), ("dpd", dpd_bucket)):
        if name is None:
            continue
        count, principal = _counter(group, name)
        place[count] = place.get(count, 0) + 1
        place[principal] = place.get(principal, 0) + outstanding
    return place


def move(tx: Any, loan: Any | None, status: str, dpd_bucket: str | None, outstanding: int) -> list[Any]:
    """In transaction `tx`, move a loan's contribution from where `loan` (as read; None for a
    new loan) had it to (`status`, `dpd_bucket`, `outstanding`). Returns the loan's own update
    actions (its stored bucket) for the caller's update of the loan; adds nothing when the
    loan's place is unchanged."""
    from chalicelib.loans.models import LoanRecord

    before = _place(loan.status, loan.dpd_bucket, loan.outstanding_principal) if loan is not None else {}
    after = _place(status, dpd_bucket, outstanding)
    deltas = {name: after.get(name, 0) - before.get(name, 0) for name in {*before, *after}}
    actions = [getattr(PortfolioShardRecord, name).add(delta) for name, delta in sorted(deltas.items()) if delta]
    if actions:
        tx.update(PortfolioShardRecord(shard=random.randrange(SHARDS)), actions=actions)
    if loan is None or loan.dpd_bucket == dpd_bucket:
        return []
    return [LoanRecord.dpd_bucket.set(dpd_bucket) if dpd_bucket else LoanRecord.dpd_bucket.remove()]


def _empty() -> dict[str, dict[str, dict[str, int]]]:
    return {"by_status": {s: {"count": 0, "outstanding_principal": 0} for s in STATUSES},
            "by_days_past_due": {name: {"count": 0, "outstanding_principal": 0} for name, _, _ in BUCKETS}}


def _add(totals: dict, group: str, name: str, count: int, principal: int) -> None:
    cell = totals["by_status" if group == "status" else "by_days_past_due"][name]
    cell["count"] += count
    cell["outstanding_principal"] += principal


def read() -> dict[str, dict[str, dict[str, int]]]:
    """The sums of the shards: one BatchGet of SHARDS items (and the items it left unprocessed)."""
    totals = _empty()
    for shard in PortfolioShardRecord.batch_get(list(range(SHARDS)), consistent_read=True):
        for group, name in COUNTERS:
            count, principal = _counter(group, name)
            _add(totals, group, name, getattr(shard, count) or 0, getattr(shard, principal) or 0)
    return totals


def recount(on: date | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """The same totals from every loan (the nightly drift check): each live loan in the bucket
    it has on `on`, or, with `on` None, in the bucket it stores (what the counters hold)."""
    from chalicelib.loans import schedules
    from chalicelib.loans.models import LoanRecord

    totals = _empty()
    for status in STATUSES:
        for loan in LoanRecord.by_status.query(status):
            _add(totals, "status", status, 1, loan.outstanding_principal)
            if status in LIVE:
                name = loan.dpd_bucket if on is None else bucket(status, schedules.load(loan.state), on)
                if name is not None:
                    _add(totals, "dpd", name, 1, loan.outstanding_principal)
    return totals


def drift(counted: dict, expected: dict) -> list[dict[str, Any]]:
    """Each cell where the counters differ from a recount: [{"group", "name", "field",
    "counters", "recount"}]."""
    found = []
    for group in ("by_status", "by_days_past_due"):
        for name, cell in expected[group].items():
            for field, value in cell.items():
                if counted[group][name][field] != value:
                    found.append({"group": group, "name": name, "field": field,
                                  "counters": counted[group][name][field], "recount": value})
    return found
