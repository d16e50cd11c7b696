"""Regression: money collected for a repayment is either in the ledger or given back.

Found by the fault simulator: when the repayment's transaction failed after the wallet had
collected (throttled, a conflict, the container dying), the API answered 500 "nothing was
changed" and kept the money without posting it; and a retry of a write that had in fact
committed would have been refunded while staying in the ledger.
"""
from __future__ import annotations

import botocore.client
import pytest
from botocore.exceptions import ClientError

from tests.proof.world import World, check_invariants


@pytest.fixture()
def active_loan(client):
    with World(client, ("u-a",)) as world:
        world.reset()
        assert world.apply("u-a")[1]["status"] == "approved"
        status, loan = world.draw("u-a", 100_000, 6, "equal_installment")
        assert status == 201
        assert world.sweep_and_disburse() == []
        yield world, loan["loan_id"]


def fail_the_posting_transaction(monkeypatch, *, commit_first: bool):
    """The second transaction of a repayment (the first writes its intent and key) fails."""
    original = botocore.client.BaseClient._make_api_call
    armed = {"skip": 1, "on": True}

    def call(self, operation, params):
        if armed["on"] and operation == "TransactWriteItems" and armed["skip"]:
            armed["skip"] -= 1
        elif armed["on"] and operation == "TransactWriteItems":
            armed["on"] = False
            if commit_first:
                original(self, operation, params)
            raise ClientError({"Error": {"Code": "ThrottlingException" if not commit_first else
                                         "InternalServerError", "Message": "injected"}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)


def test_a_failed_write_after_collection_refunds_and_answers_503(active_loan, monkeypatch):
    world, loan_id = active_loan
    fail_the_posting_transaction(monkeypatch, commit_first=False)
    status, answer = world.repay("u-a", loan_id, 30_000)
    assert status == 503 and answer["error"]["code"] == "REPAYMENT_UNAVAILABLE"
    assert world.collector.refunded == world.collector.collected  # every fen given back
    assert world.loan("u-a", loan_id)[1]["outstanding_principal"] == 100_000
    check_invariants(world)
    status, answer = world.repay("u-a", loan_id, 30_000)  # and the borrower can try again
    assert status == 201 and answer["allocation"]["principal"] == 30_000
    check_invariants(world)


def test_a_write_whose_answer_was_lost_keeps_the_money_once(active_loan, monkeypatch):
    world, loan_id = active_loan
    fail_the_posting_transaction(monkeypatch, commit_first=True)
    status, answer = world.repay("u-a", loan_id, 30_000)
    assert status == 201, answer
    assert answer["allocation"] == {"penalty": 0, "interest": 0, "principal": 30_000}
    assert answer["loan"] == {"status": "active", "outstanding_principal": 70_000}
    assert world.collector.refunded == {}
    check_invariants(world)
