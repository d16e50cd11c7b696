"""The ledger's anchors and each loan's proofs, append-only like the entries."""
from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, IntAttribute, register_table


@register_table
class AnchorRecord(Model):
    """One Asia/Shanghai day's Merkle root over the heads of the chains that changed that day.
    Written once (conditional put), never updated; the same document is kept in the S3 anchor
    bucket under Object Lock, where nobody can change it before its retention ends."""

    class Meta(BaseMeta):
        table_name = config.table_name("ledger-anchors")

    date = UnicodeAttribute(hash_key=True)
    root = UnicodeAttribute()
    loans = IntAttribute()
    entries = IntAttribute()
    anchored_at = UnicodeAttribute()
    object_key = UnicodeAttribute()  # the S3 copy: s3://<anchor bucket>/<object_key>


@register_table
class ProofRecord(Model):
    """A loan's Merkle proof for one anchored day (its chain changed that day): what the
    borrower's statement shows, so it never rebuilds a day's tree. Written once per loan and day."""

    class Meta(BaseMeta):
        table_name = config.table_name("ledger-proofs")

    loan_id = UnicodeAttribute(hash_key=True)
    date = UnicodeAttribute(range_key=True)
    head = UnicodeAttribute()   # the loan's chain head that day (its last entry's hash)
    seq = IntAttribute()        # that entry's place in the chain
    proof = UnicodeAttribute()  # JSON [{"side", "hash"}] from the leaf to the day's root
