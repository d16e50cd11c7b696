"""Journal entries balance to the fen and refuse anything that is not integer fen."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chalicelib.money import ledger


def test_disbursement_moves_principal_to_receivables():
    entry = ledger.disbursement("L1", 1_000_000)
    assert ledger.balances([entry.to_json()]) == {ledger.PRINCIPAL_RECEIVABLE: 1_000_000,
                                                  ledger.PAYOUT_CLEARING: -1_000_000}
    assert entry.entry_id == "disbursement#L1"  # one per loan: a retry cannot post it twice


@given(principal=st.integers(0, 10**8), interest=st.integers(0, 10**6),
       posted=st.integers(0, 10**5), unposted=st.integers(0, 10**5))
def test_repayment_entries_always_balance(principal, interest, posted, unposted):
    amount = principal + interest + posted + unposted
    if amount == 0:
        return
    entry = ledger.repayment("R1", amount, principal=principal, interest=interest,
                             penalty_posted=posted, penalty_unposted=unposted)
    assert sum(ledger.balances([entry.to_json()]).values()) == 0


def test_an_unbalanced_entry_is_refused():
    with pytest.raises(ValueError, match="balance"):
        ledger.JournalEntry("x", "test", "x", (ledger.Line("a", debit=5), ledger.Line("b", credit=4)))


@pytest.mark.parametrize("bad", [1.5, -1, True, "5"])
def test_lines_take_non_negative_integer_fen_only(bad):
    with pytest.raises(ValueError):
        ledger.Line("a", debit=bad)
