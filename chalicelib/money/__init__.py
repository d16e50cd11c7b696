"""The money floor: pure loan arithmetic in integer fen, below both `loans` and `repay`.

`fen` (rounding and rates), `schedule` (due dates, level payment, interest by the day),
`engine` (installments as they are paid, payoff, repayments, penalties), `apr` (the all-in
rate by IRR) and `ledger` (balanced journal entries). No AWS, HTTP or slice import here:
`tests/unit/test_money_floor.py` enforces it.
"""
