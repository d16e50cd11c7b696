"""One Idempotency-Key draws one loan and debits the wallet once, whatever fails in between.

Found by a ledger review: the loan and repayment ids were fresh UUIDs and Powertools wrote the
key's record after the money write, outside its transaction. When that record write failed, or
the container died between the two, a retry with the same key after the in-progress record
expired drew a second loan or debited the wallet again. Now the key commits with the money
write (`adapters.idempotency.MoneyKey`), so the retry answers the first result.
"""
from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from chalicelib.core.errors import DependencyDown
from chalicelib.adapters.idempotency import MONEY_PREFIX, IdempotencyRecord
from chalicelib.loans import credit
from chalicelib.loans import service as loans_service
from chalicelib.repay import notifications, service
from chalicelib.repay.models import RepaymentRecord
from tests.proof.world import World, check_invariants


class Death(BaseException):
    """The container died (a Lambda timeout): no `except Exception` of the function runs."""


@pytest.fixture()
def world(client):
    with World(client, ("u-a",)) as world:
        world.reset()
        assert world.apply("u-a")[1]["status"] == "approved"
        yield world


@pytest.fixture()
def active_loan(world):
    status, loan = world.draw("u-a", 100_000, 6, "equal_installment")
    assert status == 201
    assert world.sweep_and_disburse() == []
    return loan["loan_id"]


def expire_in_progress_records() -> None:
    """Powertools' in-progress record expires (with the function's remaining time, in AWS)."""
    for record in IdempotencyRecord.scan(consistent_read=True):
        if not record.id.startswith(MONEY_PREFIX):
            record.delete()


def fail_the_record_write(monkeypatch) -> None:
    def fail(self, data, result):
        raise RuntimeError("the idempotency table did not answer")

    monkeypatch.setattr(DynamoDBPersistenceLayer, "save_success", fail)


def loans_of(world):
    return [loan for loan in world.loans() if loan.status != "cancelled"]


# --- drawing -------------------------------------------------------------------------------------

def test_a_failed_record_write_after_the_draw_answers_and_a_retry_draws_nothing_more(world, monkeypatch):
    # Given the idempotency record cannot be written after the loan's transaction
    fail_the_record_write(monkeypatch)
    status, first = world.draw("u-a", 200_000, 6, "equal_installment", key="draw-1")
    # Then the borrower is told what was done
    assert status == 201
    monkeypatch.undo()
    # When the client retries with the same key once the in-progress record expired
    expire_in_progress_records()
    status, again = world.draw("u-a", 200_000, 6, "equal_installment", key="draw-1")
    # Then it answers the first result, and the line was drawn once
    assert (status, again) == (201, first)
    assert [loan.loan_id for loan in loans_of(world)] == [first["loan_id"]]
    assert credit.get_line("u-a").drawn == 200_000
    check_invariants(world)


def test_a_container_that_dies_after_the_draw_leaves_one_loan_for_any_retry(world, monkeypatch):
    # Given the function dies right after the loan's transaction committed
    def die(loan_id):
        raise Death("timed out after the drawdown")

    monkeypatch.setattr(loans_service, "queue_disbursement", die)
    with pytest.raises(Death):
        world.draw("u-a", 200_000, 6, "equal_installment", key="draw-2")
    monkeypatch.undo()
    [drawn] = loans_of(world)
    # When the client retries with the same key, first too early, then after the record expired
    status, answer = world.draw("u-a", 200_000, 6, "equal_installment", key="draw-2")
    assert (status, answer["error"]["code"]) == (409, "IDEMPOTENCY_IN_PROGRESS")
    expire_in_progress_records()
    status, answer = world.draw("u-a", 200_000, 6, "equal_installment", key="draw-2")
    # Then it answers that loan: no second drawdown
    assert status == 201 and answer["loan_id"] == drawn.loan_id
    assert [loan.loan_id for loan in loans_of(world)] == [drawn.loan_id]
    assert credit.get_line("u-a").drawn == 200_000
    # and the same key with another body is refused, not drawn
    status, answer = world.draw("u-a", 300_000, 6, "equal_installment", key="draw-2")
    assert (status, answer["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    check_invariants(world)


# --- repaying ------------------------------------------------------------------------------------

def test_a_failed_record_write_after_the_repayment_debits_once(world, active_loan, monkeypatch):
    fail_the_record_write(monkeypatch)
    status, first = world.repay("u-a", active_loan, 30_000, key="pay-1")
    assert status == 201
    monkeypatch.undo()
    expire_in_progress_records()
    status, again = world.repay("u-a", active_loan, 30_000, key="pay-1")
    assert (status, again) == (201, first)
    assert list(world.collector.collected.values()) == [30_000]
    assert world.loan("u-a", active_loan)[1]["outstanding_principal"] == 70_000
    check_invariants(world)


def test_a_container_that_dies_after_the_repayment_is_posted_debits_once(world, active_loan, monkeypatch):
    # Given the function dies after the repayment's transaction, before anything else
    def die(*args, **kwargs):
        raise Death("timed out after posting")

    monkeypatch.setattr(notifications, "enqueue", die)
    monkeypatch.setattr(service, "enqueue", die)
    with pytest.raises(Death):
        world.repay("u-a", active_loan, 30_000, key="pay-2")
    monkeypatch.undo()
    # When the client retries with the same key after the in-progress record expired
    expire_in_progress_records()
    status, answer = world.repay("u-a", active_loan, 30_000, key="pay-2")
    # Then it answers the posted repayment and the wallet was debited once
    assert status == 201 and answer["allocation"]["principal"] == 30_000
    assert answer["loan"] == {"status": "active", "outstanding_principal": 70_000}
    assert list(world.collector.collected) == [answer["repayment_id"]]
    assert world.loan("u-a", active_loan)[1]["outstanding_principal"] == 70_000
    check_invariants(world)


def test_a_wallet_timeout_is_being_confirmed_and_a_retry_waits_for_the_reconciler(world, active_loan,
                                                                                   monkeypatch):
    # Given the wallet takes the money but its answer never arrives
    real_collect = world.collector.collect

    def timed_out(**kwargs):
        real_collect(**kwargs)
        raise DependencyDown("The wallet did not answer in time.", code="PAYMENT_UNCONFIRMED")

    monkeypatch.setattr(world.collector, "collect", timed_out)
    status, answer = world.repay("u-a", active_loan, 30_000, key="pay-3")
    # Then the borrower is told the payment is being confirmed, never that nothing was charged
    assert (status, answer["error"]["code"]) == (503, "PAYMENT_PENDING")
    # (in Chinese, the default language: "do not pay again", never "nothing was charged")
    assert "没有扣款" not in answer["error"]["message"] and "未扣款" not in answer["error"]["message"]
    assert "请不要重复付款" in answer["error"]["message"]
    monkeypatch.undo()
    # When they retry with the same key before the reconciler ran: they wait, no second debit
    status, answer = world.repay("u-a", active_loan, 30_000, key="pay-3")
    assert (status, answer["error"]["code"]) == (409, "PAYMENT_PENDING")
    assert len(world.collector.collected) == 1
    status, answer = world.repay("u-a", active_loan, 40_000, key="pay-3")
    assert (status, answer["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    check_invariants(world)
    # When the reconciler has given the unconfirmed money back
    from datetime import timedelta
    world.run_schedule("repayment_reconciler", world.clock.now() + timedelta(minutes=11))
    [first_attempt] = world.collector.collected
    assert world.collector.refunded == {first_attempt: 30_000}
    # Then a retry with the same key is a new attempt: one debit kept, in the ledger
    status, answer = world.repay("u-a", active_loan, 30_000, key="pay-3")
    assert status == 201 and answer["repayment_id"] != first_attempt
    assert RepaymentRecord.get(answer["repayment_id"]).status == "posted"
    kept = {rid: amount for rid, amount in world.collector.collected.items()
            if rid not in world.collector.refunded}
    assert kept == {answer["repayment_id"]: 30_000}
    check_invariants(world, settled=True)
