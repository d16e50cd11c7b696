"""What a loan's writes cost (issue 17): DynamoDB bills a write by the started kilobyte of the
item, twice inside a transaction, and once more in each index that projects it. The loan is
written by every payout, repayment and night of close of business, so its item must stay
small: its schedule state (about 4 KB of JSON for twelve installments) is stored compressed."""
from __future__ import annotations

import boto3

from bench.cost_bench import item_size
from chalicelib.loans import disbursement, schedules
from chalicelib.loans.models import LoanRecord
from tests.routes.conftest import NOW, draw


def stored(loan_id: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName=LoanRecord.Meta.table_name,
                                             Key={"loan_id": {"S": loan_id}}, ConsistentRead=True)["Item"]


def test_a_paid_out_twelve_month_loan_is_one_item_of_under_two_kilobytes(borrower):
    loan_id = draw(borrower, amount=500_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    item = stored(loan_id)
    assert item_size(item) <= 2048, item_size(item)
    # the state reads back as the engine wrote it: twelve installments, to the fen
    loan = LoanRecord.get(loan_id, consistent_read=True)
    state = schedules.load(loan.state)
    assert len(state.installments) == 12
    assert sum(i.principal for i in state.installments) == 500_000
    assert loan.state.startswith("{") and "installments" in loan.state
