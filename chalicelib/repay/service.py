"""Use cases of the repay slice: payoff quotes, repayments, close of business, reminders.

The money arithmetic is the pure engine's (`chalicelib.money.engine`); this module loads and
stores loans, collects money through the payment port, and writes every change together with
its ledger entries and installment index items in one transaction.
"""
from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import wiring
from chalicelib.adapters import aws
from chalicelib.core import jobs
from chalicelib.core.clock import shanghai_date
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.core.errors import Conflict, DependencyDown, LendingError, RuleViolation
from chalicelib.adapters.idempotency import MoneyKey
from chalicelib.core.observability import logger, metrics
from chalicelib.loans import aggregates, schedules
from chalicelib.loans import record as borrower_record
from chalicelib.loans.models import CreditLineRecord, LedgerEntryRecord, LoanRecord
from chalicelib.loans.service import iso_utc, loan_view, own_loan
from chalicelib.money import engine, ledger
from chalicelib.money.fen import format_cny
from chalicelib.repay.collection import NotCollected
from chalicelib.repay.models import InstallmentRecord, RepaymentRecord
from chalicelib.repay.notifications import NotificationMessage, enqueue, enqueue_many

REPAYABLE = ("active", "overdue")
UNSETTLED = "1"
# A repayment still open this long after it began outlived the function that took the money
# (the API's timeout is 10 s): the reconciler settles it.
RECONCILE_AFTER = timedelta(minutes=10)
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit

REMINDER_KIND = {-3: "due_soon", -1: "due_soon", 0: "due_today"}


def payoff(user_id: str, loan_id: str, on: date | None, now: datetime) -> dict:
    loan = own_loan(user_id, loan_id)
    today = shanghai_date(now)
    as_of = on or today
    if as_of < today:
        raise RuleViolation("The payoff date cannot be in the past.", code="PAYOFF_DATE_INVALID")
    if loan.status not in REPAYABLE:
        raise Conflict(f"A loan that is {loan.status} has nothing to pay off.", code="LOAN_NOT_ACTIVE")
    quote = engine.payoff_quote(schedules.load(loan.state), as_of)
    return {"amount": quote.amount, "principal": quote.principal, "interest": quote.interest,
            "penalty": quote.penalty, "as_of": as_of.isoformat()}


def _index_updates(loan: LoanRecord, state_json: str) -> list[InstallmentRecord]:
    """The installment index items that `state_json` changes from the loan's stored state (a
    repayment touches one or two installments, not the twelve: each item written costs write
    units, twice in a transaction)."""
    before = {item.installment: item.serialize()
              for item in schedules.index_items(loan.loan_id, loan.user_id, loan.product_id, loan.state)}
    return [item for item in schedules.index_items(loan.loan_id, loan.user_id, loan.product_id, state_json)
            if before.get(item.installment) != item.serialize()]


# How long a borrower should wait before asking again about a payment being confirmed: the
# reconciler runs every 5 minutes and settles what is older than RECONCILE_AFTER.
CONFIRM_RETRY_AFTER = str(int(RECONCILE_AFTER.total_seconds()) + 300)


def _payment_pending(message: str, status: type[LendingError] = DependencyDown) -> LendingError:
    return status(message, code="PAYMENT_PENDING", headers={"Retry-After": CONFIRM_RETRY_AFTER})


def _attempt_to_replace(key: MoneyKey, record) -> str | None:  # type: ignore[no-untyped-def]
    """The earlier attempt under this key that failed for good (its money was never taken or
    was given back), which a retry may replace; None for a new key. An attempt whose outcome
    is not known yet is waited for, never paid again."""
    if record is None:
        return None
    intent = _intent_status(record.ref) if record.ref else None
    if intent in ("void", "refunded"):
        return record.ref
    key.check_body(record)
    raise _payment_pending("A payment with this Idempotency-Key is still being confirmed with your "
                           "wallet. Do not pay again: if it did not go through it is given back "
                           "automatically. Ask again with the same key later to see the result.",
                           Conflict)


def repay(user_id: str, loan_id: str, amount: int, now: datetime, key: MoneyKey | None = None) -> dict:
    """Collect `amount` and apply it: what is due first, then the accruing installment, the
    rest prepays principal. With `key`, a retry answers the first result and never collects
    twice (the key commits with the intent and with the posting)."""
    loan = own_loan(user_id, loan_id)
    replacing = None
    if key is not None:
        record = key.record()
        first = key.replay(record)
        if first is not None:
            return first
        replacing = _attempt_to_replace(key, record)
    if loan.status not in REPAYABLE:
        raise Conflict(f"A loan that is {loan.status} cannot be repaid.", code="LOAN_NOT_ACTIVE")
    today = shanghai_date(now)
    repayment_id = str(uuid.uuid4())
    # Apply first (overpayment is refused before any money moves), then collect, then write.
    result = engine.apply_repayment(schedules.load(loan.state), amount, today)
    # The wallet before the intent: settings not filled in (SettingsMissing, 503) open nothing.
    collector = wiring.payment_collector()
    # The intent goes first: if this function dies after the debit, the reconciler finds it.
    _open_intent(RepaymentRecord(repayment_id=repayment_id, loan_id=loan_id, user_id=user_id,
                                 amount=amount, status="open", created_at=iso_utc(now),
                                 unsettled=UNSETTLED), key, replacing)
    try:
        collector.collect(repayment_id=repayment_id, user_id=user_id, amount=amount)
    except RuleViolation:  # the wallet said no: nothing was taken
        _settle(repayment_id, "void", now, expected=("open",))
        raise
    except Exception:
        # Ambiguous (a timeout, a 5xx): the debit may have gone through. The intent stays open
        # and the reconciler gives back whatever was taken; a retry with the key waits for it.
        logger.exception("wallet debit not confirmed", extra={"loan_id": loan_id,
                                                              "repayment_id": repayment_id})
        raise _payment_pending("Your wallet has not confirmed the payment yet. Do not pay again: "
                               "if it went through it is given back automatically within "
                               "minutes. Ask again with the same Idempotency-Key later to see "
                               "the result.") from None
    try:
        result, status, closed = _post_repayment(loan, repayment_id, amount, result, today, now, key)
    except LendingError:
        raise  # the money went back where the error was decided
    except Exception:
        # Collected, but the write failed or its answer was lost: the ledger decides. Keep the
        # money only if the repayment is posted, otherwise give it back; never both, never neither.
        posted = _posted_repayment(loan_id, repayment_id)
        if posted is None:
            _give_back(repayment_id, user_id, amount, now)
            logger.exception("repayment not recorded; refunded", extra={"loan_id": loan_id})
            raise DependencyDown("We could not record your payment; it was returned. Try again.",
                                 code="REPAYMENT_UNAVAILABLE") from None
        result, status, closed = posted
    metrics.add_metric(name="RepaymentReceived", unit="Count", value=1)
    _notify_repayment(user_id, loan_id, repayment_id, amount, result, closed)
    return _answer(repayment_id, amount, result, status)


def _open_intent(intent: RepaymentRecord, key: MoneyKey | None, replacing: str | None) -> None:
    """Write the repayment's intent, and put the key's attempt in flight with it."""
    if key is None:
        intent.save(condition=RepaymentRecord.repayment_id.does_not_exist())
        return
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.save(intent, condition=RepaymentRecord.repayment_id.does_not_exist())
            key.open_in(tx, intent.repayment_id, replacing)
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        raise Conflict("A request with this Idempotency-Key is still being processed; retry "
                       "shortly.", code="IDEMPOTENCY_IN_PROGRESS") from None


def _answer(repayment_id: str, amount: int, result, status: str) -> dict:  # type: ignore[no-untyped-def]
    return {"repayment_id": repayment_id, "amount": amount,
            "allocation": {"penalty": result.allocation.penalty, "interest": result.allocation.interest,
                           "principal": result.allocation.principal},
            "loan": {"status": status, "outstanding_principal": result.state.outstanding_principal}}


def _notify_repayment(user_id: str, loan_id: str, repayment_id: str, amount: int, result,  # type: ignore[no-untyped-def]
                      closed: bool) -> None:
    kind = "loan_closed" if closed else "repayment_received"
    text = ("您的借款已全部结清，感谢使用。" if closed else
            f"已收到您的还款 {format_cny(amount)} 元，剩余本金 {format_cny(result.state.outstanding_principal)} 元。")
    try:  # the payment is recorded: a notification that cannot be queued must not undo that
        enqueue(notification_id=f"{kind}#{repayment_id}", user_id=user_id, kind=kind, text=text,
                loan_id=loan_id)
    except Exception:  # noqa: BLE001
        logger.exception("repayment notification not queued", extra={"loan_id": loan_id})


def _posted_repayment(loan_id: str, repayment_id: str, attempts: int = 5):  # type: ignore[no-untyped-def]
    """(result, status, closed) as posted if the repayment's ledger entry exists, else None.
    Raises if the ledger cannot be read (the money then stays until someone can tell)."""
    for attempt in range(attempts):
        try:
            entries = list(LedgerEntryRecord.query(
                loan_id, LedgerEntryRecord.entry_id == f"repayment#{repayment_id}", consistent_read=True))
            if not entries:
                return None
            loan = LoanRecord.get(loan_id, consistent_read=True)
            break
        except Exception:  # noqa: BLE001 - a read failed: try again, then give up loudly
            if attempt == attempts - 1:
                raise
    credits: dict[str, int] = {}
    for line in json.loads(entries[0].lines):
        credits[line["account"]] = credits.get(line["account"], 0) + line["credit"]
    allocation = engine.Allocation(
        penalty=credits.get(ledger.PENALTY_RECEIVABLE, 0) + credits.get(ledger.PENALTY_INCOME, 0),
        interest=credits.get(ledger.INTEREST_INCOME, 0),
        principal=credits.get(ledger.PRINCIPAL_RECEIVABLE, 0),
        penalty_posted=credits.get(ledger.PENALTY_RECEIVABLE, 0),
        penalty_unposted=credits.get(ledger.PENALTY_INCOME, 0))
    state = schedules.load(loan.state)
    return engine.RepaymentResult(state, allocation, state.closed), loan.status, state.closed


def _post_repayment(loan: LoanRecord, repayment_id: str, amount: int, result, today: date,  # type: ignore[no-untyped-def]
                    now: datetime, key: MoneyKey | None = None):
    """Write the applied repayment with its ledger entry (and the key's answer); again on a
    concurrent change."""
    user_id, loan_id = loan.user_id, loan.loan_id
    for _attempt in range(5):
        state_json = json.dumps(result.state.to_dict())
        closed = result.closed
        status = "closed" if closed else engine.loan_status(result.state, today)
        entry = ledger.repayment(repayment_id, amount, principal=result.allocation.principal,
                                 interest=result.allocation.interest,
                                 penalty_posted=result.allocation.penalty_posted,
                                 penalty_unposted=result.allocation.penalty_unposted)
        try:
            with TransactWrite(connection=transact_connection()) as tx:
                outstanding = result.state.outstanding_principal
                actions = [LoanRecord.state.set(state_json), LoanRecord.status.set(status),
                           LoanRecord.outstanding_principal.set(outstanding),
                           *aggregates.move(tx, loan, status, aggregates.bucket(status, result.state, today),
                                            outstanding)]
                if closed:
                    actions.append(LoanRecord.closed_at.set(iso_utc(now)))
                actions += LedgerEntryRecord.append(tx, loan, [entry], iso_utc(now))
                tx.update(loan, actions=actions, condition=LoanRecord.status.is_in(*REPAYABLE))
                if result.allocation.principal:
                    tx.update(CreditLineRecord(user_id=user_id),
                              actions=[CreditLineRecord.drawn.add(-result.allocation.principal)])
                for item in _index_updates(loan, state_json):
                    tx.save(item)
                borrower_record.count_changes(tx, user_id, schedules.load(loan.state), result.state, today)
                tx.update(RepaymentRecord(repayment_id=repayment_id), actions=_settled("posted", now),
                          condition=RepaymentRecord.status == "open")
                if key is not None:
                    key.done_in(tx, _answer(repayment_id, amount, result, status), ref=repayment_id)
            break
        except TransactWriteError as err:
            if not condition_failed(err):
                raise
            posted = _posted_repayment(loan_id, repayment_id)
            if posted is not None:  # our own write, retried after it had committed
                return posted
            if _intent_status(repayment_id) != "open":  # the reconciler is giving it back
                raise DependencyDown("Your payment took too long and is being returned. Try again.",
                                     code="REPAYMENT_UNAVAILABLE") from None
            loan = own_loan(user_id, loan_id)  # a concurrent change: apply to the new state
            if loan.status not in REPAYABLE:
                _give_back(repayment_id, user_id, amount, now)
                raise Conflict("The loan changed while paying; your payment was returned.",
                               code="LOAN_NOT_ACTIVE") from None
            try:
                result = engine.apply_repayment(schedules.load(loan.state), amount, today)
            except LendingError:  # e.g. a concurrent repayment left less to pay than this
                _give_back(repayment_id, user_id, amount, now)
                raise
    else:
        _give_back(repayment_id, user_id, amount, now)
        raise Conflict("The loan is busy; your payment was returned. Try again.", code="LOAN_BUSY")
    return result, status, closed


def _intent_status(repayment_id: str) -> str | None:
    try:
        return RepaymentRecord.get(repayment_id, consistent_read=True).status
    except DoesNotExist:
        return None


def _give_back(repayment_id: str, user_id: str, amount: int, now: datetime) -> str:
    """Refund a collected repayment that was not posted: claim it (open -> refunding, so no
    late write can post it), refund (the wallet refunds a repayment id once), mark it refunded.
    Answers how it ended: "refunded", or "void" when the wallet never took the money."""
    collector = wiring.payment_collector()  # before the claim: missing settings change nothing
    try:
        RepaymentRecord(repayment_id=repayment_id).update(
            actions=[RepaymentRecord.status.set("refunding")],
            condition=RepaymentRecord.status.is_in("open", "refunding"))
    except UpdateError as err:
        if not condition_failed(err):
            raise
        status = _intent_status(repayment_id)
        if status in ("refunded", "void"):
            return status
        raise RuntimeError(f"repayment {repayment_id} is {status}; it cannot be refunded") from None
    try:
        collector.refund(repayment_id=repayment_id, user_id=user_id, amount=amount)
    except NotCollected:  # the debit never went through: nothing to give back
        _settle(repayment_id, "void", now, expected=("refunding",))
        return "void"
    _settle(repayment_id, "refunded", now, expected=("refunding",))
    return "refunded"


def _settled(status: str, now: datetime) -> list:
    return [RepaymentRecord.status.set(status), RepaymentRecord.settled_at.set(iso_utc(now)),
            RepaymentRecord.unsettled.remove()]


def _settle(repayment_id: str, status: str, now: datetime, expected: tuple[str, ...]) -> None:
    RepaymentRecord(repayment_id=repayment_id).update(actions=_settled(status, now),
                                                      condition=RepaymentRecord.status.is_in(*expected))


def reconcile_repayments(now: datetime) -> dict:
    """Settle repayments left open by a function that died between the debit and the write:
    posted if the ledger has them, otherwise given back. Reads only unsettled intents.

    Each intent is settled on its own (`jobs.each_alone`): one whose refund keeps failing is
    logged with its ids, counted in `RepaymentReconcileFailed`, tried again after the others
    and listed in `failed_repayments` (the handler then reports the invocation as failed). It
    stays unsettled (`refunding` once claimed, so no late write can post it), and the next run,
    five minutes later, tries it again; the wallet refunds a repayment id once.
    """
    cutoff = iso_utc(now - RECONCILE_AFTER)
    counts = {"posted": 0, "refunded": 0, "void": 0}
    intents = list(RepaymentRecord.unsettled_by_created.query(UNSETTLED, RepaymentRecord.created_at < cutoff))
    outcome = jobs.each_alone("repayment reconciler", intents, lambda intent: _reconcile(intent, now),
                              item_id=lambda intent: intent.repayment_id, id_field="repayment_id",
                              failure_metric="RepaymentReconcileFailed")
    for _intent, settled in outcome.done:
        if settled is not None:
            counts[settled] = counts.get(settled, 0) + 1
    metrics.add_metric(name="RepaymentsReconciled", unit="Count", value=sum(counts.values()))
    return {**counts, "failed": len(outcome.failed),
            "failed_repayments": [intent.repayment_id for intent in outcome.failed]}


def _reconcile(intent: RepaymentRecord, now: datetime) -> str | None:
    """Settle one unsettled intent; answers how ("posted", "refunded", "void"), or None when
    someone else settled it meanwhile."""
    if intent.status == "open" and _posted_repayment(intent.loan_id, intent.repayment_id):
        try:
            _settle(intent.repayment_id, "posted", now, expected=("open",))
        except UpdateError as err:
            if not condition_failed(err):
                raise
            return None
        return "posted"
    outcome = _give_back(intent.repayment_id, intent.user_id, intent.amount, now)
    logger.warning("unsettled repayment settled", extra={"loan_id": intent.loan_id, "outcome": outcome,
                                                           "repayment_id": intent.repayment_id})
    return outcome


def _open_installments(due_from: date | None, due_to: date) -> list[InstallmentRecord]:
    """Unpaid installments with a due date in [due_from, due_to], through the sparse index."""
    found = []
    for shard in range(schedules.OPEN_SHARDS):
        condition = (InstallmentRecord.due_date <= due_to.isoformat() if due_from is None else
                     InstallmentRecord.due_date.between(due_from.isoformat(), due_to.isoformat()))
        found.extend(InstallmentRecord.open_by_due_date.query(f"o{shard}", condition))
    return found


def _late_loans(business_date: date) -> tuple[list[InstallmentRecord], list[str]]:
    """The unpaid installments due before `business_date`, through the sparse index only, and
    their loans' ids in order: those past their grace day (due two days before or earlier)
    owe penalty and may turn overdue; one due the day before enters its grace day, which moves
    its loan to the 1-30 days-past-due bucket of the portfolio (chalicelib.loans.aggregates)."""
    late = _open_installments(None, business_date - timedelta(days=1))
    return late, sorted({item.loan_id for item in late})


def close_of_business(business_date: date, now: datetime) -> dict:
    """The whole day closed in this process: what the sweep and its consumers do (below),
    without the queue. The bench, the tests of a day's close and an operator's catch-up from a
    shell use it; the scheduled job fans out instead, since this grows with the late loans.

    Mark overdue and post each missing day's penalty, for the loans that need it only.

    Each loan is closed on its own (`jobs.each_alone`): a loan that fails is logged with its id,
    counted in `CloseOfBusinessLoanFailed`, tried again after the others, and if it still fails
    it is listed in `failed_loans`; the handler then reports the invocation as failed, so
    Lambda's asynchronous retry runs the same business date again. Every step is idempotent
    per installment and day, so a rerun posts only what is still missing.
    """
    late, loans = _late_loans(business_date)
    posted = Counter[str]()  # counted per committed step, so a loan that fails midway counts too
    outcome = jobs.each_alone("close of business", loans,
                              lambda loan_id: _close_loan(loan_id, business_date, now, posted),
                              item_id=str, id_field="loan_id", failure_metric="CloseOfBusinessLoanFailed")
    summary = {"installments_read": len(late), "loans": len(loans), "penalty_days_posted": posted["days"],
               "failed": len(outcome.failed), "failed_loans": outcome.failed}
    logger.info("close of business", extra={"business_date": business_date.isoformat(),
                                            "retried": outcome.retried, **summary})
    return summary


def _queue_all(key: str, bodies: list[dict[str, Any]]) -> None:
    """Put one message per body on the queue, ten to a request (SQS's batch); raise if any is
    not accepted (the sweep fails and is retried whole: its consumers are idempotent)."""
    sqs = aws.client("sqs")
    for start in range(0, len(bodies), 10):
        answer = sqs.send_message_batch(QueueUrl=aws.queue_url(key), Entries=[
            {"Id": str(n), "MessageBody": json.dumps(body)} for n, body in enumerate(bodies[start:start + 10])])
        if answer.get("Failed"):
            raise RuntimeError(f"could not queue {len(answer['Failed'])} messages on {key}")


def queue_close_of_business(business_date: date, now: datetime) -> dict:
    """The daily sweep (issue 17): one message per loan with an unpaid installment due before
    `business_date` (see `_late_loans`) on the `closing` queue, for its consumer
    (`close_of_business_consumer`); the day is done when that queue is drained. Reads the late installments through the sparse index only. A message
    delivered twice closes its loan twice: the second finds nothing to post."""
    late, loans = _late_loans(business_date)
    _queue_all("closing", [{"loan_id": loan_id, "business_date": business_date.isoformat(), "at": now.isoformat()}
                           for loan_id in loans])
    metrics.add_metric(name="CloseOfBusinessQueued", unit="Count", value=len(loans))
    summary = {"installments_read": len(late), "queued": len(loans)}
    logger.info("close of business sweep", extra={"business_date": business_date.isoformat(), **summary})
    return summary


def close_one(loan_id: str, business_date: date, now: datetime, last_try: bool = True) -> int:
    """Close one loan for `business_date` (the `closing` queue's consumer): the penalty days it
    posted. Raises when it cannot: the message comes back, up to the queue's receive count,
    then goes to the dead-letter queue. Every failure is logged with the loan; the last try's
    is counted in `CloseOfBusinessLoanFailed` (it pages), so a fault that passes does not."""
    posted = Counter[str]()
    try:
        _close_loan(loan_id, business_date, now, posted)
    except Exception:
        if last_try:
            metrics.add_metric(name="CloseOfBusinessLoanFailed", unit="Count", value=1)
        logger.exception("close of business: loan failed", extra={
            "loan_id": loan_id, "business_date": business_date.isoformat(), "last_try": last_try})
        raise
    return posted["days"]


def _close_loan(loan_id: str, business_date: date, now: datetime, posted: Counter[str]) -> None:
    """Bring one loan up to `business_date`, adding the penalty days it posts to `posted`.

    After a job outage the catch-up can hold more postings than one DynamoDB transaction may
    (100 items: the loan, one index item per installment, one ledger entry per installment and
    day). It is then done in steps: each step is the engine's close of business for an
    intermediate date X_i, the latest whose postings still fit, committed with the loan's
    state in one transaction. A step is a complete close of business for X_i, so the loan is
    consistent after each one; if the run stops between steps, the next run goes on from
    X_i (`penalty_through`), and a step committed twice is refused by the ledger entries'
    ids and the loan's version.
    """
    conflicts = 0
    while True:
        loan = LoanRecord.get(loan_id, consistent_read=True)
        if loan.status not in REPAYABLE:
            return
        state = schedules.load(loan.state)
        step_date, result = _catch_up_step(state, business_date, loan_id)
        status = engine.loan_status(result.state, business_date)
        dpd_bucket = aggregates.bucket(status, result.state, business_date)
        if not result.posted and loan.status == status and loan.dpd_bucket == dpd_bucket:
            borrower_record.see_late_days(loan.user_id, result.state, step_date)  # its days still grow
            return
        state_json = json.dumps(result.state.to_dict())
        try:
            with TransactWrite(connection=transact_connection()) as tx:
                entries = [ledger.penalty_accrual(loan_id, posting.installment, posting.day.isoformat(),
                                                  posting.amount) for posting in result.posted]
                chain = LedgerEntryRecord.append(tx, loan, entries, iso_utc(now))
                tx.update(loan, actions=[LoanRecord.state.set(state_json), LoanRecord.status.set(status),
                                         *chain, *aggregates.move(tx, loan, status, dpd_bucket,
                                                                  loan.outstanding_principal)],
                          condition=LoanRecord.status.is_in(*REPAYABLE))
                for item in _index_updates(loan, state_json):
                    tx.save(item)
                borrower_record.count_changes(tx, loan.user_id, state, result.state, step_date)
        except TransactWriteError as err:
            if not condition_failed(err):
                raise
            conflicts += 1  # a repayment changed the loan meanwhile: redo the step on its state
            if conflicts >= 5:
                raise Conflict(f"loan {loan_id} kept changing during close of business") from None
            continue
        posted["days"] += len(result.posted)
        if step_date == business_date:
            return


def _catch_up_step(state: engine.LoanState, business_date: date,
                   loan_id: str) -> tuple[date, engine.CloseOfBusinessResult]:
    """The latest date X <= `business_date` whose close of business fits one transaction,
    with that close. Postings only grow with X (one per late installment and day before X),
    so the latest X that fits is found by bisection between a date that posts nothing (the
    day after the earliest unsettled due date: no installment is past its grace day yet) and
    `business_date`."""
    # the loan, a counter shard, the borrower's record, its index items
    room = MAX_TRANSACTION_ITEMS - 3 - len(state.installments)
    full = engine.close_of_business(state, business_date)
    if len(full.posted) <= room:
        return business_date, full
    unsettled = [i.due_date for i in state.installments if not i.settled]
    fits, too_big = min(unsettled) + timedelta(days=1), business_date
    fits_result = engine.close_of_business(state, fits)
    while (too_big - fits).days > 1:
        middle = fits + timedelta(days=(too_big - fits).days // 2)
        result = engine.close_of_business(state, middle)
        if len(result.posted) <= room:
            fits, fits_result = middle, result
        else:
            too_big = middle
    if not fits_result.posted:  # one day of postings alone is too many: cannot be split
        raise RuntimeError(f"loan {loan_id}: one day of penalty postings does not fit a transaction")
    return fits, fits_result


def reminder_kind(offset: int) -> str:
    return REMINDER_KIND.get(offset, "overdue")


def reminder_pages(business_date: date) -> list[dict[str, Any]]:
    """The day's reminder work, one page per (reminder day, index shard): what the sweep
    queues on the `reminding` queue, a constant number (days x shards) whatever the book."""
    from chalicelib.loans.catalog import reminder_days
    return [{"business_date": business_date.isoformat(), "offset": offset, "shard": shard}
            for offset in reminder_days() for shard in range(schedules.OPEN_SHARDS)]


def queue_reminders(business_date: date) -> dict[str, int]:
    """The daily reminders as a sweep (issue 17): a message per page for `reminder_consumer`,
    so no invocation grows with the number of installments due."""
    pages = reminder_pages(business_date)
    _queue_all("reminding", pages)
    return {"pages": len(pages)}


def remind_page(business_date: date, offset: int, shard: int) -> dict[str, int]:
    """Queue a reminder for each unpaid installment of index shard `shard` due `offset` days
    before `business_date` (the consumer's work). Notification ids are the installment, kind
    and day, so a page done twice sends each text once."""
    from chalicelib.loans.catalog import reminder_days
    due = business_date - timedelta(days=offset)
    items = list(InstallmentRecord.open_by_due_date.query(f"o{shard}", InstallmentRecord.due_date == due.isoformat()))
    messages = []
    for item in items:
        if offset not in reminder_days(item.product_id):
            continue
        kind = reminder_kind(offset)
        messages.append(NotificationMessage(
            notification_id=f"{kind}#{item.loan_id}#{item.installment}#{business_date.isoformat()}",
            user_id=item.user_id, kind=kind, channel="sms", loan_id=item.loan_id,
            text=_reminder_text(offset, item.installment, item.due_date)))
    enqueue_many(messages)
    metrics.add_metric(name="RemindersQueued", unit="Count", value=len(messages))
    return {"installments_read": len(items), "queued": len(messages)}


def send_reminders(business_date: date) -> dict[str, int]:
    """Every page of the day in this process (tests, the bench, an operator's shell): what the
    sweep and its consumers do, without the queue."""
    total = Counter[str]()
    for page in reminder_pages(business_date):
        total.update(remind_page(business_date, page["offset"], page["shard"]))
    return {"installments_read": total["installments_read"], "queued": total["queued"]}


def _reminder_text(offset: int, installment: int, due_date: str) -> str:
    if offset < 0:
        return f"温馨提示：您的第 {installment} 期还款将于 {due_date} 到期，请按时还款。"
    if offset == 0:
        return f"您的第 {installment} 期还款今天（{due_date}）到期，请今日内还款。"
    if offset == 1:
        return f"您的第 {installment} 期还款已于 {due_date} 到期，今天是免罚息的最后一天。"
    return f"您的第 {installment} 期还款已逾期 {offset} 天（到期日 {due_date}），逾期将产生罚息，请尽快还款。"


def loan_after(user_id: str, loan_id: str) -> dict:
    return loan_view(own_loan(user_id, loan_id))
