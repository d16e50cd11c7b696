"""DynamoDB models of the loans slice: products, applications, credit lines, loans, ledger."""
from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, CompressedTextAttribute, FenAttribute, IntAttribute, register_table


@register_table
class ProductRecord(Model):
    """A loan product as seeded from `catalog.json` (the catalog in git is the source)."""

    class Meta(BaseMeta):
        table_name = config.table_name("products")

    product_id = UnicodeAttribute(hash_key=True)
    catalog_version = IntAttribute()
    name = UnicodeAttribute()
    institution = UnicodeAttribute()
    kind = UnicodeAttribute()
    min_amount = FenAttribute()
    max_amount = FenAttribute()
    term_months = ListAttribute(of=NumberAttribute)
    repayment_methods = ListAttribute(of=UnicodeAttribute)
    apr_min = UnicodeAttribute()
    apr_max = UnicodeAttribute()
    reminder_days = ListAttribute(of=NumberAttribute)


class ApplicationsByUser(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    decided_at = UnicodeAttribute(range_key=True)


class ApplicationsInReview(GlobalSecondaryIndex):
    """Sparse: only applications waiting for an operator carry `review_queue`."""

    class Meta:
        index_name = "in_review"
        projection = AllProjection()

    review_queue = UnicodeAttribute(hash_key=True)
    decided_at = UnicodeAttribute(range_key=True)


class ApplicationsByDay(GlobalSecondaryIndex):
    """The automated decisions of one Asia/Shanghai day, spread over a few shards (`decided_day`
    = "YYYY-MM-DD#s"), for the risk slice's weekly model monitoring: a week is 7 x DAY_SHARDS
    queries of the decisions themselves, never a scan of the table."""

    class Meta:
        index_name = "by_day"
        projection = IncludeProjection(["decision", "status"])

    decided_day = UnicodeAttribute(hash_key=True)
    decided_at = UnicodeAttribute(range_key=True)


DAY_SHARDS = 4


@register_table
class ApplicationRecord(Model):
    """An application and its decision, stored with everything needed to replay it."""

    class Meta(BaseMeta):
        table_name = config.table_name("applications")

    application_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    product_id = UnicodeAttribute()
    amount = FenAttribute()
    term_months = IntAttribute()
    purpose = UnicodeAttribute()
    applicant = UnicodeAttribute()  # JSON of the applicant block as submitted
    business_credit_code = UnicodeAttribute(null=True)  # business loans only (GB 32100)
    status = UnicodeAttribute()  # approved | declined | review
    credit_limit = FenAttribute()
    apr = UnicodeAttribute(null=True)
    reasons = UnicodeAttribute()  # JSON list of {code, message}
    model_version = UnicodeAttribute(null=True)
    decided_at = UnicodeAttribute()
    decision = UnicodeAttribute()  # JSON: the automated decision, immutable (inputs, probability...)
    review_queue = UnicodeAttribute(null=True)
    reviewed_by = UnicodeAttribute(null=True)
    review_note = UnicodeAttribute(null=True)
    reviewed_at = UnicodeAttribute(null=True)
    decided_day = UnicodeAttribute(null=True)  # "YYYY-MM-DD#shard" (Asia/Shanghai): by_day

    by_user = ApplicationsByUser()
    in_review = ApplicationsInReview()
    by_day = ApplicationsByDay()


@register_table
class DeclineRecord(Model):
    """The latest decline of a user for a product (the re-apply cool-down counts from it), so
    a decision reads one item instead of the user's whole application history."""

    class Meta(BaseMeta):
        table_name = config.table_name("declines")

    user_id = UnicodeAttribute(hash_key=True)
    product_id = UnicodeAttribute(range_key=True)
    declined_on = UnicodeAttribute()  # Asia/Shanghai date of the decision
    application_id = UnicodeAttribute()


@register_table
class CreditLineRecord(Model):
    """The user's revolving line. `drawn` is the principal not yet repaid of live loans; it
    only moves inside the same transaction as the loan that changes it.

    Draws are serialised on this item: each one writes `draw_seq` + 1 on the condition that
    it is still the value it read, with `loan_ids`, the loans that were live then plus the new
    one. So a draw checks the hard rules (no loan overdue, fewer than 3 live) on a consistent
    read of exactly the loans that can be live, and two draws cannot both pass on one reading.
    A line without `draw_seq` predates this and is read from the loans index once.

    Approvals move the line with a condition on the limit and `limit_raised_at` they read, so
    two approvals cannot both raise it inside the 30 days the first one starts."""

    class Meta(BaseMeta):
        table_name = config.table_name("credit-lines")

    user_id = UnicodeAttribute(hash_key=True)
    credit_limit = FenAttribute()
    drawn = FenAttribute()
    apr = UnicodeAttribute()
    application_id = UnicodeAttribute()  # the approval that set the line: the only one drawable
    product_id = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    expires_on = UnicodeAttribute()
    draw_seq = IntAttribute(null=True)
    loan_ids = ListAttribute(of=UnicodeAttribute, null=True)
    limit_raised_at = UnicodeAttribute(null=True)  # when the line was opened or last raised


class LoansByUser(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class LoansByStatus(GlobalSecondaryIndex):
    """For the portfolio's nightly recount (chalicelib.loans.aggregates): loans of one status
    without scanning the table."""

    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class LoansDueForDisbursement(GlobalSecondaryIndex):
    """Sparse: only `scheduled` loans carry `disburse_shard`, so the sweep reads due loans only."""

    class Meta:
        index_name = "disburse_due"
        projection = KeysOnlyProjection()

    disburse_shard = UnicodeAttribute(hash_key=True)
    disburse_at = UnicodeAttribute(range_key=True)


@register_table
class LoanRecord(Model):
    class Meta(BaseMeta):
        table_name = config.table_name("loans")

    loan_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    application_id = UnicodeAttribute()
    product_id = UnicodeAttribute()
    status = UnicodeAttribute()
    principal = FenAttribute()
    outstanding_principal = FenAttribute()
    apr = UnicodeAttribute()
    repayment_method = UnicodeAttribute()
    term_months = IntAttribute()
    bank_card_id = UnicodeAttribute()
    card_last4 = UnicodeAttribute()
    disburse_at = UnicodeAttribute()  # UTC ISO instant, sortable
    disburse_shard = UnicodeAttribute(null=True)
    disbursing_since = UnicodeAttribute(null=True)
    disbursed_at = UnicodeAttribute(null=True)
    payout_reference = UnicodeAttribute(null=True)
    failure_reason = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    closed_at = UnicodeAttribute(null=True)
    # JSON: the schedule engine's state (preview until disbursed), stored compressed: it is
    # most of the item, and the item is written by every payout, repayment and late night
    state = CompressedTextAttribute()
    # The head of the loan's ledger chain: its entry count, last hash and last entry id
    # (moved in the same transaction as every entry posted; chalicelib.money.chain).
    # Days-past-due bucket as of its last write (chalicelib.loans.aggregates); live loans only.
    dpd_bucket = UnicodeAttribute(null=True)
    ledger_seq = IntAttribute(null=True)
    ledger_head = UnicodeAttribute(null=True)
    ledger_head_entry = UnicodeAttribute(null=True)
    version = VersionAttribute()

    by_user = LoansByUser()
    by_status = LoansByStatus()
    disburse_due = LoansDueForDisbursement()


class LedgerByDay(GlobalSecondaryIndex):
    """The entries of one Asia/Shanghai day, spread over LEDGER_DAY_SHARDS shards by loan
    (`day_shard` = "YYYY-MM-DD#s"): the day's anchor reads the entries of that day only, never
    the book, and takes each loan's last one (its chain's head that day)."""

    class Meta:
        index_name = "by_day"
        projection = IncludeProjection(["seq", "hash"])

    day_shard = UnicodeAttribute(hash_key=True)
    loan_id = UnicodeAttribute(range_key=True)


LEDGER_DAY_SHARDS = 8


def ledger_shard(loan_id: str) -> int:
    import zlib
    return zlib.crc32(loan_id.encode()) % LEDGER_DAY_SHARDS


@register_table
class LedgerEntryRecord(Model):
    """One balanced journal entry, a link of its loan's hash chain (chalicelib.money.chain).
    Append-only: written by a conditional put and never updated or deleted (the functions'
    IAM policies grant neither); a correction is a new entry. `entry_id` is derived from its
    cause, so a retried posting of the same cause cannot be written twice; `seq`, `prev_hash`
    and `hash` chain it to the loan's previous entry, whose id `prev_entry_id` keeps (not
    hashed: it only names a deleted entry)."""

    class Meta(BaseMeta):
        table_name = config.table_name("ledger")

    loan_id = UnicodeAttribute(hash_key=True)
    entry_id = UnicodeAttribute(range_key=True)
    cause = UnicodeAttribute()
    cause_id = UnicodeAttribute()
    lines = UnicodeAttribute()  # JSON [{account, debit, credit}] in fen
    posted_at = UnicodeAttribute()
    seq = IntAttribute(null=True)  # null only on entries posted before the chain existed
    prev_hash = UnicodeAttribute(null=True)
    hash = UnicodeAttribute(null=True)
    prev_entry_id = UnicodeAttribute(null=True)
    day_shard = UnicodeAttribute(null=True)

    by_day = LedgerByDay()

    def link(self) -> Any:
        """This entry as a `chain.Link` (its `at` as the API shows it, +08:00)."""
        from chalicelib.core.clock import shanghai_iso
        from chalicelib.money import chain
        return chain.Link(self.loan_id, self.seq or 0, self.entry_id, shanghai_iso(self.posted_at),
                          self.cause, tuple(json.loads(self.lines)), self.prev_hash or "", self.hash or "",
                          self.prev_entry_id)

    @classmethod
    def append(cls, tx: TransactWrite, loan: "LoanRecord", entries: list[Any], posted_at: str) -> list[Any]:
        """Add `ledger.JournalEntry`s to transaction `tx` as the next links of `loan`'s chain,
        each only if its id is not posted yet; returns the actions that move the loan's head,
        for the loan's own update in the same transaction (whose version condition keeps two
        writers from extending the chain from the same head)."""
        from chalicelib.core.clock import parse_instant, shanghai_date, shanghai_iso
        from chalicelib.money import chain
        seq, head, head_entry = loan.ledger_seq or 0, loan.ledger_head or chain.GENESIS, loan.ledger_head_entry
        day = shanghai_date(parse_instant(posted_at)).isoformat()
        for entry in entries:
            seq += 1
            lines = entry.to_json()
            link = chain.link(loan.loan_id, seq, entry.entry_id, shanghai_iso(posted_at), entry.cause,
                              lines, head, head_entry)
            tx.save(cls(loan_id=loan.loan_id, entry_id=entry.entry_id, cause=entry.cause,
                        cause_id=entry.cause_id, lines=json.dumps(lines), posted_at=posted_at,
                        seq=seq, prev_hash=head, hash=link.hash, prev_entry_id=head_entry,
                        day_shard=f"{day}#{ledger_shard(loan.loan_id)}"),
                    condition=cls.entry_id.does_not_exist())
            head, head_entry = link.hash, entry.entry_id
        if not entries:
            return []
        return [LoanRecord.ledger_seq.set(seq), LoanRecord.ledger_head.set(head),
                LoanRecord.ledger_head_entry.set(head_entry)]
