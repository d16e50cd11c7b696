"""DynamoDB models of the repay slice."""
from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, IntAttribute, register_table


class InboxByCreated(GlobalSecondaryIndex):
    """A user's notifications by time, so the inbox reads one page, newest first."""

    class Meta:
        index_name = "inbox_by_created"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


@register_table
class NotificationRecord(Model):
    """One message to a person: the in-app inbox entry and the send-once claim in one item.

    `notification_id` is chosen by the producer and is deterministic for reminders (loan,
    installment, kind, day), so a message delivered twice maps to the same item.
    """

    class Meta(BaseMeta):
        table_name = config.table_name("notifications")

    user_id = UnicodeAttribute(hash_key=True)
    notification_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    channel = UnicodeAttribute()
    text = UnicodeAttribute()
    loan_id = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    status = UnicodeAttribute()  # "sending" while leased by a consumer, then "sent"
    lease_until = IntAttribute()  # epoch seconds; a crashed consumer's lease expires

    inbox_by_created = InboxByCreated()


class OpenInstallmentsByDueDate(GlobalSecondaryIndex):
    """Sparse: only unpaid installments carry `open_shard`, so the daily jobs read exactly the
    installments that are due, overdue or about to be due, never the whole table."""

    class Meta:
        index_name = "open_by_due_date"
        projection = AllProjection()

    open_shard = UnicodeAttribute(hash_key=True)
    due_date = UnicodeAttribute(range_key=True)


@register_table
class InstallmentRecord(Model):
    """An index entry per installment of an active loan (the loan item holds the money; this
    item lets the jobs find installments by due date). Written in the same transaction."""

    class Meta(BaseMeta):
        table_name = config.table_name("installments")

    loan_id = UnicodeAttribute(hash_key=True)
    installment = IntAttribute(range_key=True)
    user_id = UnicodeAttribute()
    product_id = UnicodeAttribute()
    due_date = UnicodeAttribute()
    status = UnicodeAttribute()
    open_shard = UnicodeAttribute(null=True)

    open_by_due_date = OpenInstallmentsByDueDate()


class UnsettledRepayments(GlobalSecondaryIndex):
    """Sparse: only repayments whose money is not yet settled (posted or given back) carry
    `unsettled`, so the reconciler reads exactly those."""

    class Meta:
        index_name = "unsettled_by_created"
        projection = AllProjection()

    unsettled = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


@register_table
class RepaymentRecord(Model):
    """The intent of a repayment, written before any money moves. The loan's transaction marks
    it `posted`; a refund marks it `refunded`. One that stays `open` (the function died between
    the wallet debit and the write) is settled by the reconciler: posted if the ledger has it,
    otherwise given back. `refunding` is the reconciler's claim, so a late write cannot post
    money that is on its way back."""

    class Meta(BaseMeta):
        table_name = config.table_name("repayments")

    repayment_id = UnicodeAttribute(hash_key=True)
    loan_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    amount = IntAttribute()
    status = UnicodeAttribute()  # open -> posted | void (never taken) | refunding -> refunded or void
    created_at = UnicodeAttribute()
    settled_at = UnicodeAttribute(null=True)
    unsettled = UnicodeAttribute(null=True)  # "1" while open or refunding

    unsettled_by_created = UnsettledRepayments()
