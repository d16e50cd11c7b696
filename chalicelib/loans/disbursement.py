"""Disbursement: the every-minute sweep and the exactly-once payout consumer.

A loan moves `scheduled` -> `disbursing` -> `active` (or `failed`, restoring the credit). The
payout is keyed by the loan id, so the bank pays a loan once whatever is delivered twice; the
`disbursing` lease keeps two consumers from calling the bank at the same moment, and the sweep
re-queues a loan whose consumer crashed mid-way once its lease has expired.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import wiring
from chalicelib.adapters import aws
from chalicelib.core.clock import parse_instant, shanghai_date
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.money.fen import format_cny
from chalicelib.core.observability import logger, metrics
from chalicelib.loans import aggregates, people, schedules
from chalicelib.loans import record as borrower_record
from chalicelib.money import ledger
from chalicelib.loans.models import CreditLineRecord, LedgerEntryRecord, LoanRecord
from chalicelib.loans.payout import PayoutOrder
from chalicelib.loans.service import DISBURSE_SHARDS, iso_utc

LEASE = timedelta(seconds=60)


def sweep(now: datetime) -> dict[str, int]:
    """Queue one message per loan whose time has come; reads only due or stuck loans."""
    due_before = iso_utc(now)
    read = queued = 0
    batch: list[dict] = []
    sqs = aws.client("sqs")

    def flush() -> None:
        nonlocal batch
        if batch:
            answer = sqs.send_message_batch(QueueUrl=aws.queue_url("disbursements"), Entries=batch)
            if answer.get("Failed"):
                raise RuntimeError(f"could not queue {len(answer['Failed'])} disbursements")
            batch = []

    for shard in range(DISBURSE_SHARDS):
        for key in LoanRecord.disburse_due.query(f"d{shard}", LoanRecord.disburse_at <= due_before):
            read += 1
            batch.append({"Id": str(len(batch)), "MessageBody": json.dumps({"loan_id": key.loan_id})})
            queued += 1
            if len(batch) == 10:
                flush()
    flush()
    metrics.add_metric(name="DisbursementsQueued", unit="Count", value=queued)
    logger.info("disbursement sweep", extra={"items_read": read, "queued": queued})
    return {"items_read": read, "queued": queued}


def _claim(loan: LoanRecord, now: datetime) -> LoanRecord | None:
    """Take the loan's disbursing lease. None when another consumer holds a live lease."""
    if loan.status == "scheduled":
        condition = LoanRecord.status == "scheduled"
    elif loan.status == "disbursing":
        held_since = parse_instant(loan.disbursing_since)
        if now - held_since < LEASE:
            return None
        condition = (LoanRecord.status == "disbursing") & (
            LoanRecord.disbursing_since == loan.disbursing_since)
    else:
        return None
    since = iso_utc(now)
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.update(loan, actions=[LoanRecord.status.set("disbursing"), LoanRecord.disbursing_since.set(since),
                                     *aggregates.move(tx, loan, "disbursing", None, loan.outstanding_principal)],
                      condition=condition)
    except TransactWriteError as err:
        if condition_failed(err):
            return None
        raise
    loan.status, loan.disbursing_since = "disbursing", since  # what the transaction wrote
    return loan


def disburse(loan_id: str, now: datetime) -> str:
    """Pay out one loan at most once. Returns what happened (for logs and tests)."""
    loan = LoanRecord.get(loan_id, consistent_read=True)
    if loan.status not in ("scheduled", "disbursing"):
        return "already_" + loan.status
    if loan.disburse_at > iso_utc(now):
        return "not_due"
    # Before the claim: payout settings not filled in (SettingsMissing) leave the loan scheduled.
    gateway = wiring.payout_gateway()
    if _claim(loan, now) is None:
        return "in_progress"
    card = people.payout_card(loan.user_id, loan.bank_card_id)
    if card is None:
        return _fail(loan, now, "CARD_REMOVED")
    result = gateway.pay(PayoutOrder(
        idempotency_key=loan.loan_id, amount=loan.principal, card_number=card.card_number,
        holder_name=card.holder_name))
    if not result.paid:
        return _fail(loan, now, result.reason or "PAYOUT_REFUSED")
    return _activate(loan, now, result.reference)


def _activate(loan: LoanRecord, now: datetime, reference: str) -> str:
    state = schedules.new_state(loan.principal, loan.apr, loan.term_months,
                               loan.repayment_method, shanghai_date(now))
    entry = ledger.disbursement(loan.loan_id, loan.principal)
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            chain = LedgerEntryRecord.append(tx, loan, [entry], iso_utc(now))
            tx.update(loan, actions=[LoanRecord.status.set("active"),
                                     LoanRecord.disburse_shard.remove(),
                                     LoanRecord.disbursed_at.set(iso_utc(now)),
                                     LoanRecord.payout_reference.set(reference),
                                     LoanRecord.state.set(state), *chain,
                                     *aggregates.move(tx, loan, "active", aggregates.bucket_of(0),
                                                      loan.principal)],
                      condition=LoanRecord.status == "disbursing")
            for item in schedules.index_items(loan.loan_id, loan.user_id, loan.product_id, state):
                tx.save(item)
            borrower_record.count(tx, loan.user_id, loans=1)
    except TransactWriteError as err:
        if condition_failed(err):
            return "already_active"
        raise
    metrics.add_metric(name="LoanDisbursed", unit="Count", value=1)
    _notify(loan, "disbursed", f"您的借款 {format_cny(loan.principal)} 元已发放至尾号 {loan.card_last4} 的银行卡。")
    return "active"


def _fail(loan: LoanRecord, now: datetime, reason: str) -> str:
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.update(loan, actions=[LoanRecord.status.set("failed"), LoanRecord.disburse_shard.remove(),
                                     LoanRecord.failure_reason.set(reason),
                                     LoanRecord.outstanding_principal.set(0),
                                     LoanRecord.closed_at.set(iso_utc(now)),
                                     *aggregates.move(tx, loan, "failed", None, 0)],
                      condition=LoanRecord.status == "disbursing")
            tx.update(CreditLineRecord(user_id=loan.user_id),
                      actions=[CreditLineRecord.drawn.add(-loan.principal)])
    except TransactWriteError as err:
        if condition_failed(err):
            return "already_failed"
        raise
    metrics.add_metric(name="DisbursementFailed", unit="Count", value=1)
    logger.warning("disbursement refused", extra={"loan_id": loan.loan_id, "reason": reason})
    _notify(loan, "disbursement_failed", "您的借款未能发放到尾号 "
            f"{loan.card_last4} 的银行卡，额度已恢复。请更换银行卡后重新借款。")
    return "failed"


def _notify(loan: LoanRecord, kind: str, text: str) -> None:
    from chalicelib.repay.notifications import enqueue
    enqueue(notification_id=f"{kind}#{loan.loan_id}", user_id=loan.user_id, kind=kind, text=text,
            loan_id=loan.loan_id)
