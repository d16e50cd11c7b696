"""The ledger anyone can check: anchors of each day's chain heads, statements, verification.

The entries themselves are `loans.models.LedgerEntryRecord` (posted with the money they
record); their hashes and the Merkle arithmetic are `money.chain` (pure). This slice anchors
each day (`anchors`, run by close of business), gives a borrower the statement of a loan with
its proofs (`statement`) and lets an operator check the whole record (`audit`).
"""
