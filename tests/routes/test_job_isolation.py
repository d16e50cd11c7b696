"""Daily jobs that one bad item cannot stop: close of business and the repayment reconciler
process each loan / intent on its own, count and report what failed, and a rerun finishes it.

Also: a close of business that catches up after a long job outage splits its postings so no
DynamoDB transaction exceeds 100 items (moto does not enforce the limit: every
TransactWriteItems call is recorded here and measured).
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

import botocore.client
import pytest
from botocore.exceptions import ClientError

from chalicelib import wiring
from chalicelib.core import observability
from chalicelib.core.clock import SHANGHAI
from chalicelib.ledger import audit
from chalicelib.loans import disbursement
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from chalicelib.loans.schedules import load
from chalicelib.money import engine, ledger
from chalicelib.repay import service
from chalicelib.repay.models import InstallmentRecord, RepaymentRecord
from infra.lambda_events import scheduled_event
from infra.local_stack import serialise_aws
from tests import queues
from tests.routes.conftest import NOW, draw, loan_of_its_own

MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit


def beijing(day: date, hour: int = 0, minute: int = 5) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(timezone.utc)


class DynamoSpy:
    """Sees every botocore DynamoDB call (pynamodb makes a client per connection, so the one
    place that sees them all is `BaseClient._make_api_call`): records the size of each
    TransactWriteItems and raises for the transactions `poison` picks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transaction_sizes: list[int] = []
        self.poisoned: set[str] = set()  # every write of these loans fails
        self.fail_once: set[str] = set()  # the next write of these loans fails, then they heal
        self.poison_after: dict[str, int] = {}  # loan -> writes that pass before it is poisoned
        original = botocore.client.BaseClient._make_api_call
        spy = self

        def call(client, operation, params):  # type: ignore[no-untyped-def]
            if operation == "TransactWriteItems":
                items = params["TransactItems"]
                spy.transaction_sizes.append(len(items))
                loans = spy._loan_ids(items)
                for loan_id in loans & set(spy.poison_after):
                    spy.poison_after[loan_id] -= 1
                    if spy.poison_after[loan_id] < 0:
                        spy.poisoned.add(loan_id)
                if spy.poisoned & loans:
                    raise ClientError({"Error": {"Code": "ValidationException",
                                                 "Message": "injected: this loan's write fails"}},
                                      operation)
                if spy.fail_once & loans:
                    spy.fail_once -= loans
                    raise ClientError({"Error": {"Code": "InternalServerError",
                                                 "Message": "injected: a passing fault"}}, operation)
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)

    @staticmethod
    def _loan_ids(items: list[dict]) -> set[str]:
        found = set()
        for item in items:
            for action in item.values():
                key = action.get("Key") or action.get("Item") or {}
                if "loan_id" in key:
                    found.add(key["loan_id"]["S"])
        return found


@pytest.fixture()
def dynamo(monkeypatch):
    return DynamoSpy(monkeypatch)


@pytest.fixture()
def recorded(monkeypatch):
    """Metrics added and error lines logged, as (name, value) and (message, extra)."""
    seen = {"metrics": Counter(), "errors": []}
    add_metric = observability.metrics.add_metric

    def metric(name, unit, value, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["metrics"][name] += value
        return add_metric(name=name, unit=unit, value=value, *args, **kwargs)

    monkeypatch.setattr(observability.metrics, "add_metric", metric)
    for level in ("error", "exception"):
        def log(msg, *args, _level=level, **kwargs):  # type: ignore[no-untyped-def]
            seen["errors"].append((msg, kwargs.get("extra", {})))
        monkeypatch.setattr(observability.logger, level, log)
    return seen


def penalty_entries(loan_id: str) -> list[LedgerEntryRecord]:
    return [e for e in LedgerEntryRecord.query(loan_id, consistent_read=True) if e.cause == "penalty"]


def balances(loan_id: str) -> dict[str, int]:
    return ledger.balances([json.loads(e.lines) for e in LedgerEntryRecord.query(loan_id, consistent_read=True)])


def expected_penalty_days(disbursed_state: str, business_date: date) -> set[str]:
    """Entry ids of every (installment, day) the close of `business_date` must have posted:
    days D+1 .. X-1 of each installment due on or before X-2 (all unpaid here)."""
    ids = set()
    for item in load(disbursed_state).installments:
        if item.due_date <= business_date - timedelta(days=2):
            day = item.due_date + timedelta(days=1)
            while day < business_date:
                ids.add(f"penalty#{item.number}#{day.isoformat()}")
                day += timedelta(days=1)
    return ids


def assert_caught_up(loan_id: str, before_state: str, business_date: date) -> None:
    """Overdue, every day's penalty posted exactly once, as one close for the whole span would
    have posted it, and the ledger agrees with the loan's state to the fen."""
    record = LoanRecord.get(loan_id, consistent_read=True)
    assert record.status == "overdue"
    entries = penalty_entries(loan_id)
    ids = Counter(e.entry_id for e in entries)
    assert set(ids) == expected_penalty_days(before_state, business_date)
    assert all(n == 1 for n in ids.values())
    in_one_go = engine.close_of_business(load(before_state), business_date)
    assert {f"penalty#{p.installment}#{p.day.isoformat()}": p.amount for p in in_one_go.posted} == {
        e.entry_id: json.loads(e.lines)[0]["debit"] for e in entries}
    state = load(record.state)
    assert state.to_dict() == in_one_go.state.to_dict()
    totals = balances(loan_id)
    assert sum(totals.values()) == 0
    assert totals[ledger.PENALTY_RECEIVABLE] == sum(i.penalty_posted for i in state.installments) > 0
    late = {i.number for i in state.installments if i.due_date <= business_date - timedelta(days=2)}
    index = {i.installment: i for i in InstallmentRecord.query(loan_id, consistent_read=True)}
    assert {n for n, item in index.items() if item.status == "overdue"} == late
    assert all(item.open_shard for item in index.values())


# --- close of business: a long outage is caught up in transactions of at most 100 items ---

def test_a_loan_90_days_late_after_a_job_outage_is_caught_up_in_transactions_of_100_items_at_most(
        borrower, dynamo):
    # Given a 24-month loan nobody paid, and no close of business since it was disbursed
    loan_id = draw(borrower, 240_000, term=24)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    before = LoanRecord.get(loan_id).state
    first_due = load(before).installments[0].due_date
    business_date = first_due + timedelta(days=90)
    # (three installments late: 89 + 61 + 30 days of penalty, plus 24 index items and the loan)
    assert len(expected_penalty_days(before, business_date)) == 180
    dynamo.transaction_sizes.clear()

    # When the jobs come back 90 days after the first due date
    result = service.close_of_business(business_date, beijing(business_date))

    # Then every transaction fits DynamoDB's limit, and the loan is fully caught up
    assert dynamo.transaction_sizes and max(dynamo.transaction_sizes) <= MAX_TRANSACTION_ITEMS, \
        dynamo.transaction_sizes
    assert len(dynamo.transaction_sizes) > 1  # it had to be split
    assert result["penalty_days_posted"] == 180 and result["failed"] == 0
    assert_caught_up(loan_id, before, business_date)
    # and a replay of the same day posts nothing more
    dynamo.transaction_sizes.clear()
    assert service.close_of_business(business_date, beijing(business_date))["penalty_days_posted"] == 0
    assert dynamo.transaction_sizes == []
    assert_caught_up(loan_id, before, business_date)


def test_a_catch_up_that_dies_between_its_steps_resumes_where_it_stopped(borrower, dynamo):
    # Given a loan 90 days late whose catch-up commits its first step, then every later write fails
    loan_id = draw(borrower, 240_000, term=24)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    before = LoanRecord.get(loan_id).state
    business_date = load(before).installments[0].due_date + timedelta(days=90)
    dynamo.poison_after[loan_id] = 1

    # When close of business runs
    result = service.close_of_business(business_date, beijing(business_date))

    # Then the first step is committed whole (the loan consistent and overdue), the rest failed
    assert result["failed"] == 1 and result["failed_loans"] == [loan_id]
    record = LoanRecord.get(loan_id, consistent_read=True)
    assert result["penalty_days_posted"] == len(penalty_entries(loan_id))  # what it did is counted
    assert record.status == "overdue"
    partial = Counter(e.entry_id for e in penalty_entries(loan_id))
    assert 0 < len(partial) < 180 and all(n == 1 for n in partial.values())
    assert sum(balances(loan_id).values()) == 0
    assert balances(loan_id)[ledger.PENALTY_RECEIVABLE] == sum(
        i.penalty_posted for i in load(record.state).installments)

    # When the fault passes and the day is run again, it finishes without posting anything twice
    dynamo.poisoned.clear()
    dynamo.poison_after.clear()
    again = service.close_of_business(business_date, beijing(business_date))
    assert again["failed"] == 0 and again["penalty_days_posted"] == 180 - len(partial)
    assert max(dynamo.transaction_sizes) <= MAX_TRANSACTION_ITEMS
    assert_caught_up(loan_id, before, business_date)


# --- close of business: one poisoned loan among eight ----------------------------------------

@pytest.fixture()
def serialised_aws():
    undo = serialise_aws()
    yield
    undo()


@pytest.fixture()
def eight_late_loans(borrower):
    """Eight borrowers (each with an approved line) with one 12-month loan each, disbursed on
    NOW and never paid: all of them past their first grace day on 2027-02-12."""
    return sorted(loan_of_its_own(f"u-{n}", 100_000 + n * 1_000) for n in range(1, 9))


def run_close_of_business(client, business_date: date) -> dict:
    """The scheduled sweep as EventBridge invokes it (it queues the late loans)."""
    return client.lambda_.invoke("close_of_business", scheduled_event(beijing(business_date),
                                                                      "close_of_business")).payload


def test_one_poisoned_loan_does_not_stop_close_of_business_for_the_others(
        client, eight_late_loans, dynamo, recorded):
    # Given eight late loans, one of which cannot be written (its processing raises), sorted
    # first so that it shares its consumer batch with the others
    poisoned, others = eight_late_loans[0], eight_late_loans[1:]
    dynamo.poisoned.add(poisoned)
    business_date = date(2027, 2, 14)  # D+4: days D+1, D+2, D+3 owe penalty

    # When the scheduled close of business runs: its sweep queues one message per late loan,
    # and the consumer takes them (three deliveries of what fails, as SQS redelivers)
    answer = run_close_of_business(client, business_date)
    assert answer["queued"] == 8 and answer["installments_read"] == 8
    left = queues.drain(client, "closing", rounds=3)

    # Then only the poisoned loan's message is still failing (on AWS: redelivered until the
    # closing DLQ takes it, whose alarm pages)...
    assert [json.loads(m["Body"])["loan_id"] for m in left] == [poisoned]
    # ...while the other seven are overdue with their penalties posted
    for loan_id in others:
        assert LoanRecord.get(loan_id).status == "overdue"
        assert len(penalty_entries(loan_id)) == 3
    assert LoanRecord.get(poisoned).status == "active" and penalty_entries(poisoned) == []
    # ...and each failure is logged with the loan id; none pages yet (more deliveries to come)
    assert recorded["metrics"]["CloseOfBusinessLoanFailed"] == 0
    assert sum(extra.get("loan_id") == poisoned for _msg, extra in recorded["errors"]) == 3
    # ...until its last delivery (the fifth receive) fails too: counted once, it pages
    last = dict(left[0], Attributes={"ApproximateReceiveCount": "5"})
    assert queues.consume(client, "closing", [last]) == {last["MessageId"]}
    assert recorded["metrics"]["CloseOfBusinessLoanFailed"] == 1

    # When the poison is gone and the next sweep runs (or an operator redrives the DLQ)
    dynamo.poisoned.clear()
    assert run_close_of_business(client, business_date)["queued"] == 8
    assert queues.drain(client, "closing") == []

    # Then the poisoned loan is caught up and nothing was posted twice
    assert LoanRecord.get(poisoned).status == "overdue"
    for loan_id in eight_late_loans:
        assert len(penalty_entries(loan_id)) == 3
        assert sum(balances(loan_id).values()) == 0


def test_each_late_loan_is_closed_once_however_often_and_however_concurrently_its_message_comes(
        client, eight_late_loans, serialised_aws):
    # Given eight late loans and one on time (its first installment is due tomorrow)
    on_time = loan_of_its_own("u-9", 100_000, paid_out=NOW + timedelta(days=4))
    business_date = date(2027, 2, 14)
    states = {loan_id: LoanRecord.get(loan_id).state for loan_id in eight_late_loans}

    # When the sweep queues the late loans, only them
    assert run_close_of_business(client, business_date)["queued"] == 8
    messages = queues.receive("closing")
    assert sorted(json.loads(m["Body"])["loan_id"] for m in messages) == eight_late_loans

    # ...and every message comes three times: twice in shuffled batches, once more in a batch
    # that two consumers run at the same moment (DynamoDB's atomic requests, one lock each)
    copies = [dict(m, MessageId=f"{m['MessageId']}-{n}") for m in messages for n in range(2)]
    random.Random(5).shuffle(copies)
    assert queues.consume(client, "closing", copies) == set()
    failures: list[set[str]] = []
    threads = [threading.Thread(target=lambda: failures.append(queues.consume(client, "closing", messages)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [set(), set()]

    # Then each late loan was closed once: the days owed posted once, the ledger balanced and
    # its chain whole; the loan on time was not touched
    for loan_id in eight_late_loans:
        assert {e.entry_id for e in penalty_entries(loan_id)} == expected_penalty_days(states[loan_id], business_date)
        assert len(penalty_entries(loan_id)) == 3
        assert LoanRecord.get(loan_id).status == "overdue"
        assert sum(balances(loan_id).values()) == 0
        assert audit.verify(loan_id)["broken"] == []
    assert LoanRecord.get(on_time).status == "active" and penalty_entries(on_time) == []


def test_a_loan_that_fails_once_is_retried_within_the_same_run(borrower, dynamo, recorded):
    # Given a late loan whose first write fails (a fault that passes)
    loan_id = draw(borrower, 120_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    dynamo.fail_once.add(loan_id)
    dynamo.transaction_sizes.clear()

    # When close of business runs
    result = service.close_of_business(date(2027, 2, 14), beijing(date(2027, 2, 14)))

    # Then the same run tried it again and it went through: nothing left failed
    assert len(dynamo.transaction_sizes) == 2
    assert result["failed"] == 0 and result["penalty_days_posted"] == 3
    assert LoanRecord.get(loan_id).status == "overdue"
    assert recorded["metrics"]["CloseOfBusinessLoanFailed"] == 0


# --- the repayment reconciler: one refund that keeps failing --------------------------------

@pytest.fixture()
def collector():
    from chalicelib.repay.collection import SandboxCollector
    sandbox = SandboxCollector()
    wiring.override("payment_collector", sandbox)
    return sandbox


def _died_after_the_debit(monkeypatch, loan_id: str, amount: int, at: datetime) -> str:
    """A repayment whose function died between the wallet debit and the write: its intent is
    left open for the reconciler. Answers its repayment id."""
    def die(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise SystemExit("Lambda timed out")

    with monkeypatch.context() as patch:
        patch.setattr(service, "_post_repayment", die)
        with pytest.raises(SystemExit):
            service.repay("u-1", loan_id, amount, at)
    [intent] = [r for r in RepaymentRecord.scan(consistent_read=True)
                if r.amount == amount and r.status == "open"]
    return intent.repayment_id


def test_one_refund_that_keeps_failing_does_not_block_the_other_intents(
        client, borrower, collector, recorded, monkeypatch):
    # Given four repayments left unsettled, oldest first: the wallet refuses to refund the
    # oldest, two others were never posted, and one is in the ledger but its intent still open
    loan_id = draw(borrower, 120_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    stuck = _died_after_the_debit(monkeypatch, loan_id, 1_001, NOW)
    refundable = [_died_after_the_debit(monkeypatch, loan_id, 1_002, NOW + timedelta(seconds=1)),
                  _died_after_the_debit(monkeypatch, loan_id, 1_003, NOW + timedelta(seconds=2))]
    posted = service.repay("u-1", loan_id, 1_004, NOW + timedelta(seconds=3))["repayment_id"]
    RepaymentRecord(repayment_id=posted).update(  # as if the marking were lost
        actions=[RepaymentRecord.status.set("open"), RepaymentRecord.unsettled.set("1")])
    real_refund = collector.refund

    def refund(**kwargs):  # type: ignore[no-untyped-def]
        if kwargs["repayment_id"] == stuck:
            raise RuntimeError("the wallet's refund API keeps failing for this one")
        return real_refund(**kwargs)

    monkeypatch.setattr(collector, "refund", refund)
    later = NOW + timedelta(minutes=11)

    # When the reconciler runs
    with pytest.raises(Exception) as failed:
        client.lambda_.invoke("repayment_reconciler", scheduled_event(later, "repayment_reconciler"))

    # Then the invocation reports the stuck refund...
    assert stuck in str(failed.value)
    # ...and every other intent is settled: two refunded, the posted one kept
    assert collector.refunded == {rid: amount for rid, amount in zip(refundable, (1_002, 1_003))}
    intents = {r.repayment_id: r for r in RepaymentRecord.scan(consistent_read=True)}
    assert [intents[rid].status for rid in refundable] == ["refunded", "refunded"]
    assert (intents[posted].status, intents[posted].unsettled) == ("posted", None)
    # ...the stuck one stays claimed and unsettled, so a later run tries again
    assert (intents[stuck].status, intents[stuck].unsettled) == ("refunding", "1")
    assert recorded["metrics"]["RepaymentReconcileFailed"] == 1
    assert any(extra.get("repayment_id") == stuck for _msg, extra in recorded["errors"])

    # When the wallet works again and the reconciler runs (its next 5-minute run)
    monkeypatch.setattr(collector, "refund", real_refund)
    answer = client.lambda_.invoke("repayment_reconciler", scheduled_event(
        later + timedelta(minutes=5), "repayment_reconciler")).payload

    # Then the stuck repayment is refunded once, and nothing else moves
    assert answer == {"posted": 0, "refunded": 1, "void": 0, "failed": 0, "failed_repayments": []}
    assert collector.refunded[stuck] == 1_001 and len(collector.refunded) == 3
    assert RepaymentRecord.get(stuck).status == "refunded"
    assert LoanRecord.get(loan_id).outstanding_principal == 120_000 - 1_004  # only the posted one
    assert sum(balances(loan_id).values()) == 0


# --- the local stack: `make jobs` with a job that keeps failing ------------------------------

def test_make_jobs_runs_every_job_and_drains_the_queues_then_reports_the_failed_one(
        borrower, dynamo, outbox, capsys, monkeypatch):
    from app import app
    from infra import local_stack, pump

    # Given a loan past its grace day that cannot be written, on the local stack
    loan_id = draw(borrower, 120_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    dynamo.poisoned.add(loan_id)
    invoked = Counter()
    real_invoke = pump.invoke_schedule

    def counting(chalice_app, source, at):  # type: ignore[no-untyped-def]
        invoked[source.name] += 1
        return real_invoke(chalice_app, source, at)

    monkeypatch.setattr(pump, "invoke_schedule", counting)
    at = datetime(2027, 2, 13, 9, 0, tzinfo=SHANGHAI)  # D+3: an overdue reminder is due too

    # When `make jobs AT=...` runs
    status = local_stack.run_jobs(app, at)

    # Then it reports the loan whose message failed every delivery and went to the closing
    # queue's DLQ (the sweep itself succeeded, once)...
    err = capsys.readouterr().err
    assert status == 1
    assert "lending-local-closing-dlq: 1 new message(s) failed every retry" in err and loan_id in err
    assert LoanRecord.get(loan_id).status == "active"
    # ...while every job ran once and the queues were drained (the reminder was sent)
    assert invoked["close_of_business"] == invoked["reminders"] == invoked["repayment_reconciler"] == 1
    assert [json.loads(line)["text"] for line in outbox.read_text().splitlines()
            if "逾期" in json.loads(line)["text"]]

    # When the cause is fixed and the same AT is run again, the sweep queues the loan again
    # and it is caught up (the old message stays in the DLQ for the operator: not new, not reported)
    dynamo.poisoned.clear()
    assert local_stack.run_jobs(app, at) == 0
    assert LoanRecord.get(loan_id).status == "overdue" and len(penalty_entries(loan_id)) == 2
