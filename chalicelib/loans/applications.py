"""Applications: validate, ask risk for a decision, store it immutably, move the credit line."""
from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.core import pii
from chalicelib.core.clock import parse_instant, shanghai_date
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.core.errors import Conflict, Forbidden, NotFound, RuleViolation
from chalicelib.core.observability import logger, metrics
from chalicelib.loans import catalog, credit, people, schedules
from chalicelib.loans import record as borrower_record
from chalicelib.loans.models import DAY_SHARDS, ApplicationRecord, DeclineRecord, LoanRecord
from chalicelib.loans.service import LIVE_STATUSES, application_record, iso_utc, shanghai_iso
from chalicelib.risk import reasons
from chalicelib.risk.service import ApplicationFacts, decide

REVIEW_QUEUE = "review"
BUSINESS_LOAN = "business_loan"
COOL_DOWN = "REAPPLY_COOL_DOWN"  # the policy's reason when the same product is re-applied too soon
OPERATOR_REASONS = {"approved": "OPERATOR_APPROVED", "declined": "OPERATOR_DECLINED"}


def _history(user_id: str, product_id: str) -> dict:
    """What the lender already knows of this borrower, for the policy's hard rules."""
    outstanding = live = overdue = 0
    ever_overdue = False
    for loan in LoanRecord.by_user.query(user_id):
        if loan.status in LIVE_STATUSES:
            live += 1
            outstanding += loan.outstanding_principal
        if loan.status == "overdue":
            overdue += 1
        if loan.status in ("active", "overdue", "closed") and schedules.ever_overdue(loan.state):
            ever_overdue = True
    try:
        last_decline: date | None = date.fromisoformat(
            DeclineRecord.get(user_id, product_id, consistent_read=True).declined_on)
    except DoesNotExist:
        last_decline = None
    return {"outstanding_principal": outstanding, "live_loans": live, "overdue_loans": overdue,
            "ever_overdue": ever_overdue, "last_decline_on": last_decline}


def _starts_cool_down(decision: dict) -> bool:
    """A decline does; a refusal during the cool-down does not restart it."""
    return decision["status"] == "declined" and [r["code"] for r in decision["reasons"]] != [COOL_DOWN]


def _record_decline(record: ApplicationRecord) -> None:
    """An operator's decline counts from the application's own decision date, unless a later
    decline is already on record."""
    declined_on = shanghai_date(parse_instant(record.decided_at)).isoformat()
    try:
        DeclineRecord(user_id=record.user_id, product_id=record.product_id,
                      application_id=record.application_id, declined_on=declined_on).save(
            condition=DeclineRecord.declined_on.does_not_exist() | (DeclineRecord.declined_on < declined_on))
    except PutError as err:
        if not condition_failed(err):
            raise


def decided_at(record: ApplicationRecord) -> str:
    """When the decision the borrower sees was made: an operator's review, else the model's."""
    return shanghai_iso(record.reviewed_at or record.decided_at)


def view(record: ApplicationRecord, lang: str = "zh") -> dict:
    """The decision as the borrower sees it, in their language. Once an operator decided, that
    is the decision: its reason and its time (the automated one stays in `decision`)."""
    shown = json.loads(record.reasons)
    if record.reviewed_by and not {r["code"] for r in shown} & set(OPERATOR_REASONS.values()):
        # Decided before operators' reasons were standard (the note was appended to the
        # review's reasons): show what is shown today, never the stored note.
        shown = [{"code": OPERATOR_REASONS[record.status], "message": ""}]
    # Decisions of policy-1.0.0 named age or marital status, and listed risk reasons on
    # approvals: the record keeps them (replay), the borrower no longer sees them.
    shown = reasons.shown(record.status, shown)
    return {"application_id": record.application_id, "status": record.status,
            "credit_limit": record.credit_limit, "apr": record.apr,
            "reasons": reasons.localise(shown, lang),
            "model_version": record.model_version,
            "decided_at": decided_at(record),
            "product_id": record.product_id, "amount": record.amount,
            "term_months": record.term_months}


# The unified social credit code (GB 32100): 18 characters of digits and capitals without
# I, O, S, V, Z; its check character is verified too (422 BUSINESS_CREDIT_CODE_INVALID).
USCC_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{18}$"


def _check_business(product: catalog.Product, code: str | None) -> None:
    """Business loans need the business's unified social credit code; other products take none."""
    from stdnum.cn import uscc
    if product.kind != BUSINESS_LOAN:
        if code is not None:  # a documented field, so a rule of the product's, not malformed
            raise RuleViolation("business_credit_code is only taken for business loans.",
                                code="BUSINESS_CREDIT_CODE_NOT_ACCEPTED")
        return
    if code is None or not re.fullmatch(USCC_PATTERN, code) or not uscc.is_valid(code):
        raise RuleViolation("Enter the business's 18-character unified social credit code "
                            "(统一社会信用代码) as printed on its licence.",
                            code="BUSINESS_CREDIT_CODE_INVALID")


def apply(user_id: str, *, product_id: str, amount: int, term_months: int, purpose: str,
          applicant: dict, now: datetime, lang: str = "zh",
          business_credit_code: str | None = None) -> dict:
    borrower = people.borrower(user_id)
    if not (borrower.identity_verified and borrower.phone_bound and borrower.has_card):
        raise Forbidden("Verify your identity, bind a phone and add a bank card first.",
                        code="IDENTITY_REQUIRED")
    try:
        product = catalog.get_product(product_id)
    except NotFound:
        raise RuleViolation("No such product.", code="PRODUCT_NOT_FOUND") from None
    if not product.min_amount <= amount <= product.max_amount:
        raise RuleViolation(f"The amount must be between {product.min_amount} and "
                            f"{product.max_amount} fen for this product.", code="AMOUNT_OUT_OF_RANGE",
                            params={"min_amount": product.min_amount, "max_amount": product.max_amount})
    if term_months not in product.term_months:
        raise RuleViolation(f"Terms offered: {list(product.term_months)} months.", code="TERM_NOT_OFFERED",
                            params={"terms": "、".join(map(str, product.term_months))})
    _check_business(product, business_credit_code)
    facts = ApplicationFacts(user_id=user_id, product=product, amount=amount, term_months=term_months,
                             applicant=applicant, age=borrower.age,
                             identity_verified=borrower.identity_verified, now=now, lang=lang,
                             **_history(user_id, product_id))
    decision = decide(facts)
    application_id = str(uuid.uuid4())
    decided_day = f"{shanghai_date(now).isoformat()}#{uuid.UUID(application_id).int % DAY_SHARDS}"

    def record_of(granted: int, shown: list[dict]) -> ApplicationRecord:
        return ApplicationRecord(
            application_id=application_id, user_id=user_id, product_id=product_id, amount=amount,
            term_months=term_months, purpose=purpose, applicant=json.dumps(applicant),
            business_credit_code=business_credit_code.upper() if business_credit_code else None,
            status=decision["status"], credit_limit=granted, apr=decision["apr"],
            reasons=json.dumps(shown, ensure_ascii=False),
            model_version=decision["model_version"], decided_at=iso_utc(now),
            decision=json.dumps(decision, ensure_ascii=False, default=str),
            review_queue=REVIEW_QUEUE if decision["status"] == "review" else None,
            decided_day=decided_day)

    record = record_of(decision["credit_limit"], decision["reasons"])
    new_record = ApplicationRecord.application_id.does_not_exist()
    if decision["status"] == "approved":
        # The application and the line it moves, in one transaction: its answer carries the
        # limit the line actually got (`decision` keeps the model's, for replay).
        def with_record(tx: TransactWrite, approval: credit.Approval) -> None:
            nonlocal record
            held = [reasons.rule_reason("LIMIT_INCREASE_TOO_SOON", lang)] if approval.held else []
            record = record_of(approval.limit, held + decision["reasons"])
            tx.save(record, condition=new_record)
            borrower_record.count(tx, user_id, applications=1, approved=1, latest=application_id)

        approval = credit.approve(user_id, limit=decision["credit_limit"], apr=decision["apr"],
                                  application_id=application_id, product_id=product_id, now=now,
                                  also=with_record)
        if approval.held:
            metrics.add_metric(name="LimitIncreaseHeld", unit="Count", value=1)
    else:  # the application, the user's record and a decline's cool-down, in one transaction
        with TransactWrite(connection=transact_connection()) as tx:
            tx.save(record, condition=new_record)
            borrower_record.count(tx, user_id, applications=1, latest=application_id)
            if _starts_cool_down(decision):
                tx.save(DeclineRecord(user_id=user_id, product_id=product_id, application_id=application_id,
                                      declined_on=shanghai_date(now).isoformat()))
    metrics.add_metric(name=f"Decision_{decision['status']}", unit="Count", value=1)
    logger.info("application decided", extra={"application_id": application_id,
                                               "status": decision["status"],
                                               "credit_limit": record.credit_limit,
                                               "reasons": [r["code"] for r in json.loads(record.reasons)]})
    return view(record, lang)


def get(user_id: str, application_id: str, lang: str = "zh") -> dict:
    return view(application_record(application_id, owner=user_id), lang)


REVIEW_PAGE = 100


def in_review() -> list[dict]:
    """The oldest applications waiting for an operator, one page: decide them and the next come."""
    return [{**view(r), "user_id": r.user_id, "decision": json.loads(r.decision)}
            for r in ApplicationRecord.in_review.query(REVIEW_QUEUE, limit=REVIEW_PAGE)]


def operator_decision(application_id: str, *, operator: str, status: str, credit_limit: int | None,
                      note: str, now: datetime, lang: str = "zh") -> dict:
    """An operator settles a `review`: approve (with a limit) or decline. Recorded with who did it."""
    record = application_record(application_id)
    if record.status != "review":
        raise Conflict("Only applications in review can be decided.", code="APPLICATION_NOT_IN_REVIEW")
    automated = json.loads(record.decision)
    limit = 0
    apr = record.apr
    if status == "approved":
        limit = credit_limit if credit_limit is not None else automated.get("suggested_limit", 0)
        apr = apr or automated.get("suggested_apr")
        if limit <= 0 or apr is None:
            raise RuleViolation("An approval needs a credit limit above zero.", code="CREDIT_LIMIT_REQUIRED")
        # The same ceiling as an automatic approval (risk.policy): the product's max_amount.
        ceiling = catalog.get_product(record.product_id).max_amount
        if limit > ceiling:
            raise RuleViolation(f"The credit limit can be at most {ceiling} fen for this product.",
                                code="CREDIT_LIMIT_OUT_OF_RANGE", params={"ceiling": ceiling})
    # The borrower is told who decided, in standard words; the review's reasons (MANUAL_REVIEW,
    # the model's) and the operator's note are for staff: they stay in `decision` and `review_note`.
    # Stored in Chinese, shown in the reader's language (`view`).
    code = OPERATOR_REASONS[status]

    def settle(tx: TransactWrite | None, granted: int, held: bool = False) -> None:
        shown = [reasons.rule_reason(code, "zh")]
        if held:
            shown.append(reasons.rule_reason("LIMIT_INCREASE_TOO_SOON", "zh"))
        actions = [
            ApplicationRecord.status.set(status), ApplicationRecord.credit_limit.set(granted),
            ApplicationRecord.apr.set(apr) if status == "approved" else ApplicationRecord.apr.remove(),
            ApplicationRecord.reasons.set(json.dumps(shown, ensure_ascii=False)),
            ApplicationRecord.review_queue.remove(), ApplicationRecord.reviewed_by.set(operator),
            ApplicationRecord.review_note.set(note), ApplicationRecord.reviewed_at.set(iso_utc(now))]
        if tx is None:
            record.update(actions=actions, condition=ApplicationRecord.status == "review")
        else:
            tx.update(record, actions=actions, condition=ApplicationRecord.status == "review")
            borrower_record.count(tx, record.user_id, approved=1)

    try:
        if status == "approved":  # the application and the line it moves, in one transaction
            credit.approve(record.user_id, limit=limit, apr=apr, application_id=application_id,
                           product_id=record.product_id, now=now,
                           also=lambda tx, approval: settle(tx, approval.limit, approval.held))
        else:
            settle(None, 0)
    except (UpdateError, TransactWriteError) as err:
        if condition_failed(err):
            raise Conflict("Someone decided this application already.",
                           code="APPLICATION_NOT_IN_REVIEW") from None
        raise
    if status == "declined":
        _record_decline(record)
    logger.info("operator decision", extra={"application_id": application_id, "status": status,
                                            "operator": operator, "note": pii.mask_text(note)})
    return {**view(application_record(application_id), lang), "reviewed_by": operator,
            "review_note": note}
