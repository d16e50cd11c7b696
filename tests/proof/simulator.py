"""A seeded fault simulator for the lending backend, in the spirit of TigerBeetle's VOPR.

`run(seed, steps)` builds a fresh moto account and drives a `random.Random(seed)` workload over
three borrowers through the real routes, jobs and queue consumers: drawdowns, cancels,
repayments (with client retries and Idempotency-Key replays), the disbursement sweep with
messages delivered twice, shuffled or late, daily jobs fired late, repeated or skipped, and
faults: DynamoDB calls that are throttled, conflict, fail after committing (the answer is lost),
a concurrent repayment racing a repayment's transaction, and "crashes" (the handler dies after
the bank paid out or the wallet collected, before the database write; the message or request is
then retried). After every step the invariants of `world.check_invariants` must hold, and what
the API acknowledged must be durable. At the end faults stop and the system must heal: every
due loan disbursed or failed, nothing stuck.

Everything that drives a decision is seeded (ids come from a seeded uuid4), so a failing seed
replays exactly: `python -m tests.proof.simulator --seed N --steps M -v` prints its step log.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time as wallclock
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

import botocore.client
import pytest
from botocore.exceptions import ClientError

from tests.proof.world import (START, InvariantViolation, World, beijing,
                               check_closed_through, check_invariants)

USERS = ("u-a", "u-b", "u-c")
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
REPAYABLE = ("active", "overdue")


class Crash(RuntimeError):
    """The function's container died (after an external call, before the database write)."""


class Death(BaseException):
    """The container died outright (a Lambda timeout): no handler, no `except`, no finally in
    the function's own code gets to run; only the reconciler can settle what it left."""


def _client_error(code: str, operation: str, message: str = "injected fault",
                  reasons: list[dict] | None = None, status: int = 400) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message},
                                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, operation)


def _commits_a_money_key(operation: str, params: dict) -> bool:
    """A transaction that settles a money key (a drawdown, or a repayment's posting)."""
    if operation != "TransactWriteItems":
        return False
    for item in params.get("TransactItems", []):
        put = item.get("Put", {}).get("Item", {})
        if put.get("id", {}).get("S", "").startswith("money#") and put.get("status", {}).get("S") == "DONE":
            return True
    return False


def expire_in_progress_records() -> None:
    """Powertools' in-progress records run out (in AWS, with the dead function's remaining
    time): a retry then reaches the function again."""
    from chalicelib.adapters.idempotency import MONEY_PREFIX, IdempotencyRecord
    for record in IdempotencyRecord.scan(consistent_read=True):
        if not record.id.startswith(MONEY_PREFIX) and record.status == "INPROGRESS":
            record.delete()


class Faults:
    """Intercepts every botocore DynamoDB call (pynamodb builds a client per connection and
    `transact_connection()` a new connection per transaction, so the one place that sees them
    all is `BaseClient._make_api_call`). Above botocore's retries: a fault here is one that
    outlasted them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rate = 0.0
        self.enabled = False
        self.crash_next_write = False
        self.die_after_money_write = False
        self.race: Callable[[], None] | None = None
        self.counts: Counter[str] = Counter()
        self._inside = False

    def install(self, patches: pytest.MonkeyPatch) -> None:
        original = botocore.client.BaseClient._make_api_call
        faults = self

        def call(client: Any, operation: str, params: dict) -> Any:
            return faults.intercept(original, client, operation, params)

        patches.setattr(botocore.client.BaseClient, "_make_api_call", call)

    def intercept(self, original: Any, client: Any, operation: str, params: dict) -> Any:
        if (not self.enabled or self._inside
                or client.meta.service_model.service_name != "dynamodb"):
            return original(client, operation, params)
        if self.crash_next_write and operation in WRITES:
            self.crash_next_write = False
            self.counts["crash"] += 1
            raise Crash(f"container died before {operation}")
        if self.die_after_money_write and _commits_a_money_key(operation, params):
            self.die_after_money_write = False
            original(client, operation, params)
            self.counts["death_after_money_write"] += 1
            raise Death("the container timed out after the money write, before Powertools' record")
        if self.race is not None and operation == "TransactWriteItems":
            race, self.race = self.race, None
            self._inside = True
            try:
                race()  # another request commits first: our transaction's conditions now fail
            finally:
                self._inside = False
            self.counts["race"] += 1
        rate = self.rate if operation in WRITES else self.rate / 3
        if rate and self.rng.random() < rate:
            kinds = ["throttled", "throughput", "internal"]
            if operation == "TransactWriteItems":
                kinds += ["conflict", "conflict"]
            if operation in WRITES:
                kinds += ["lost_answer", "lost_answer"]
            if operation in ("PutItem", "UpdateItem", "DeleteItem"):
                kinds += ["retried_after_commit"]
            kind = self.rng.choice(kinds)
            self.counts[f"{kind}:{operation}"] += 1
            if kind == "throttled":
                raise _client_error("ThrottlingException", operation, "Rate exceeded")
            if kind == "throughput":
                raise _client_error("ProvisionedThroughputExceededException", operation)
            if kind == "internal":
                raise _client_error("InternalServerError", operation, status=500)
            if kind == "conflict":
                count = len(params.get("TransactItems", []))
                reasons = [{"Code": "None"}] * count
                reasons[self.rng.randrange(count)] = {"Code": "TransactionConflict",
                                                      "Message": "Transaction is ongoing for the item"}
                raise _client_error("TransactionCanceledException", operation,
                                    "Transaction cancelled", reasons)
            if kind == "retried_after_commit":
                # The answer timed out after the write committed and botocore sent it again:
                # the caller sees the second execution (TransactWriteItems is exempt: botocore
                # fills its ClientRequestToken, so DynamoDB answers a retry as the first).
                original(client, operation, params)
                return original(client, operation, params)
            # lost_answer: the write commits, the answer never arrives
            original(client, operation, params)
            raise _client_error("InternalServerError", operation, "answer lost after commit", status=500)
        return original(client, operation, params)

    def quiet(self) -> "_Quiet":
        return _Quiet(self)


class _Quiet:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def __enter__(self) -> None:
        self.saved = self.faults.enabled
        self.faults.enabled = False

    def __exit__(self, *exc: Any) -> None:
        self.faults.enabled = self.saved


class CrashingGateway:
    """Wraps a payout gateway or collector: the external call happens, then, when armed, the
    next database write of the handler raises `Crash` (the container died in between)."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self.inner, self.faults = inner, faults
        self.armed = False
        self.die = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _then_crash(self) -> None:
        if self.armed:
            self.armed = False
            self.faults.crash_next_write = True

    def pay(self, order: Any) -> Any:
        result = self.inner.pay(order)
        self._then_crash()
        return result

    def collect(self, **kwargs: Any) -> Any:
        result = self.inner.collect(**kwargs)
        if self.die:
            self.die = False
            raise Death("the container timed out right after the wallet debit")
        self._then_crash()
        return result


@dataclass
class Report:
    seed: int
    steps: int
    ok: bool = True
    failure: str = ""
    log: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def __str__(self) -> str:
        head = f"seed {self.seed}, {self.steps} steps, {self.seconds:.1f}s: " + (
            "ok" if self.ok else "FAILED")
        stats = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        text = f"{head}\n  {stats}"
        if not self.ok:
            text += "\n  step log:\n    " + "\n    ".join(self.log) + f"\n  failure:\n{self.failure}"
        return text


class Simulation:
    def __init__(self, world: World, seed: int, steps: int) -> None:
        self.world = world
        self.seed, self.steps = seed, steps
        self.rng = random.Random(seed)
        self.faults = Faults(random.Random(seed * 7919 + 1))
        self.report = Report(seed, steps)
        self.names: dict[str, str] = {}
        self.owner: dict[str, str] = {}
        self.held: list[dict] = []  # disbursement messages delivered later (out of order)
        self.late_jobs: list[date] = []
        self.replayable: list[tuple[str, str, int, str, Any]] = []
        self.acknowledged: list[tuple[str, str]] = []  # (loan_id, repayment_id) answered 201
        self.today = START
        self.minute = 0

    # --- plumbing -----------------------------------------------------------------------

    def log(self, text: str) -> None:
        self.report.log.append(f"{len(self.report.log):3d} [{self.today} +{self.minute}m] {text}")

    def name(self, loan_id: str) -> str:
        return self.names.setdefault(loan_id, f"L{len(self.names) + 1}")

    def tick(self) -> None:
        """Two minutes pass between steps (so a crashed consumer's 60 s lease runs out)."""
        self.minute += 2
        self.world.clock.set(beijing(self.today) + timedelta(minutes=self.minute))

    def loans_of(self, statuses: tuple[str, ...] | None = None) -> list[str]:
        """Loans as the tables have them (a draw whose answer was lost exists too)."""
        with self.faults.quiet():
            found = [(l.created_at, l.loan_id, l.user_id) for l in self.world.loans()
                     if statuses is None or l.status in statuses]
        self.owner.update({loan_id: user for _, loan_id, user in found})
        return [loan_id for _, loan_id, _ in sorted(found)]

    def status_of(self, loan_id: str) -> str:
        with self.faults.quiet():
            from chalicelib.loans.models import LoanRecord
            return LoanRecord.get(loan_id, consistent_read=True).status

    def request(self, what: str, send: Callable[[str], tuple[int, Any]], retries: int = 2) -> tuple[int, Any]:
        """A client: the same Idempotency-Key again after a 5xx, up to `retries` times."""
        key = str(uuid.uuid4())
        for attempt in range(retries + 1):
            status, answer = send(key)
            self.report.counts[f"http {status}"] += 1
            if status < 500:
                return status, answer
            self.log(f"  {what}: {status} {answer['error']['code'] if isinstance(answer, dict) else answer}"
                     f"{', retrying with the same key' if attempt < retries else ', giving up'}")
        return status, answer

    def unless_it_dies(self, call: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """API Gateway answers a function that timed out with 504; by the client's retry,
        Powertools' in-progress record of the dead request has expired."""
        try:
            return call()
        except Death:
            self.report.counts["death"] += 1
            with self.faults.quiet():
                expire_in_progress_records()
            return 504, {"error": {"code": "GATEWAY_TIMEOUT"}}

    # --- the workload -------------------------------------------------------------------

    def step_draw(self) -> None:
        user = self.rng.choice(USERS)
        amount = self.rng.choice([50_000, 100_000, 150_000, 300_000, self.rng.randint(50_000, 600_000)])
        term = self.rng.choice([3, 6, 12, 24])
        method = self.rng.choice(["equal_installment", "equal_principal"])
        card = self.rng.choice(["c-ok"] * 5 + ["c-0000"])
        ahead = self.rng.choice([None, None, timedelta(0), timedelta(hours=self.rng.randint(1, 7 * 24))])
        at = None if ahead is None else self.world.clock.now() + ahead
        if self.rng.random() < 0.1:
            self.faults.die_after_money_write = True
            self.log("  (the draw's container will die after its transaction)")
        before = len(self.loans_of())

        status, answer = self.request("draw", lambda key: self.unless_it_dies(
            lambda: self.world.draw(user, amount, term, method, card, at, key=key)))
        self.faults.die_after_money_write = False
        created = len(self.loans_of()) - before
        if created > 1 or (status == 201 and created != 1):
            raise InvariantViolation(f"one draw request made {created} loans (answered {status})")
        if status == 201:
            self.owner[answer["loan_id"]] = user
            self.log(f"draw {user} {amount} {term}m {method} {card} at+{ahead} -> {self.name(answer['loan_id'])}")
        else:
            self.log(f"draw {user} {amount} -> {status} {answer['error']['code']}")

    def step_cancel(self) -> None:
        loans = self.loans_of()
        if not loans:
            return
        loan_id = self.rng.choice(loans)
        status, answer = self.world.cancel(self.owner[loan_id], loan_id)
        self.report.counts[f"http {status}"] += 1
        self.log(f"cancel {self.name(loan_id)} -> {status} "
                 f"{answer.get('status') if status == 200 else answer['error']['code']}")
        assert status in (200, 409, 500, 503), (status, answer)

    def step_repay(self) -> None:
        loans = self.loans_of(REPAYABLE) or self.loans_of()
        if not loans:
            return
        loan_id = self.rng.choice(loans)
        user = self.owner[loan_id]
        with self.faults.quiet():
            status, quote = self.world.payoff(user, loan_id)
            _, loan = self.world.loan(user, loan_id)
        shown = None  # the installment whose shown total is paid, when it is not late yet
        if status != 200:
            amount, how = 10_000, "inactive"
        else:
            how = self.rng.choice(["installment", "installment", "part", "payoff", "over"])
            first_unpaid = next(i for i in loan["schedule"] if i["status"] != "paid")
            due = first_unpaid["total"] - first_unpaid["paid"]
            if how == "installment" and date.fromisoformat(first_unpaid["due_date"]) >= self.today:
                shown = first_unpaid["installment"]
            amount = {"installment": min(due, quote["amount"]), "payoff": quote["amount"],
                      "part": self.rng.randint(1, quote["amount"]), "over": quote["amount"] + 1}[how]
        if self.rng.random() < 0.15:
            self.world_collector.armed = True
            self.log("  (the repayment's container will die after the wallet collects)")
        elif self.rng.random() < 0.1:
            self.world_collector.die = True
            self.log("  (the repayment's container will time out after the wallet collects)")
        elif self.rng.random() < 0.1:
            self.faults.die_after_money_write = True
            self.log("  (the repayment's container will die after posting, before the key's record)")
        if how != "inactive" and self.rng.random() < 0.1:
            race_user, race_loan = user, loan_id

            def race() -> None:
                from chalicelib.repay import service
                try:
                    service.repay(race_user, race_loan, 100, self.world.clock.now())
                    self.log("  (a concurrent 100 fen repayment committed first)")
                except Exception as err:  # noqa: BLE001
                    self.log(f"  (the concurrent repayment failed: {err!r})")

            self.faults.race = race
        keys: list[str] = []

        def send(key: str) -> tuple[int, Any]:
            keys.append(key)
            return self.unless_it_dies(lambda: self.world.repay(user, loan_id, amount, key=key))

        status, answer = self.request("repay", send)
        self.faults.race = None
        self.faults.die_after_money_write = False
        self.world_collector.armed = self.world_collector.die = False
        self.faults.crash_next_write = False
        self.log(f"repay {self.name(loan_id)} {how} {amount} -> {status} "
                 f"{answer['loan'] if status == 201 else answer['error']['code']}")
        if status == 201:
            self.replayable.append((user, loan_id, amount, keys[-1], answer))
            self.acknowledged.append((loan_id, answer["repayment_id"]))
            if shown is not None:  # paying the amount shown, up to the due date, pays it
                with self.faults.quiet():
                    after = self.world.loan(user, loan_id)[1]["schedule"][shown - 1]
                if after["status"] != "paid":
                    raise InvariantViolation(f"installment {shown} of {self.name(loan_id)} paid as shown "
                                             f"on {self.today} is {after['status']}: {after}")
        assert status in (201, 409, 422, 500, 503, 504), (status, answer)

    def step_replay(self) -> None:
        if not self.replayable:
            return
        user, loan_id, amount, key, first = self.rng.choice(self.replayable)
        status, answer = self.world.repay(user, loan_id, amount, key=key)
        self.log(f"replay repayment {first['repayment_id'][:8]} on {self.name(loan_id)} -> {status}")
        if status == 201:
            assert answer == first, (answer, first)
        else:  # a fault while reading the idempotency record: an error, never a second charge
            assert status >= 500 or status == 409, (status, answer)

    def step_sweep(self) -> None:
        try:
            self.world.run_schedule("disbursement_sweep", self.world.clock.now())
        except Exception as err:  # noqa: BLE001 - a failed run; the next minute's sweep retries
            self.log(f"sweep failed: {err!r}")
        with self.faults.quiet():
            messages = self.world.receive("disbursements")
        how = self.rng.choice(["once", "twice", "shuffled", "hold"])
        if how == "twice":
            messages = messages * 2
        elif how == "shuffled":
            messages = messages * self.rng.randint(1, 3)
            self.rng.shuffle(messages)
        elif how == "hold" and messages:
            keep = self.rng.randint(0, len(messages))
            self.held.extend(messages[keep:])
            messages = messages[:keep]
        if messages and self.rng.random() < 0.2:
            self.world_payout.armed = True
        self.deliver(messages, f"sweep ({how})")

    def deliver(self, messages: list[dict], what: str) -> None:
        if not messages:
            self.log(f"{what}: nothing due")
            return
        failed = self.world.consume("disbursements", messages)
        self.world_payout.armed = False
        self.faults.crash_next_write = False
        retry = [m for m in messages if m["MessageId"] in failed]
        self.held.extend({**m, "MessageId": m["MessageId"] + "+r"} for m in retry)  # redelivered later
        self.log(f"{what}: delivered {len(messages)} message(s), {len(retry)} failed")
        for m in messages:
            self.name(json.loads(m["Body"])["loan_id"])

    def step_deliver_held(self) -> None:
        if not self.held:
            return
        self.rng.shuffle(self.held)
        count = self.rng.randint(1, len(self.held))
        messages, self.held = self.held[:count], self.held[count:]
        self.deliver(messages, "held messages")

    def step_advance(self) -> None:
        days = self.rng.choice([1, 1, 2, 3, 5, 10, 20, 30])
        start = self.today
        self.today += timedelta(days=days)
        self.minute = 0
        self.world.clock.set(beijing(self.today))
        ran = []
        # The jobs of a few of the days passed (the others skipped: close of business catches
        # up on penalties, missed reminders stay missed), the last day's too, some run twice,
        # some fired late in a later step.
        days_run = sorted(self.rng.sample(range(1, days), min(days - 1, 2))) + [days]
        for offset in days_run:
            day = start + timedelta(days=offset)
            roll = self.rng.random()
            if roll < 0.15:
                self.late_jobs.append(day)
                continue
            for _ in range(2 if roll > 0.85 else 1):
                ran.append(day.isoformat()[5:])
                self.jobs(day)
        self.log(f"advance {days} day(s) to {self.today}; jobs ran for {ran}")

    def jobs(self, day: date) -> None:
        self.close_of_business(day)
        try:
            self.world.run_schedule("reminders", beijing(day, 9, 0))
        except Exception as err:  # noqa: BLE001 - EventBridge retries a failed invocation
            self.log(f"  reminders {day} failed: {type(err).__name__}")
        self.reconcile(beijing(day, 9, 5))
        pending = self.world.drain("notifications", rounds=1)
        if pending:
            self.log(f"  {len(pending)} notification(s) still failing, back on the queue")
            with self.faults.quiet():
                from chalicelib.adapters import aws
                for m in pending:
                    aws.client("sqs").send_message(QueueUrl=aws.queue_url("notifications"),
                                                   MessageBody=m["Body"])

    def step_poison_loan(self) -> None:
        """One loan's close of business fails for a while (a poisoned item), then heals. The
        others must not wait for it: close of business for today runs at once and every
        other late loan is overdue with its penalty counted; only the poisoned loan is
        reported."""
        loans = self.loans_of(REPAYABLE)
        if not loans:
            return
        # A loan late now, or else the next to fall due: one that close of business has work for.
        with self.faults.quiet():
            from chalicelib.loans.models import LoanRecord
            from chalicelib.loans.schedules import load
            next_due = {l: min(i.due_date for i in load(LoanRecord.get(l, consistent_read=True).state).installments
                               if not i.settled) for l in loans}
        late = [l for l in loans if next_due[l] <= self.today - timedelta(days=2)]
        loan_id = self.rng.choice(late) if late else min(loans, key=lambda l: (next_due[l], l))
        until = self.today + timedelta(days=self.rng.choice([2, 5, 15, 40, 90]))
        self.world.job_faults.poison_loan(loan_id, until)
        self.log(f"poison {self.name(loan_id)}: its close of business fails until {until}")
        with self.faults.quiet():
            reported = self.close_of_business(self.today)
        poisoned = {l for l in self.loans_of() if self.world.job_faults.poisoned(l)}
        if reported is None or not reported <= poisoned:
            raise InvariantViolation(f"without faults, close of business reported {reported}, "
                                     f"but only {poisoned} are poisoned")

    def step_break_refund(self) -> None:
        """A repayment whose wallet refund keeps failing for a while, then works. It is an
        unsettled intent (one left open, or a new repayment whose container died after the
        debit); the reconciler must settle every other unsettled intent meanwhile."""
        from chalicelib.repay.models import RepaymentRecord
        with self.faults.quiet():
            in_flight = sorted(r.repayment_id for r in RepaymentRecord.scan(consistent_read=True)
                               if r.status in ("open", "refunding"))
        if in_flight:
            repayment_id = self.rng.choice(in_flight)
        else:
            loans = self.loans_of(REPAYABLE)
            if not loans:
                return
            loan_id = self.rng.choice(loans)
            before = set(self.world.collector.collected)
            with self.faults.quiet():
                status, quote = self.world.payoff(self.owner[loan_id], loan_id)
                self.world_collector.die = status == 200
                try:
                    self.world.repay(self.owner[loan_id], loan_id, min(100, quote.get("amount", 100)))
                except Death:
                    self.report.counts["death"] += 1
                finally:
                    self.world_collector.die = False
            new = sorted(set(self.world.collector.collected) - before)
            if not new:
                return
            repayment_id = new[0]
            self.log(f"repay {self.name(loan_id)} 100: the container died after the wallet collected")
        until = self.today + timedelta(days=self.rng.choice([1, 3, 10, 30]))
        self.world.job_faults.break_refund(repayment_id, until)
        self.log(f"refund of {repayment_id[:8]} fails until {until}")
        with self.faults.quiet():
            reported = self.reconcile(self.world.clock.now() + timedelta(minutes=11))
        # Any intent whose refund is broken, collected or not: the wallet may have timed out
        # before it collected (PAYMENT_UNCONFIRMED), and the reconciler, which cannot tell,
        # refunds it all the same.
        faults = self.world.job_faults
        broken = {rid for rid in faults.broken_refunds if faults.refund_broken(rid)}
        if reported is None or not reported <= broken:
            raise InvariantViolation(f"without faults, the reconciler reported {reported}, but only "
                                     f"the refunds of {broken} fail")

    def close_of_business(self, day: date) -> set[str] | None:
        """Close of business for `day`. Isolation: every loan it did not report as failed
        must be closed through `day`, whatever failed for the others. Answers the reported
        loans (None when the invocation failed as a whole, e.g. its index read)."""
        from chalicelib.core.errors import JobIncomplete
        try:
            self.world.run_schedule("close_of_business", beijing(day, 0, 5))
            reported: set[str] = set()
        except JobIncomplete as err:
            reported = set(err.failed)
            self.report.counts["cob_reported_loans"] += len(reported)
            self.report.counts["cob_reported_poisoned"] += sum(map(self.world.job_faults.poisoned, reported))
            self.log(f"  close_of_business {day} reported {sorted(self.name(l) for l in reported)}")
        except Exception as err:  # noqa: BLE001 - EventBridge retries a failed invocation
            self.log(f"  close_of_business {day} failed: {type(err).__name__}")
            return None
        with self.faults.quiet():
            check_closed_through(self.world, day, skip=reported)
        return reported

    def reconcile(self, at: datetime) -> set[str] | None:
        """The repayment reconciler as of `at`. Isolation: every intent old enough for it
        that it did not report as failed must be settled. Answers the reported intents."""
        from chalicelib.core.errors import JobIncomplete
        from chalicelib.loans.service import iso_utc
        from chalicelib.repay.models import RepaymentRecord
        from chalicelib.repay.service import RECONCILE_AFTER
        try:
            self.world.run_schedule("repayment_reconciler", at)
            reported: set[str] = set()
        except JobIncomplete as err:
            reported = set(err.failed)
            self.report.counts["reconciler_reported_intents"] += len(reported)
            self.log(f"  repayment_reconciler reported {sorted(r[:8] for r in reported)}")
        except Exception as err:  # noqa: BLE001 - the next run, 5 minutes later, retries
            self.log(f"  repayment_reconciler {at:%Y-%m-%d} failed: {type(err).__name__}")
            return None
        with self.faults.quiet():
            cutoff = iso_utc(at - RECONCILE_AFTER)
            left = {r.repayment_id for r in RepaymentRecord.scan(consistent_read=True)
                    if r.status in ("open", "refunding") and r.created_at < cutoff}
        if left - reported:
            raise InvariantViolation(f"the reconciler left {sorted(r[:8] for r in left - reported)} "
                                     "unsettled without reporting them")
        return reported

    def step_late_jobs(self) -> None:
        if not self.late_jobs:
            return
        day = self.late_jobs.pop(self.rng.randrange(len(self.late_jobs)))
        self.log(f"late jobs for {day}")
        self.jobs(day)

    # --- checks -------------------------------------------------------------------------

    def check(self, settled: bool = False) -> None:
        with self.faults.quiet():
            check_invariants(self.world, settled=settled)
            from chalicelib.loans.models import LedgerEntryRecord
            posted = {e.entry_id for e in LedgerEntryRecord.scan(consistent_read=True)}
            for loan_id, repayment_id in self.acknowledged:
                if f"repayment#{repayment_id}" not in posted:
                    raise InvariantViolation(f"repayment {repayment_id[:8]} on {self.name(loan_id)} was "
                                             "answered 201 but is not in the ledger")

    def heal(self) -> None:
        """Faults stop; the minute sweep, queue retries and late jobs run until nothing is due."""
        self.faults.enabled = False
        self.world.job_faults.heal()
        self.log("heal: faults off (poisoned loans and broken refunds too), held messages and "
                 "retries delivered, today's jobs, sweep until quiet")
        if self.held:
            messages, self.held = self.held, []
            self.deliver(messages, "held messages")
        for day in self.late_jobs:
            self.jobs(day)
        self.jobs(self.today)  # checks that today's close of business left every loan closed
        for _ in range(3):
            self.tick()
            self.tick()
            self.world.sweep_and_disburse()
        # Repayments whose container died are settled by the 5-minute reconciler.
        if self.reconcile(self.world.clock.now() + timedelta(minutes=11)) != set():
            raise InvariantViolation("the reconciler still fails once every fault has stopped")
        self.check(settled=True)
        now = self.world.clock.now()
        from chalicelib.loans.service import iso_utc
        stuck = [self.name(l.loan_id) for l in self.world.loans()
                 if l.status in ("scheduled", "disbursing") and l.disburse_at <= iso_utc(now)]
        if stuck:
            raise InvariantViolation(f"loans due but never disbursed after healing: {stuck}")

    def run(self) -> Report:
        started = wallclock.perf_counter()
        world = self.world
        patches = pytest.MonkeyPatch()
        ids = random.Random(self.seed * 104729 + 7)
        patches.setattr(uuid, "uuid4", lambda: uuid.UUID(int=ids.getrandbits(128), version=4))
        self.faults.install(patches)
        try:
            world.reset()
            self.world_payout = CrashingGateway(world.payout, self.faults)
            self.world_collector = CrashingGateway(world.collector, self.faults)
            from chalicelib import wiring
            wiring.override("payout_gateway", self.world_payout)
            wiring.override("payment_collector", self.world_collector)
            for user in USERS:
                status, answer = world.apply(user)
                assert status == 201 and answer["status"] == "approved", answer
            self.faults.rate = self.rng.choice([0.0, 0.03, 0.06, 0.1])
            self.faults.enabled = True
            self.log(f"three approved borrowers; DynamoDB fault rate {self.faults.rate}")
            actions = [(self.step_draw, 20), (self.step_cancel, 5), (self.step_repay, 22),
                       (self.step_replay, 5), (self.step_sweep, 14), (self.step_deliver_held, 5),
                       (self.step_advance, 12), (self.step_late_jobs, 4),
                       (self.step_poison_loan, 3), (self.step_break_refund, 3)]
            for _ in range(self.steps):
                self.tick()
                action = self.rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
                self.report.counts[action.__name__] += 1
                action()
                self.check()
            self.heal()
        except Exception as err:  # noqa: BLE001 - reported with the seed and the step log
            import traceback
            self.report.ok = False
            self.report.failure = "".join(traceback.format_exception(err))[-4000:]
        finally:
            self.faults.enabled = False
            patches.undo()
            self.report.counts.update(self.faults.counts)
            self.report.seconds = wallclock.perf_counter() - started
        return self.report


def run(seed: int, steps: int = 60, world: World | None = None) -> Report:
    """Run one seed. Without `world`, a fresh moto account and test client are made for it."""
    if world is not None:
        return Simulation(world, seed, steps).run()
    from chalice.test import Client

    import app as app_module
    from infra.bootstrap import fresh_moto_account
    from tests.conftest import ROOT

    with fresh_moto_account():
        with Client(app_module.app, stage_name="local", project_dir=str(ROOT)) as client:
            with World(client, USERS) as fresh:
                return Simulation(fresh, seed, steps).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, help="one seed (replay)")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds from --first")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every step log")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    import os
    import warnings
    # EMF lines on stdout would bury the report. Not POWERTOOLS_METRICS_DISABLED: with it,
    # flush_metrics keeps the values, and add_metric prints them anyway once a name has 100.
    from chalicelib.core.observability import metrics
    metrics.flush_metrics = lambda *args, **kwargs: metrics.clear_metrics()  # type: ignore[method-assign]
    warnings.filterwarnings("ignore", message="No application metrics")
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    failed = []
    for seed in seeds:
        report = run(seed, args.steps)
        print(report if (args.verbose or not report.ok) else str(report).split("\n")[0], flush=True)
        if args.verbose and report.ok:
            print("    " + "\n    ".join(report.log))
        if not report.ok:
            failed.append(seed)
    print(f"{len(seeds) - len(failed)}/{len(seeds)} seeds ok" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
