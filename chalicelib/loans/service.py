"""Use cases of the loans slice: drawdowns, cancellation, and reading loans."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters import aws
from chalicelib.core.clock import shanghai_date, shanghai_iso  # noqa: F401 - the slice imports shanghai_iso from here
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.core.errors import Conflict, NotFound, RuleViolation
from chalicelib.adapters.idempotency import MoneyKey
from chalicelib.core.observability import logger
from chalicelib.loans import aggregates, catalog, credit, people, schedules
from chalicelib.loans.models import ApplicationRecord, CreditLineRecord, LoanRecord
from chalicelib.risk.policy import MAX_LIVE_LOANS

MAX_DISBURSE_AHEAD = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=5)
DISBURSE_SHARDS = 4
AFFORDABILITY_SHARE = Decimal("0.5")  # largest installment <= half of disposable income
LIVE_STATUSES = ("scheduled", "disbursing", "active", "overdue")
DRAW_ATTEMPTS = 5  # a draw re-reads and re-checks when the line moved; then 409 CREDIT_LINE_BUSY


@dataclass(frozen=True)
class DrawRequest:
    application_id: str
    amount: int
    term_months: int
    repayment_method: str
    bank_card_id: str
    disburse_at: datetime | None


def shard_for(loan_id: str) -> str:
    return f"d{int(uuid.UUID(loan_id).int % DISBURSE_SHARDS)}"


def iso_utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def application_record(application_id: str, *, owner: str | None = None) -> ApplicationRecord:
    """The application, read consistently. Missing and someone else's (when `owner` is given)
    answer the same NotFound, so ids cannot be probed."""
    try:
        record = ApplicationRecord.get(application_id, consistent_read=True)
    except (DoesNotExist, ValueError):
        record = None
    if record is None or (owner is not None and record.user_id != owner):
        raise NotFound("No such application.", code="APPLICATION_NOT_FOUND")
    return record


def _disburse_time(requested: datetime | None, now: datetime) -> datetime:
    if requested is None:
        return now
    if requested.tzinfo is None:
        raise RuleViolation("disburse_at needs a time-zone offset.", code="DISBURSE_AT_INVALID")
    if requested < now - CLOCK_SKEW or requested > now + MAX_DISBURSE_AHEAD:
        raise RuleViolation("disburse_at must be between now and 7 days ahead.",
                            code="DISBURSE_AT_INVALID")
    return max(requested, now)


def _check_affordable(application: ApplicationRecord, largest_installment: int) -> None:
    applicant = json.loads(application.applicant)
    disposable = applicant["monthly_income"] - applicant["monthly_expenses"]
    if Decimal(largest_installment) > Decimal(disposable) * AFFORDABILITY_SHARE:
        raise RuleViolation("The monthly repayment would exceed half of your income after "
                            "expenses; choose a smaller amount or a longer term.",
                            code="AFFORDABILITY")


def _drawable_line(line: credit.CreditLine | None, application: ApplicationRecord,
                   now: datetime) -> credit.CreditLine:
    """The line, if `application` is the approval that set it and it is still valid."""
    if line is None:
        raise Conflict("You have no credit line yet; apply first.", code="NO_CREDIT_LINE")
    if line.application_id != application.application_id:
        raise Conflict("A later decision set your credit line; draw on that application.",
                       code="APPLICATION_SUPERSEDED")
    if line.expires_on < shanghai_date(now).isoformat():
        raise Conflict("Your credit line has expired; apply again.", code="CREDIT_LINE_EXPIRED")
    return line


def live_loans(line: credit.CreditLine) -> list[LoanRecord]:
    """The user's loans that are live now, read consistently: those the line's last draw
    recorded (every other loan of the line has ended, and an ended loan never comes back)."""
    if line.draw_seq is None:  # a line from before draws were recorded on it: its loans, once
        ids = [loan.loan_id for loan in LoanRecord.by_user.query(line.user_id)
               if loan.status in LIVE_STATUSES]
    else:
        ids = list(line.loan_ids)
    if not ids:
        return []
    return [loan for loan in LoanRecord.batch_get(ids, consistent_read=True)
            if loan.status in LIVE_STATUSES]


def _check_hard_rules(live: list[LoanRecord]) -> None:
    """The rules of the moment, as at an application (risk.policy): none overdue, fewer than
    MAX_LIVE_LOANS live."""
    if any(loan.status == "overdue" for loan in live):
        raise RuleViolation("You have an overdue loan; repay it before drawing again.",
                            code="LOAN_OVERDUE")
    if len(live) >= MAX_LIVE_LOANS:
        raise RuleViolation(f"You already have {MAX_LIVE_LOANS} loans; repay one before drawing "
                            "again.", code="TOO_MANY_LOANS", params={"max_loans": MAX_LIVE_LOANS})


def draw(user_id: str, request: DrawRequest, now: datetime, key: MoneyKey | None = None) -> dict:
    """Take `amount` from the user's line and schedule the loan, atomically. Every rule is
    checked on what was read, and the write holds only if the line is still as read. With
    `key`, the key's answer commits in the same transaction, so a retry answers this loan,
    never a second."""
    people.refuse_during_security_hold(user_id)  # first: a phone just replaced may be a thief's
    if key is not None and (first := key.replay()) is not None:
        return first
    application = application_record(request.application_id, owner=user_id)
    if application.status != "approved":
        raise Conflict("This application is not approved.", code="APPLICATION_NOT_APPROVED")
    line = _drawable_line(credit.get_line(user_id), application, now)
    product = catalog.get_product(application.product_id)
    if not product.min_amount <= request.amount <= product.max_amount:
        raise RuleViolation(f"The amount must be between {product.min_amount} and "
                            f"{product.max_amount} fen for this product.", code="AMOUNT_OUT_OF_RANGE",
                            params={"min_amount": product.min_amount, "max_amount": product.max_amount})
    if request.term_months not in product.term_months:
        raise RuleViolation(f"Terms offered: {list(product.term_months)} months.", code="TERM_NOT_OFFERED",
                            params={"terms": "、".join(map(str, product.term_months))})
    if request.repayment_method not in product.repayment_methods:
        raise RuleViolation(f"Repayment methods offered: {list(product.repayment_methods)}.",
                            code="REPAYMENT_METHOD_NOT_OFFERED",
                            params={"methods": "、".join(product.repayment_methods)})
    last4 = people.card_owned(user_id, request.bank_card_id)
    if last4 is None:
        raise NotFound("No such bank card.", code="CARD_NOT_FOUND")
    disburse_at = _disburse_time(request.disburse_at, now)
    loan_id = str(uuid.uuid4())
    for attempt in range(DRAW_ATTEMPTS):
        if attempt:  # the line moved since it was read: someone drew, repaid or was approved
            line = _drawable_line(credit.get_line(user_id), application, now)
        live = live_loans(line)
        _check_hard_rules(live)
        if request.amount > line.available:
            raise RuleViolation(f"You can draw at most {line.available} fen.",
                                code="CREDIT_LIMIT_EXCEEDED", params={"available": line.available})
        preview = schedules.preview(request.amount, line.apr, request.term_months,
                                    request.repayment_method, shanghai_date(disburse_at))
        _check_affordable(application, max(i["total"] for i in preview["schedule"]))
        loan = LoanRecord(
            loan_id=loan_id, user_id=user_id, application_id=application.application_id,
            product_id=application.product_id, status="scheduled", principal=request.amount,
            outstanding_principal=request.amount, apr=line.apr,
            repayment_method=request.repayment_method, term_months=request.term_months,
            bank_card_id=request.bank_card_id, card_last4=last4, disburse_at=iso_utc(disburse_at),
            disburse_shard=shard_for(loan_id), created_at=iso_utc(now), state=preview["state"])
        answer = loan_view(loan)
        if _write_draw(line, loan, [other.loan_id for other in live], key, answer):
            break
        if key is not None and (first := key.replay()) is not None:
            return first  # a retry of this request committed first
    else:
        raise Conflict("Your credit line is busy; try again.", code="CREDIT_LINE_BUSY")
    if disburse_at <= now:
        queue_disbursement(loan_id)
    return answer


def _write_draw(line: credit.CreditLine, loan: LoanRecord, live_ids: list[str],
                key: MoneyKey | None, answer: dict) -> bool:
    """The draw's one transaction: the line takes the loan's principal and records the draw,
    and the loan is created (with the Idempotency-Key's answer), only if the line is still as
    `line` read it (same approval, limit and APR, room for the amount, no other draw since)
    and the key is new. False when it is not."""
    line_item = CreditLineRecord
    seen = (line_item.draw_seq.does_not_exist() if line.draw_seq is None
            else line_item.draw_seq == line.draw_seq)
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.update(CreditLineRecord(user_id=line.user_id),
                      actions=[line_item.drawn.add(loan.principal),
                               line_item.draw_seq.set((line.draw_seq or 0) + 1),
                               line_item.loan_ids.set([*live_ids, loan.loan_id])],
                      condition=seen & (line_item.application_id == line.application_id) &
                      (line_item.credit_limit == line.limit) & (line_item.apr == line.apr) &
                      (line_item.drawn <= line.limit - loan.principal))
            tx.save(loan)
            aggregates.move(tx, None, loan.status, None, loan.outstanding_principal)
            if key is not None:
                key.done_in(tx, answer)
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        return False
    return True


def queue_disbursement(loan_id: str) -> None:
    """Pay out now rather than at the next sweep; if queueing fails, the sweep still will."""
    try:
        aws.client("sqs").send_message(QueueUrl=aws.queue_url("disbursements"),
                                       MessageBody=json.dumps({"loan_id": loan_id}))
    except Exception:  # noqa: BLE001 - the minute sweep is the safety net
        logger.warning("could not queue the disbursement; the sweep will", extra={"loan_id": loan_id})


def own_loan(user_id: str, loan_id: str) -> LoanRecord:
    """The user's loan, read consistently; another user's loan is "not found" (404), never 403."""
    try:
        record = LoanRecord.get(loan_id, consistent_read=True)
    except (DoesNotExist, ValueError):
        record = None
    if record is None or record.user_id != user_id:
        raise NotFound("No such loan.", code="LOAN_NOT_FOUND")
    return record


def cancel(user_id: str, loan_id: str, now: datetime, lang: str = "zh") -> dict:
    """Cancel a loan that is still `scheduled`; its amount goes back to the line."""
    loan = own_loan(user_id, loan_id)
    if loan.status != "scheduled":
        raise Conflict(f"A loan that is {loan.status} cannot be cancelled.", code="LOAN_NOT_CANCELLABLE")
    try:
        with TransactWrite(connection=transact_connection()) as tx:
            tx.update(loan, actions=[LoanRecord.status.set("cancelled"),
                                     LoanRecord.disburse_shard.remove(),
                                     LoanRecord.outstanding_principal.set(0),
                                     LoanRecord.closed_at.set(iso_utc(now)),
                                     *aggregates.move(tx, loan, "cancelled", None, 0)],
                      condition=LoanRecord.status == "scheduled")
            tx.update(CreditLineRecord(user_id=user_id),
                      actions=[CreditLineRecord.drawn.add(-loan.principal)])
    except TransactWriteError as err:
        if not condition_failed(err):
            raise
        raise Conflict("The loan is already being paid out and can no longer be cancelled.",
                       code="LOAN_NOT_CANCELLABLE") from None
    return loan_view(own_loan(user_id, loan_id), lang)


def get_loan(user_id: str, loan_id: str, lang: str = "zh") -> dict:
    return loan_view(own_loan(user_id, loan_id), lang)


def has_live_loan(user_id: str) -> bool:
    """Whether the user owes or is about to receive money (adding a payout card then needs a
    fresh SMS code)."""
    return any(r.status in LIVE_STATUSES for r in LoanRecord.by_user.query(user_id))


LIST_PAGE = 100


def list_loans(user_id: str, lang: str = "zh") -> list[dict]:
    """The user's latest loans, newest first: one page (the contract has no paging, and a
    borrower must not be able to make this answer grow without bound by drawing and cancelling)."""
    records = LoanRecord.by_user.query(user_id, scan_index_forward=False, limit=LIST_PAGE)
    return [loan_view(r, lang) for r in records]


# Why a loan ended without a bill: code -> (English, Chinese). A payout refused for good is
# CARD_REFUSED whatever the bank's own code (kept in `failure_reason` for the ops view).
STATUS_REASONS: dict[str, tuple[str, str]] = {
    "CARD_REFUSED": ("The bank refused the payout to this card, so nothing was lent and your "
                     "credit is back on your line. Add another card and draw again.",
                     "银行拒绝向该卡放款，借款未发放，额度已恢复。请更换银行卡后重新借款。"),
    "CARD_REMOVED": ("The card was removed before the payout, so nothing was lent and your credit "
                     "is back on your line.", "放款前该银行卡已解绑，借款未发放，额度已恢复。"),
    "CANCELLED_BY_BORROWER": ("You cancelled this loan before it was paid out; your credit is back "
                              "on your line.", "您已在放款前取消该笔借款，额度已恢复。"),
}


def status_reason(loan: LoanRecord, lang: str = "zh") -> dict | None:
    """Why a `failed` or `cancelled` loan owes nothing; None for every other loan."""
    if loan.status == "cancelled":
        code = "CANCELLED_BY_BORROWER"
    elif loan.status == "failed":
        code = "CARD_REMOVED" if loan.failure_reason == "CARD_REMOVED" else "CARD_REFUSED"
    else:
        return None
    en, zh = STATUS_REASONS[code]
    return {"code": code, "message": en if lang == "en" else zh}


def loan_view(loan: LoanRecord, lang: str = "zh") -> dict:
    """A loan as the borrower sees it. A loan that was never paid out shows no bill: its
    preview schedule is not owed."""
    reason = status_reason(loan, lang)
    shown = ({"schedule": [], "total_interest": 0, "total_repayment": 0} if reason is not None
             else schedules.render(loan.state))
    return {
        "loan_id": loan.loan_id, "status": loan.status, "principal": loan.principal,
        "outstanding_principal": loan.outstanding_principal, "apr": loan.apr,
        "repayment_method": loan.repayment_method, "term_months": loan.term_months,
        "product_id": loan.product_id, "bank_card_last4": loan.card_last4,
        "disburse_at": shanghai_iso(loan.disburse_at), "disbursed_at": shanghai_iso(loan.disbursed_at),
        "schedule": shown["schedule"], "total_interest": shown["total_interest"],
        "total_repayment": shown["total_repayment"], "status_reason": reason,
    }
