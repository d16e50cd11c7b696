"""Repayments, payoff, close of business and reminders against moto, through the services
and the queue consumer; the money itself is the engine's (tested to the fen in tests/unit)."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pytest

from chalicelib.adapters import aws
from chalicelib.core.errors import Conflict, RuleViolation
from chalicelib.loans import credit, disbursement
from chalicelib.money import ledger
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from chalicelib.repay import service
from chalicelib.repay.models import InstallmentRecord
from tests.routes.conftest import NOW, draw

TODAY = date(2027, 1, 10)  # NOW in Beijing


@pytest.fixture()
def loan(borrower):
    loan_id = draw(borrower, 120_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    assert [m["kind"] for m in queued_notifications()] == ["disbursed"]
    return loan_id


def balances(loan_id):
    return ledger.balances([json.loads(e.lines) for e in LedgerEntryRecord.query(loan_id)])


def queued_notifications():
    sqs = aws.client("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=aws.queue_url("notifications"), MaxNumberOfMessages=10)
        if not got.get("Messages"):
            return bodies
        for message in got["Messages"]:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=aws.queue_url("notifications"), ReceiptHandle=message["ReceiptHandle"])


def test_the_schedule_starts_on_the_disbursement_day_with_an_index_item_each(loan):
    record = LoanRecord.get(loan)
    items = list(InstallmentRecord.query(loan))
    assert len(items) == 12 and all(i.open_shard for i in items)
    assert items[0].due_date == "2027-02-10"
    assert record.disbursed_at.startswith("2027-01-10")


def test_payoff_on_the_disbursement_day_is_the_principal(loan):
    quote = service.payoff("u-1", loan, None, NOW)
    assert quote == {"amount": 120_000, "principal": 120_000, "interest": 0, "penalty": 0,
                     "as_of": "2027-01-10"}
    with pytest.raises(RuleViolation):
        service.payoff("u-1", loan, TODAY - timedelta(days=1), NOW)


def test_a_prepayment_frees_credit_and_balances_the_ledger(loan):
    answer = service.repay("u-1", loan, 50_000, NOW)
    assert answer["allocation"] == {"penalty": 0, "interest": 0, "principal": 50_000}
    assert answer["loan"] == {"status": "active", "outstanding_principal": 70_000}
    assert credit.get_line("u-1").available == 1_000_000 - 70_000
    assert sum(balances(loan).values()) == 0
    assert balances(loan)[ledger.PRINCIPAL_RECEIVABLE] == 70_000
    kinds = [m["kind"] for m in queued_notifications()]
    assert "repayment_received" in kinds


def test_overpayment_is_refused_and_nothing_moves(loan):
    with pytest.raises(RuleViolation) as err:
        service.repay("u-1", loan, 120_001, NOW)
    assert err.value.code == "OVERPAYMENT"
    assert LoanRecord.get(loan).outstanding_principal == 120_000
    assert len(list(LedgerEntryRecord.query(loan))) == 1


def test_paying_the_payoff_closes_the_loan_and_restores_the_line(loan):
    quote = service.payoff("u-1", loan, None, NOW)
    answer = service.repay("u-1", loan, quote["amount"], NOW)
    assert answer["loan"]["status"] == "closed"
    assert credit.get_line("u-1").available == 1_000_000
    assert not [i for i in InstallmentRecord.query(loan) if i.open_shard]
    with pytest.raises(Conflict):
        service.repay("u-1", loan, 1, NOW)


def test_close_of_business_posts_each_day_once_even_late_or_repeated(loan):
    due = date(2027, 2, 10)
    first = service.close_of_business(due + timedelta(days=3), NOW)
    assert first["penalty_days_posted"] == 2  # D+1, D+2
    assert service.close_of_business(due + timedelta(days=3), NOW)["penalty_days_posted"] == 0
    record = LoanRecord.get(loan)
    assert record.status == "overdue"
    # a skipped day, then a late run: D+3 and D+4 are posted once
    assert service.close_of_business(due + timedelta(days=5), NOW)["penalty_days_posted"] == 2
    penalties = [e for e in LedgerEntryRecord.query(loan) if e.cause == "penalty"]
    assert len(penalties) == 4
    assert sum(balances(loan).values()) == 0


def test_close_of_business_reads_only_late_installments(loan, borrower):
    draw(borrower, 100_000)  # a second, still scheduled loan: no index items at all
    result = service.close_of_business(date(2027, 2, 12), NOW)
    assert result["installments_read"] == 1 and result["loans"] == 1


def test_reminders_are_queued_with_one_id_per_installment_kind_and_day(loan):
    assert service.send_reminders(date(2027, 2, 7))["queued"] == 1  # D-3
    assert service.send_reminders(date(2027, 2, 7))["queued"] == 1  # a replay queues again...
    messages = queued_notifications()
    assert [m["kind"] for m in messages] == ["due_soon", "due_soon"]
    assert messages[0]["notification_id"] == messages[1]["notification_id"]  # ...the consumer sends once
    assert service.send_reminders(date(2027, 2, 8))["queued"] == 0  # D-2: no reminder day
    assert service.send_reminders(date(2027, 2, 11))["queued"] == 1  # D+1: overdue (last free day)


def test_the_reminders_job_queues_a_fixed_number_of_pages_and_a_page_done_twice_texts_once(client, loan, outbox):
    from chalicelib.core.clock import SHANGHAI
    from chalicelib.loans import catalog, schedules
    from infra.lambda_events import scheduled_event
    from tests import queues

    # When the scheduled job runs on D-3 of the first installment, as EventBridge invokes it
    at = datetime.combine(date(2027, 2, 7), time(9), SHANGHAI)
    answer = client.lambda_.invoke("reminders", scheduled_event(at, "reminders")).payload

    # Then it queued one page per reminder day and index shard, however many loans there are...
    pages = queues.receive("reminding")
    assert answer == {"pages": len(catalog.reminder_days()) * schedules.OPEN_SHARDS} == {"pages": len(pages)}
    # ...and the consumer, given every page twice, queues the texts; each is sent once
    assert queues.consume(client, "reminding", pages + [dict(p, MessageId=p["MessageId"] + "-again") for p in pages]) == set()
    texts = queues.receive("notifications")
    assert [json.loads(t["Body"])["kind"] for t in texts] == ["due_soon", "due_soon"]
    assert queues.consume(client, "notifications", texts) == set()
    sent = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert len([m for m in sent if "2027-02-10" in m["text"]]) == 1


def test_no_reminder_for_a_paid_installment(loan):
    quote = service.payoff("u-1", loan, None, NOW)
    service.repay("u-1", loan, quote["amount"], NOW)
    queued_notifications()
    assert service.send_reminders(date(2027, 2, 7)) == {"installments_read": 0, "queued": 0}


@pytest.fixture()
def collector():
    from chalicelib import wiring
    from chalicelib.repay.collection import SandboxCollector
    sandbox = SandboxCollector()
    wiring.override("payment_collector", sandbox)
    return sandbox


def test_a_concurrent_repayment_that_leaves_less_to_pay_refunds_the_loser(loan, collector, monkeypatch):
    real_collect = collector.collect
    raced = []

    def collect_while_another_pays(**kwargs):
        if not raced:  # between our check and our write, the borrower pays 100,000 elsewhere
            raced.append(kwargs["repayment_id"])
            service.repay("u-1", loan, 100_000, NOW)
        return real_collect(**kwargs)

    monkeypatch.setattr(collector, "collect", collect_while_another_pays)
    with pytest.raises(RuleViolation) as err:
        service.repay("u-1", loan, 120_000, NOW)  # the payoff when it started; too much now
    assert err.value.code == "OVERPAYMENT"
    refunded = set(collector.refunded.values())
    assert refunded == {120_000}
    assert LoanRecord.get(loan).outstanding_principal == 20_000
    assert sum(balances(loan).values()) == 0


def reconciled(**settled):
    """What the reconciler answers: how many intents it settled each way, none failed."""
    return {"posted": 0, "refunded": 0, "void": 0, **settled, "failed": 0, "failed_repayments": []}


def _intents():
    from chalicelib.repay.models import RepaymentRecord
    return {r.repayment_id: r for r in RepaymentRecord.scan()}


def test_a_posted_repayment_settles_its_intent_in_the_same_write(loan, collector):
    paid = service.repay("u-1", loan, 10_000, NOW)
    intent = _intents()[paid["repayment_id"]]
    assert (intent.status, intent.unsettled, intent.amount) == ("posted", None, 10_000)
    assert service.reconcile_repayments(NOW + timedelta(hours=1)) == reconciled()
    assert collector.refunded == {}


def test_money_taken_by_a_function_that_died_before_writing_is_given_back(loan, collector, monkeypatch):
    def die(*args, **kwargs):
        raise SystemExit("Lambda timed out")  # not an Exception: nothing in the function runs on

    monkeypatch.setattr(service, "_post_repayment", die)
    with pytest.raises(SystemExit):
        service.repay("u-1", loan, 10_000, NOW)
    monkeypatch.undo()
    [taken] = collector.collected
    assert collector.refunded == {}
    assert service.reconcile_repayments(NOW + timedelta(minutes=5)) == reconciled()
    assert service.reconcile_repayments(NOW + timedelta(minutes=11)) == reconciled(refunded=1)
    assert collector.refunded == {taken: 10_000}
    assert _intents()[taken].status == "refunded" and _intents()[taken].unsettled is None
    assert LoanRecord.get(loan).outstanding_principal == 120_000
    assert [e.entry_id for e in LedgerEntryRecord.query(loan) if e.entry_id.startswith("repayment")] == []
    assert service.reconcile_repayments(NOW + timedelta(minutes=20)) == reconciled()


def test_an_open_intent_whose_repayment_is_in_the_ledger_is_kept_not_refunded(loan, collector):
    from chalicelib.repay.models import RepaymentRecord
    paid = service.repay("u-1", loan, 10_000, NOW)
    RepaymentRecord(repayment_id=paid["repayment_id"]).update(  # as if the marking were lost
        actions=[RepaymentRecord.status.set("open"), RepaymentRecord.unsettled.set("1")])
    assert service.reconcile_repayments(NOW + timedelta(minutes=11)) == reconciled(posted=1)
    assert collector.refunded == {} and _intents()[paid["repayment_id"]].status == "posted"


def test_a_write_that_comes_after_the_reconciler_claimed_the_money_posts_nothing(loan, collector, monkeypatch):
    from chalicelib.core.errors import DependencyDown
    from chalicelib.repay.models import RepaymentRecord
    real_collect = collector.collect

    def slow_collect(**kwargs):  # the wallet answers after the reconciler has already run
        taken = real_collect(**kwargs)
        service.reconcile_repayments(NOW + timedelta(minutes=11))
        return taken

    monkeypatch.setattr(collector, "collect", slow_collect)
    with pytest.raises(DependencyDown) as err:
        service.repay("u-1", loan, 10_000, NOW)
    assert err.value.code == "REPAYMENT_UNAVAILABLE"
    [taken] = collector.collected
    assert collector.refunded == {taken: 10_000}
    assert RepaymentRecord.get(taken).status == "refunded"
    assert LoanRecord.get(loan).outstanding_principal == 120_000
    assert sum(balances(loan).values()) == 0


def test_a_debit_that_never_went_through_is_voided_not_refunded(loan, collector, monkeypatch):
    from chalicelib.core.errors import DependencyDown

    def timed_out(**kwargs):  # the wallet did not answer: taken or not, we cannot tell yet
        raise DependencyDown("no answer", code="PAYMENT_UNAVAILABLE")

    monkeypatch.setattr(collector, "collect", timed_out)
    with pytest.raises(DependencyDown):
        service.repay("u-1", loan, 10_000, NOW)
    [intent] = _intents().values()
    assert intent.status == "open"
    assert service.reconcile_repayments(NOW + timedelta(minutes=11)) == reconciled(void=1)
    assert _intents()[intent.repayment_id].status == "void" and collector.refunded == {}


def test_a_declined_debit_settles_its_intent_at_once(loan, collector, monkeypatch):
    def declined(**kwargs):
        raise RuleViolation("Your wallet could not pay this amount.", code="PAYMENT_DECLINED")

    monkeypatch.setattr(collector, "collect", declined)
    with pytest.raises(RuleViolation):
        service.repay("u-1", loan, 10_000, NOW)
    [intent] = _intents().values()
    assert (intent.status, intent.unsettled) == ("void", None)
