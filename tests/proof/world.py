"""A small lending world on moto for the proof tests: borrowers, the real app behind chalice's
test client, the sandbox payout and collection gateways, and the invariants read from the tables.

Shared by the hypothesis state machine (`test_lifecycle_machine.py`) and the seeded fault
simulator (`simulator.py`). The auth slice is represented by its seams (`people.*` and the
`bearer` authenticator reads an `X-Proof-User` header): what is proven here is money, not sign-in.
"""
from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pytest

import tests.conftest  # noqa: F401  - stage env, fake credentials, moto, app (a no-op under pytest)
from chalicelib import wiring
from chalicelib.adapters import aws, idempotency
from chalicelib.core import config
from chalicelib.core.clock import SHANGHAI, FixedClock
from chalicelib.adapters.db import TABLES
from chalicelib.core.errors import JobIncomplete
from chalicelib.api.http import AUTHENTICATORS
from chalicelib.loans import catalog, credit, schedules
from chalicelib.money import chain, ledger
from chalicelib.loans.models import CreditLineRecord, LedgerEntryRecord, LoanRecord, ProductRecord
from chalicelib.loans.payout import SandboxPayout
from infra.bootstrap import create_anchor_bucket
from chalicelib.repay.collection import SandboxCollector
from chalicelib.repay.models import InstallmentRecord
from infra.lambda_events import scheduled_event
from tests import queues
from tests.routes.conftest import verified_people

START = date(2027, 1, 10)
APPLICANT = {"monthly_income": 3_000_000, "monthly_expenses": 500_000, "assets": 50_000_000,
             "debt": 0, "job_type": "fixed", "job_seniority_years": 8, "home": "owner",
             "marital_status": "married"}
LIVE = ("scheduled", "disbursing", "active", "overdue")
DISBURSED = ("active", "overdue", "closed")


def beijing(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(timezone.utc)


class InvariantViolation(AssertionError):
    pass


class JobFaults:
    """Faults that one item of a daily job keeps hitting for a while, then heals: a loan whose
    close of business raises (`poison_loan`) and a repayment whose wallet refund raises
    (`break_refund`), each until a Beijing date, or until `heal()`. Installed once per World
    (on the service and the sandbox collector class), inert while nothing is poisoned."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self.poisoned_loans: dict[str, date] = {}
        self.broken_refunds: dict[str, date] = {}

    def _today(self) -> date:
        return self.world.clock.now().astimezone(SHANGHAI).date()

    def poisoned(self, loan_id: str) -> bool:
        until = self.poisoned_loans.get(loan_id)
        return until is not None and self._today() < until

    def refund_broken(self, repayment_id: str) -> bool:
        until = self.broken_refunds.get(repayment_id)
        return until is not None and self._today() < until

    def poison_loan(self, loan_id: str, until: date) -> None:
        self.poisoned_loans[loan_id] = until

    def break_refund(self, repayment_id: str, until: date) -> None:
        self.broken_refunds[repayment_id] = until

    def heal(self) -> None:
        self.poisoned_loans.clear()
        self.broken_refunds.clear()

    def install(self, patch: pytest.MonkeyPatch) -> None:
        from chalicelib.repay import service
        faults = self
        close_loan = service._close_loan
        refund = SandboxCollector.refund

        def poisonable_close(loan_id: str, *args: Any, **kwargs: Any) -> Any:
            if faults.poisoned(loan_id):
                raise RuntimeError(f"injected: close of business of loan {loan_id} fails")
            return close_loan(loan_id, *args, **kwargs)

        def breakable_refund(collector: SandboxCollector, **kwargs: Any) -> str:
            if faults.refund_broken(kwargs["repayment_id"]):
                raise RuntimeError(f"injected: the wallet's refund of {kwargs['repayment_id']} fails")
            return refund(collector, **kwargs)

        patch.setattr(service, "_close_loan", poisonable_close)
        patch.setattr(SandboxCollector, "refund", breakable_refund)


class MemorySender:
    """Notifications sent (SMS/push), in memory."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, channel: str, to: str, text: str) -> None:
        self.sent.append((channel, to, text))


def _header_user(request: Any) -> str:
    from chalicelib.core.errors import Unauthorized
    user = request.headers.get("x-proof-user")
    if not user:
        raise Unauthorized("no proof user", code="TOKEN_MISSING")
    return user


def install_seams(patch: pytest.MonkeyPatch) -> None:
    """Every proof user is verified, has cards `c-ok` and `c-0000` (refused by the sandbox
    bank), and is named by an `X-Proof-User` header instead of a token."""
    verified_people(patch)
    patch.setitem(AUTHENTICATORS, "bearer", _header_user)


_buckets = 0


def wipe_account() -> None:
    """Empty every table but the products and purge the queues: a fresh account in
    milliseconds instead of a new moto backend and bootstrap per example."""
    for model in TABLES:
        if model is ProductRecord:
            continue
        keys = [a.attr_name for a in (model._hash_key_attribute(), model._range_key_attribute()) if a]
        with model.batch_write() as batch:
            for item in model.scan(attributes_to_get=keys):
                batch.delete(item)
    # The anchors' bucket keeps every object under Object Lock, so it cannot be emptied: each
    # example gets a bucket of its own (the code finds it by ANCHOR_BUCKET, as when deployed).
    global _buckets
    _buckets += 1
    os.environ["ANCHOR_BUCKET"] = f"{config.resource_prefix()}-ledger-anchors-w{_buckets}"
    create_anchor_bucket()
    sqs = aws.client("sqs")
    for key in ("disbursements", "notifications", "closing"):  # PurgeQueue allows one call a minute
        url = aws.queue_url(key)
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                              VisibilityTimeout=0).get("Messages", []):
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    idempotency.reset()


class Api:
    """The routes, through chalice's test client, as one user."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, method: str, path: str, user: str, body: Any = None,
             key: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "X-Proof-User": user}
        if key is not None:
            headers["Idempotency-Key"] = key
        if method == "get":
            response = self.client.http.get(path, headers=headers)
        else:
            response = self.client.http.post(path, headers=headers,
                                             body=json.dumps(body).encode() if body is not None else b"")
        try:
            payload = json.loads(response.body) if response.body else None
        except ValueError:
            payload = response.body
        return response.status_code, payload


class World:
    """Owns the overrides and seams for one run; `reset()` gives a fresh account."""

    def __init__(self, client: Any, users: tuple[str, ...] = ("u-a", "u-b")) -> None:
        self.client = client
        self.api = Api(client)
        self.users = users
        self.patches = pytest.MonkeyPatch()
        self.clock = FixedClock(beijing(START))
        self.payout = SandboxPayout()
        self.collector = SandboxCollector()
        self.sender = MemorySender()
        self.applications: dict[str, str] = {}
        self.job_faults = JobFaults(self)

    def __enter__(self) -> "World":
        install_seams(self.patches)
        self.job_faults.install(self.patches)
        os.environ.setdefault("SMS_QUIET_HOURS", "21:00-08:00")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.patches.undo()
        wiring.reset()

    def reset(self) -> None:
        wipe_account()
        catalog.clear_cache()
        self.clock = FixedClock(beijing(START))
        self.payout = SandboxPayout()
        self.collector = SandboxCollector()
        self.sender = MemorySender()
        self.applications = {}
        self.job_faults.heal()
        wiring.reset()
        wiring.override("clock", self.clock)
        wiring.override("payout_gateway", self.payout)
        wiring.override("payment_collector", self.collector)
        wiring.override("message_sender", self.sender)

    # --- the borrower's side -------------------------------------------------------------

    def apply(self, user: str, amount: int = 1_000_000, term: int = 12) -> tuple[int, Any]:
        body = {"product_id": "revolving-credit", "amount": amount, "term_months": term,
                "purpose": "装修", "applicant": APPLICANT}
        status, answer = self.api.call("post", "/v1/applications", user, body, key=str(uuid.uuid4()))
        if status == 201 and answer["status"] == "approved":
            self.applications[user] = answer["application_id"]
        return status, answer

    def draw(self, user: str, amount: int, term: int, method: str, card: str = "c-ok",
             disburse_at: datetime | None = None, key: str | None = None) -> tuple[int, Any]:
        body = {"application_id": self.applications.get(user, "none"), "amount": amount,
                "term_months": term, "repayment_method": method, "bank_card_id": card}
        if disburse_at is not None:
            body["disburse_at"] = disburse_at.astimezone(SHANGHAI).isoformat()
        return self.api.call("post", "/v1/loans", user, body, key=key or str(uuid.uuid4()))

    def cancel(self, user: str, loan_id: str) -> tuple[int, Any]:
        return self.api.call("post", f"/v1/loans/{loan_id}/cancel", user)

    def payoff(self, user: str, loan_id: str) -> tuple[int, Any]:
        return self.api.call("get", f"/v1/loans/{loan_id}/payoff", user)

    def loan(self, user: str, loan_id: str) -> tuple[int, Any]:
        return self.api.call("get", f"/v1/loans/{loan_id}", user)

    def repay(self, user: str, loan_id: str, amount: int, key: str | None = None) -> tuple[int, Any]:
        return self.api.call("post", f"/v1/loans/{loan_id}/repayments", user, {"amount": amount},
                             key=key or str(uuid.uuid4()))

    # --- jobs and queues -----------------------------------------------------------------

    def run_schedule(self, name: str, at: datetime) -> Any:
        answer = self.client.lambda_.invoke(name, scheduled_event(at, name)).payload
        if name == "reminders":  # the sweep queued the day's pages: their consumer queues the texts
            pages = self.drain("reminding")
            if pages:  # still failing after its retries: on AWS, the reminding DLQ and its alarm
                raise JobIncomplete(f"reminders: {len(pages)} page(s) failed",
                                    failed=tuple(m["Body"] for m in pages))
        if name == "close_of_business":  # the sweep queued the late loans: their consumer runs
            left = self.drain("closing")
            if left:  # still failing after its retries: on AWS, the closing DLQ and its alarm
                failed = tuple(sorted({json.loads(m["Body"])["loan_id"] for m in left}))
                raise JobIncomplete(f"close of business: {len(failed)} loan(s) failed", failed=failed)
        return answer

    def receive(self, key: str) -> list[dict]:
        return queues.receive(key)

    def consume(self, key: str, messages: list[dict]) -> set[str]:
        return queues.consume(self.client, key, messages, batch_size=len(messages) or 1)

    def drain(self, key: str, rounds: int = 3) -> list[dict]:
        return queues.drain(self.client, key, rounds)

    def sweep_and_disburse(self) -> list[dict]:
        self.run_schedule("disbursement_sweep", self.clock.now())
        return self.drain("disbursements")

    def daily_jobs(self, day: date) -> None:
        self.run_schedule("close_of_business", beijing(day, 0, 5))
        self.run_schedule("reminders", beijing(day, 9, 0))
        self.drain("notifications")

    # --- reading the tables ----------------------------------------------------------------

    def loans(self) -> list[LoanRecord]:
        return [loan for user in self.users for loan in LoanRecord.by_user.query(user)]


def check_closed_through(world: World, business_date: date, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """What close of business for `business_date` must have left (loans in `skip` aside):
    every live loan with an unpaid installment past its grace day (D <= X-2) is `overdue`,
    and closing it again as of X would post nothing (each day's penalty up to X-1 is posted;
    days of 0 fen need no write), and its borrower's record has seen its days past due as of X
    (the credit report's worst days, recorded even on a night that writes no loan)."""
    from chalicelib.loans.record import CreditRecord, late_days
    from chalicelib.money import engine
    problems = []
    seen = {r.user_id: r.days_past_due_seen or set() for r in CreditRecord.scan(consistent_read=True)}
    for loan in LoanRecord.scan(consistent_read=True):
        if loan.user_id not in world.users or loan.loan_id in skip or loan.status not in ("active", "overdue"):
            continue
        state = schedules.load(loan.state)
        late = [i.number for i in state.installments
                if not i.settled and i.due_date <= business_date - timedelta(days=2)]
        if late and loan.status != "overdue":
            problems.append(f"{loan.loan_id[:8]}: installments {late} are past their grace day unpaid, "
                            f"but the loan is {loan.status}")
        days = late_days(state, business_date)
        worst = max(seen.get(loan.user_id, set()), default=0)
        if days and worst < days:
            problems.append(f"{loan.loan_id[:8]}: {days} days past due, but its borrower's record has seen at most "
                            f"{worst}")
        missing = engine.close_of_business(state, business_date).posted
        if missing:
            problems.append(f"{loan.loan_id[:8]}: {len(missing)} day(s) of penalty not posted, from "
                            f"{missing[0].day} (installment {missing[0].installment})")
    if problems:
        raise InvariantViolation(f"not closed through {business_date}:\n" + "\n".join(problems))


def check_invariants(world: World, settled: bool = False) -> None:
    """Everything money must satisfy, read from the tables and the gateways' records.
    Money taken by a repayment whose function died before writing is in flight (its intent is
    open) until the reconciler settles it; with `settled`, nothing may be in flight."""
    problems: list[str] = []

    def bad(text: str) -> None:
        problems.append(text)

    # One consistent scan per table (the account holds this run's items only): a handful of
    # calls per check however many loans there are.
    loans = [loan for loan in LoanRecord.scan(consistent_read=True) if loan.user_id in world.users]
    by_id = {loan.loan_id: loan for loan in loans}
    ledger_of: dict[str, list[LedgerEntryRecord]] = {}
    for entry in LedgerEntryRecord.scan(consistent_read=True):
        ledger_of.setdefault(entry.loan_id, []).append(entry)
    index_of: dict[str, dict[int, InstallmentRecord]] = {}
    for item in InstallmentRecord.scan(consistent_read=True):
        index_of.setdefault(item.loan_id, {})[item.installment] = item
    lines_of = {record.user_id: record for record in CreditLineRecord.scan(consistent_read=True)}
    for loan_id in set(ledger_of) - set(by_id):
        bad(f"ledger entries for unknown loan {loan_id[:8]}")
    collections_in_ledger: dict[str, int] = {}
    for loan in loans:
        lid = loan.loan_id[:8]
        entries = sorted(ledger_of.get(loan.loan_id, []), key=lambda e: e.entry_id)
        lines = [json.loads(e.lines) for e in entries]
        for entry, entry_lines in zip(entries, lines):
            debit = sum(l["debit"] for l in entry_lines)
            credit_sum = sum(l["credit"] for l in entry_lines)
            if debit != credit_sum:
                bad(f"{lid}: entry {entry.entry_id} debits {debit} != credits {credit_sum}")
            if entry.cause == "repayment":
                collections_in_ledger[entry.cause_id] = sum(
                    l["debit"] for l in entry_lines if l["account"] == ledger.COLLECTIONS_CLEARING)
        totals = ledger.balances(lines)
        if sum(totals.values()) != 0:
            bad(f"{lid}: ledger does not balance {totals}")
        # The hash chain (issue 16): unbroken from GENESIS, ending at the loan's recorded head.
        for found in chain.check_chain(loan.loan_id, [e.link() for e in entries],
                                       length=loan.ledger_seq or 0, head=loan.ledger_head,
                                       head_entry=loan.ledger_head_entry):
            bad(f"{lid}: ledger chain: {found.entry_id}: {found.why}")
        if loan.outstanding_principal < 0:
            bad(f"{lid}: outstanding {loan.outstanding_principal} < 0")
        state = schedules.load(loan.state)
        if sum(i.principal for i in state.installments) != loan.principal:
            bad(f"{lid}: schedule principal {sum(i.principal for i in state.installments)} != {loan.principal}")
        if loan.status in DISBURSED:
            if loan.outstanding_principal != state.outstanding_principal:
                bad(f"{lid}: record outstanding {loan.outstanding_principal} != schedule "
                    f"{state.outstanding_principal}")
            receivable = totals.get(ledger.PRINCIPAL_RECEIVABLE, 0)
            if receivable != state.outstanding_principal:
                bad(f"{lid}: ledger principal receivable {receivable} != schedule outstanding "
                    f"{state.outstanding_principal}")
            penalty_owed = sum(i.penalty_posted - i.penalty_posted_paid for i in state.installments)
            if totals.get(ledger.PENALTY_RECEIVABLE, 0) != penalty_owed:
                bad(f"{lid}: ledger penalty receivable {totals.get(ledger.PENALTY_RECEIVABLE, 0)} "
                    f"!= schedule {penalty_owed}")
            if -totals.get(ledger.PAYOUT_CLEARING, 0) != loan.principal:
                bad(f"{lid}: paid out in ledger {-totals.get(ledger.PAYOUT_CLEARING, 0)} != {loan.principal}")
            for i in state.installments:
                if not (0 <= i.principal_paid <= i.principal and 0 <= i.interest_paid <= i.interest
                        and 0 <= i.penalty_posted_paid <= i.penalty_posted
                        and 0 <= i.penalty_unposted_paid <= i.penalty_unposted):
                    bad(f"{lid}: installment {i.number} paid beyond what is due {i}")
            if (loan.status == "closed") != state.closed:
                bad(f"{lid}: status {loan.status} but schedule closed={state.closed}")
            if loan.status == "closed" and loan.outstanding_principal != 0:
                bad(f"{lid}: closed with {loan.outstanding_principal} outstanding")
            index = index_of.get(loan.loan_id, {})
            for i in state.installments:
                item = index.get(i.number)
                if item is None:
                    bad(f"{lid}: installment {i.number} has no index item")
                elif (item.open_shard is None) != i.settled:
                    bad(f"{lid}: index of installment {i.number} open={item.open_shard} "
                        f"but settled={i.settled}")
        else:
            if lines:
                bad(f"{lid}: {loan.status} loan has ledger entries {[e.entry_id for e in entries]}")
            if loan.status in ("cancelled", "failed") and loan.outstanding_principal != 0:
                bad(f"{lid}: {loan.status} with outstanding {loan.outstanding_principal}")
    # The anchors: each day's record equals its locked copy, whose leaves are still the heads
    # of that day's chains.
    from chalicelib.ledger import audit
    from chalicelib.ledger.models import AnchorRecord
    heads = audit._heads_by_day(e for entries in ledger_of.values() for e in entries)
    for anchor in AnchorRecord.scan(consistent_read=True):
        for found in audit._check_anchor(anchor, heads.get(anchor.date, {})):
            bad(f"anchor {anchor.date}: {str(found['loan_id'])[:8]} {found['entry_id']}: {found['why']}")
    # The credit line: `drawn` is the principal not yet repaid of live loans, to the fen.
    for user in world.users:
        record = lines_of.get(user)
        line = None if record is None else credit.CreditLine(
            record.user_id, record.credit_limit, record.drawn, record.apr, record.expires_on)
        owed = sum(l.principal if l.status in ("scheduled", "disbursing") else l.outstanding_principal
                   for l in loans if l.user_id == user and l.status in LIVE)
        if line is None:
            if owed:
                bad(f"{user}: loans without a credit line")
            continue
        if line.drawn != owed:
            bad(f"{user}: line drawn {line.drawn} != live principal {owed}")
        if line.available != max(0, line.limit - line.drawn) or line.available < 0:
            bad(f"{user}: available {line.available} with limit {line.limit}, drawn {line.drawn}")
        if not isinstance(record.drawn, int):
            bad(f"{user}: drawn is not integer fen")
    # The portfolio's counters: what every loan's status, outstanding principal and stored
    # bucket add up to (each write moved them in its own transaction, whatever failed).
    from chalicelib.loans import aggregates
    for cell in aggregates.drift(aggregates.read(), aggregates.recount()):
        bad(f"portfolio {cell['group']}[{cell['name']}].{cell['field']}: counters {cell['counters']} "
            f"!= loans {cell['recount']}")
    # The borrowers' records (the credit report): what their applications and loans add up to,
    # however often a write was retried, replayed or crashed midway.
    from chalicelib.loans.models import ApplicationRecord
    from chalicelib.loans.record import CreditRecord
    records = {r.user_id: r for r in CreditRecord.scan(consistent_read=True)}
    decided = Counter(a.user_id for a in ApplicationRecord.scan(consistent_read=True))
    for user in world.users:
        mine = [schedules.load(l.state).installments for l in loans if l.user_id == user and l.status in DISBURSED]
        record = records.get(user, CreditRecord(user_id=user))
        expected = {"applications": decided[user], "loans": len(mine),
                    "installments_late": sum(i.overdue for state in mine for i in state),
                    "installments_on_time": sum(i.settled and not i.overdue for state in mine for i in state)}
        counted = {name: getattr(record, name) for name in expected}
        if counted != expected:
            bad(f"{user}: credit record {counted} != applications and loans {expected}")
    # Payouts: once per loan, only for loans that are (being) paid out, each for its principal.
    keys = Counter(t.idempotency_key for t in world.payout.transfers)
    for key, count in keys.items():
        if count > 1:
            bad(f"loan {key[:8]} paid out {count} times")
        loan = by_id.get(key)
        if loan is None or loan.status not in ("disbursing", *DISBURSED):
            bad(f"payout to loan {key[:8]} in status {loan.status if loan else None}")
    for transfer in world.payout.transfers:
        loan = by_id.get(transfer.idempotency_key)
        if loan is not None and transfer.amount != loan.principal:
            bad(f"loan {loan.loan_id[:8]} paid out {transfer.amount} != principal {loan.principal}")
    for loan in loans:
        if loan.status in DISBURSED and keys.get(loan.loan_id, 0) != 1:
            bad(f"{loan.loan_id[:8]} is {loan.status} but paid out {keys.get(loan.loan_id, 0)} times")
    # Collections: every fen collected and not refunded is a repayment in the ledger, once, or
    # is in flight under an unsettled intent.
    from chalicelib.repay.models import RepaymentRecord
    intents = {r.repayment_id: r for r in RepaymentRecord.scan(consistent_read=True)}
    in_flight = {rid for rid, r in intents.items() if r.status in ("open", "refunding")}
    if settled and in_flight:
        bad(f"repayments still unsettled after the reconciler: {sorted(r[:8] for r in in_flight)}")
    kept = {rid: amount for rid, amount in world.collector.collected.items()
            if rid not in world.collector.refunded and rid not in in_flight}
    for rid in world.collector.collected:
        if rid not in intents:
            bad(f"money collected for repayment {rid[:8]} with no intent written first")
    for rid, intent in intents.items():
        if intent.status == "posted" and rid not in collections_in_ledger:
            bad(f"intent {rid[:8]} posted but not in the ledger")
        if intent.status in ("refunded", "void") and rid in collections_in_ledger:
            bad(f"intent {rid[:8]} {intent.status} but in the ledger")
        if intent.status == "refunded" and rid not in world.collector.refunded:
            bad(f"intent {rid[:8]} refunded but the wallet gave nothing back")
    for rid, amount in world.collector.refunded.items():
        if rid not in world.collector.collected:
            bad(f"refund of repayment {rid[:8]} that was never collected")
        elif world.collector.collected[rid] != amount:
            bad(f"repayment {rid[:8]} refunded {amount} of {world.collector.collected[rid]}")
        if rid in collections_in_ledger:
            bad(f"repayment {rid[:8]} refunded but also in the ledger")
    if kept != collections_in_ledger:
        missing = {k[:8]: v for k, v in kept.items() if collections_in_ledger.get(k) != v}
        phantom = {k[:8]: v for k, v in collections_in_ledger.items() if kept.get(k) != v}
        bad(f"collected and kept {sum(kept.values())} != ledger collections "
            f"{sum(collections_in_ledger.values())}; collected not in ledger {missing}, "
            f"ledger not collected {phantom}")
    if problems:
        raise InvariantViolation("\n".join(problems))
