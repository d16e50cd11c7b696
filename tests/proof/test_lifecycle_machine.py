"""The whole loan lifecycle as a hypothesis state machine, through the real routes and jobs.

Given two approved borrowers, hypothesis applies, draws (amounts, terms, methods, cards the bank
refuses, disbursement up to 7 days ahead), cancels, runs the disbursement sweep and consumer
(messages delivered twice or shuffled), repays (an installment, a part, the payoff, more than
the payoff, a replay of the same Idempotency-Key), pays an installment as shown on a random day
up to its due date, dies after a money write and retries once the idempotency record expired,
and moves the clock by whole days with the daily jobs run once, twice, late or not at all.
After every step the money invariants of `world.check_invariants` must hold, read from the tables. Sized for CI and reproducible
(`derandomize`, no example database); `PROOF_EXAMPLES` raises the example count locally.

Jobs whose items fail alone: a loan's close of business can be poisoned for a while, and a
repayment whose container died after the debit can have a wallet refund that keeps failing.
Each close of business must then report only poisoned loans and leave every other loan
closed through its day; the reconciler must report only broken refunds and settle every other
intent. When the example ends, the faults heal and everything must settle.
"""
from __future__ import annotations

import os
import random
from datetime import date, timedelta

import pytest

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant,
                                 multiple, precondition, rule, run_state_machine_as_test)

from chalicelib.core.errors import JobIncomplete
from tests.proof.simulator import Death, expire_in_progress_records
from tests.proof.world import LIVE, START, World, beijing, check_closed_through, check_invariants

USERS = ("u-a", "u-b")
REPAYABLE = ("active", "overdue")


class ContainerDied(BaseException):
    """The repayment's function timed out right after the wallet debit: nothing of its own
    code runs on, so its intent stays open for the reconciler."""


class LoanLifecycle(RuleBasedStateMachine):
    world: World  # set by the test before hypothesis builds machines

    loans = Bundle("loans")

    def __init__(self) -> None:
        super().__init__()
        self.world.reset()
        self.today = START
        self.owner: dict[str, str] = {}
        self.answers: list[tuple[str, str, int, str, dict]] = []  # replayable repayments
        self.unsettled: set[str] = set()  # repayments a dead container left to the reconciler

    @initialize()
    def two_approved_borrowers(self) -> None:
        for user in USERS:
            status, answer = self.world.apply(user)
            assert status == 201 and answer["status"] == "approved", answer

    # --- the borrower ---------------------------------------------------------------------

    @rule(target=loans, user=st.sampled_from(USERS), amount=st.integers(50_000, 700_000),
          term=st.sampled_from([3, 6, 9, 12, 18, 24]),
          method=st.sampled_from(["equal_installment", "equal_principal"]),
          card=st.sampled_from(["c-ok", "c-ok", "c-ok", "c-0000"]),
          ahead_hours=st.one_of(st.none(), st.integers(0, 7 * 24)))
    def draw(self, user, amount, term, method, card, ahead_hours):
        at = None if ahead_hours is None else self.world.clock.now() + timedelta(hours=ahead_hours)
        status, answer = self.world.draw(user, amount, term, method, card, at)
        assert status in (201, 422), (status, answer)
        # the hard rules of the moment: no loan overdue, at most 3 live (the new one included)
        statuses = [loan.status for loan in self.world.loans() if loan.user_id == user]
        live = sum(s in LIVE for s in statuses)
        if status == 422:
            code = answer["error"]["code"]
            assert code in ("CREDIT_LIMIT_EXCEEDED", "AFFORDABILITY", "LOAN_OVERDUE",
                            "TOO_MANY_LOANS"), answer
            assert code != "LOAN_OVERDUE" or "overdue" in statuses, statuses
            assert code != "TOO_MANY_LOANS" or live >= 3, statuses
            return multiple()
        assert "overdue" not in statuses and live <= 3, statuses
        assert answer["status"] == "scheduled" and answer["principal"] == amount
        assert sum(i["principal"] for i in answer["schedule"]) == amount
        self.owner[answer["loan_id"]] = user
        return answer["loan_id"]

    @rule(loan_id=loans)
    def cancel(self, loan_id):
        user = self.owner[loan_id]
        before = self.world.loan(user, loan_id)[1]["status"]
        status, answer = self.world.cancel(user, loan_id)
        if before == "scheduled":
            assert status == 200 and answer["status"] == "cancelled", answer
        else:
            assert status == 409 and answer["error"]["code"] == "LOAN_NOT_CANCELLABLE", answer

    @rule(loan_id=loans, how=st.sampled_from(["installment", "part", "payoff", "over"]),
          share=st.floats(0.01, 0.99))
    def repay(self, loan_id, how, share):
        user = self.owner[loan_id]
        loan = self.world.loan(user, loan_id)[1]
        if loan["status"] not in REPAYABLE:
            status, answer = self.world.repay(user, loan_id, 10_000)
            assert status == 409 and answer["error"]["code"] == "LOAN_NOT_ACTIVE", answer
            return
        status, quote = self.world.payoff(user, loan_id)
        assert status == 200, quote
        due = next(i["total"] - i["paid"] for i in loan["schedule"] if i["status"] != "paid")
        amount = {"installment": min(due, quote["amount"]), "payoff": quote["amount"],
                  "part": max(1, int(quote["amount"] * share)), "over": quote["amount"] + 1}[how]
        key = f"k-{len(self.answers)}-{loan_id}"
        status, answer = self.world.repay(user, loan_id, amount, key=key)
        event(f"repay {how} on a {loan['status']} loan")
        if how == "over":
            assert status == 422 and answer["error"]["code"] == "OVERPAYMENT", answer
            return
        assert status == 201, answer
        allocation = answer["allocation"]
        assert allocation["penalty"] + allocation["interest"] + allocation["principal"] == amount
        if amount == quote["amount"]:
            assert answer["loan"] == {"status": "closed", "outstanding_principal": 0}, answer
        self.answers.append((user, loan_id, amount, key, answer))

    @rule(loan_id=loans, days_before=st.integers(0, 6))
    def pay_as_shown_before_the_due_date(self, loan_id, days_before):
        """The amount a reminder showed, paid on D - days_before (or today, if later), pays
        that installment: it is never overdue, and owes no penalty, whatever the jobs do."""
        user = self.owner[loan_id]
        loan = self.world.loan(user, loan_id)[1]
        if loan["status"] != "active":
            return
        shown = next(i for i in loan["schedule"] if i["status"] != "paid")
        due = date.fromisoformat(shown["due_date"])
        if due < self.today:
            return
        self.move_to(max(self.today, due - timedelta(days=days_before)))
        status, answer = self.world.repay(user, loan_id, shown["total"] - shown["paid"])
        assert status == 201, answer
        event(f"paid as shown {(due - self.today).days} day(s) before the due date")
        self.move_to(due + timedelta(days=3))
        after = self.world.loan(user, loan_id)[1]["schedule"][shown["installment"] - 1]
        assert (after["status"], after["penalty"]) == ("paid", 0), after

    @rule(loan_id=loans)
    def repay_and_die_before_the_record(self, loan_id):
        """The function dies after the repayment's transaction; the client retries with the
        same key once Powertools' record expired: the first result, one debit."""
        user = self.owner[loan_id]
        if self.world.loan(user, loan_id)[1]["status"] not in REPAYABLE:
            return
        key = f"die-{len(self.answers)}-{loan_id}"
        collected = len(self.world.collector.collected)
        with pytest.MonkeyPatch.context() as patch:
            from chalicelib.repay import service

            def die(*args, **kwargs):
                raise Death("timed out after posting")

            patch.setattr(service, "enqueue", die)
            with pytest.raises(Death):
                self.world.repay(user, loan_id, 1_000, key=key)
        expire_in_progress_records()
        status, answer = self.world.repay(user, loan_id, 1_000, key=key)
        assert status == 201 and answer["amount"] == 1_000, answer
        assert len(self.world.collector.collected) == collected + 1
        event("died after a repayment's transaction, retried")
        self.answers.append((user, loan_id, 1_000, key, answer))

    @precondition(lambda self: self.answers)
    @rule(data=st.data())
    def replay_a_repayment(self, data):
        """The same Idempotency-Key and body: the first answer again, nothing collected twice."""
        user, loan_id, amount, key, first = data.draw(st.sampled_from(self.answers))
        collected = dict(self.world.collector.collected)
        status, answer = self.world.repay(user, loan_id, amount, key=key)
        assert (status, answer) == (201, first)
        assert self.world.collector.collected == collected

    @rule(user=st.sampled_from(USERS))
    def apply_again(self, user):
        status, answer = self.world.apply(user, amount=800_000, term=6)
        assert status == 201, answer

    # --- time and jobs --------------------------------------------------------------------

    @rule(copies=st.integers(1, 3), seed=st.integers(0, 2**16))
    def disburse(self, copies, seed):
        """The sweep queues due loans; the consumer sees each message `copies` times, shuffled."""
        self.world.run_schedule("disbursement_sweep", self.world.clock.now())
        messages = self.world.receive("disbursements") * copies
        random.Random(seed).shuffle(messages)
        assert self.world.consume("disbursements", messages) == set()

    def move_to(self, day: date) -> None:
        """The clock moves to `day`; each day passed runs its jobs once."""
        while self.today < day:
            self.today += timedelta(days=1)
            self.world.clock.set(beijing(self.today))
            self.daily_jobs(self.today)

    @rule(days=st.integers(1, 40), runs=st.sampled_from([0, 1, 1, 2]), late=st.booleans())
    def advance(self, days, runs, late):
        skipped = self.today + timedelta(days=days - 1)
        self.today += timedelta(days=days)
        self.world.clock.set(beijing(self.today))
        if late and days > 1:  # yesterday's jobs fire late, today
            self.daily_jobs(skipped)
        for _ in range(runs):
            self.daily_jobs(self.today)
        assert self.world.sweep_and_disburse() == []

    def daily_jobs(self, day):
        """Close of business and reminders for `day`. A close that fails reports poisoned loans
        only (Lambda would retry it), and every other loan is closed through `day`."""
        try:
            self.world.run_schedule("close_of_business", beijing(day, 0, 5))
            failed = set()
        except JobIncomplete as err:
            failed = set(err.failed)
            event("close of business reported a poisoned loan")
        poisoned = {loan_id for loan_id in self.owner if self.world.job_faults.poisoned(loan_id)}
        assert failed <= poisoned, (failed, poisoned)
        check_closed_through(self.world, day, skip=failed)
        self.world.run_schedule("reminders", beijing(day, 9, 0))
        self.world.drain("notifications")

    # --- items that keep failing ----------------------------------------------------------

    @rule(loan_id=loans, days=st.integers(1, 90))
    def poison_close_of_business(self, loan_id, days):
        """Close of business of this loan raises until `days` from today (paid out first, if
        it is due, so that it has installments to fall late)."""
        if self.world.loan(self.owner[loan_id], loan_id)[1]["status"] == "scheduled":
            assert self.world.sweep_and_disburse() == []
        self.world.job_faults.poison_loan(loan_id, self.today + timedelta(days=days))

    @rule(loan_id=loans, days=st.integers(0, 30))
    def a_refund_that_keeps_failing(self, loan_id, days):
        """A repayment's container dies right after the wallet debit, and the wallet's refund of
        that repayment fails until `days` from today."""
        user = self.owner[loan_id]
        if self.world.loan(user, loan_id)[1]["status"] == "scheduled":
            assert self.world.sweep_and_disburse() == []  # paid out first, if it is due
        status, quote = self.world.payoff(user, loan_id)
        if status != 200:
            return
        collector = self.world.collector
        before = set(collector.collected)
        real_collect = collector.collect

        def collect_then_die(**kwargs):
            real_collect(**kwargs)
            raise ContainerDied("timed out after the debit")

        collector.collect = collect_then_die
        try:
            self.world.repay(user, loan_id, min(100, quote["amount"]))
        except ContainerDied:
            pass
        finally:
            del collector.collect
        [repayment_id] = set(collector.collected) - before
        self.world.job_faults.break_refund(repayment_id, self.today + timedelta(days=days))
        self.unsettled.add(repayment_id)
        event("a repayment whose refund keeps failing")

    @precondition(lambda self: self.unsettled)
    @rule()
    def reconcile(self):
        """The reconciler, once every intent is old enough: it reports broken refunds only, and
        settles every other unsettled intent."""
        from chalicelib.repay.models import RepaymentRecord
        try:
            self.world.run_schedule("repayment_reconciler", self.world.clock.now() + timedelta(minutes=11))
            failed = set()
        except JobIncomplete as err:
            failed = set(err.failed)
            event("the reconciler reported a broken refund")
        left = {r.repayment_id for r in RepaymentRecord.scan(consistent_read=True)
                if r.status in ("open", "refunding")}
        broken = {rid for rid in left if self.world.job_faults.refund_broken(rid)}
        assert failed == left == broken, (failed, left, broken)
        self.unsettled = left

    @invariant()
    def money_holds(self):
        check_invariants(self.world)

    def teardown(self):
        """The faults heal: today's close of business and the reconciler then settle all."""
        self.world.job_faults.heal()
        self.daily_jobs(self.today)
        self.reconcile()
        check_invariants(self.world, settled=True)
        for loan in self.world.loans():
            event(f"a loan ended {loan.status}")


def test_the_loan_lifecycle_keeps_its_invariants(client):
    examples = int(os.environ.get("PROOF_EXAMPLES", "10"))
    with World(client, USERS) as world:
        LoanLifecycle.world = world
        run_state_machine_as_test(LoanLifecycle, settings=settings(
            max_examples=examples, stateful_step_count=20, deadline=None, derandomize=True,
            database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                   HealthCheck.function_scoped_fixture]))
