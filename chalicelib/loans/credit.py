"""The revolving credit line (循环额度): one per user, set by the latest approval."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core.clock import parse_instant, shanghai_date
from chalicelib.adapters.db import condition_failed, transact_connection
from chalicelib.core.errors import Conflict
from chalicelib.loans.models import CreditLineRecord

LINE_VALIDITY_DAYS = 365
# Declared income can be pumped by re-applying: a line is raised at most once in this many
# days (Asia/Shanghai dates, as the re-apply cool-down counts). Opening it counts as a raise.
INCREASE_SPACING_DAYS = 30
APPROVAL_ATTEMPTS = 5


@dataclass(frozen=True)
class CreditLine:
    user_id: str
    limit: int
    drawn: int
    apr: str
    expires_on: str
    application_id: str = ""  # the approval that set the line: the only one that can be drawn on
    product_id: str = ""
    draw_seq: int | None = None  # draws so far (None: a line from before draws were counted)
    loan_ids: tuple[str, ...] = ()  # loans live at the last draw, and that draw's loan
    limit_raised_at: str | None = None  # opened or last raised (None: a line from before)
    updated_at: str | None = None

    @property
    def available(self) -> int:
        return max(0, self.limit - self.drawn)

    def to_api(self) -> dict:
        return {"limit": self.limit, "available": self.available, "apr": self.apr}


def _line(record: CreditLineRecord) -> CreditLine:
    return CreditLine(record.user_id, record.credit_limit, record.drawn, record.apr, record.expires_on,
                      application_id=record.application_id, product_id=record.product_id,
                      draw_seq=record.draw_seq, loan_ids=tuple(record.loan_ids or ()),
                      limit_raised_at=record.limit_raised_at, updated_at=record.updated_at)


def get_line(user_id: str) -> CreditLine | None:
    try:
        return _line(CreditLineRecord.get(user_id, consistent_read=True))
    except DoesNotExist:
        return None


def summary(user_id: str) -> dict | None:
    """`credit` in `GET /v1/me`: the line's limit, what is available and its APR, or None."""
    line = get_line(user_id)
    return None if line is None else line.to_api()


@dataclass(frozen=True)
class Approval:
    """What one approval does to the user's line, planned on one read of it (`seen`).

    The line follows the latest approval: its APR, application and product, and its limit,
    except that a raise within INCREASE_SPACING_DAYS of the last one is held at the current
    limit (`held`). A lower limit applies at once. `write` makes it so only if the line is
    still as read; otherwise plan again."""
    user_id: str
    asked: int  # the limit the decision gave
    limit: int  # the limit the line gets
    apr: str
    application_id: str
    product_id: str
    now: datetime
    seen: CreditLine | None

    @property
    def held(self) -> bool:
        return self.limit < self.asked

    @property
    def raises(self) -> bool:
        return self.seen is None or self.limit > self.seen.limit

    def write(self, tx: Any) -> None:
        """Add the line's conditional update to transaction `tx`."""
        line = CreditLineRecord
        stamp = self.now.astimezone(timezone.utc).isoformat()
        expires = (self.now + timedelta(days=LINE_VALIDITY_DAYS)).date().isoformat()
        actions = [line.credit_limit.set(self.limit), line.apr.set(self.apr),
                   line.application_id.set(self.application_id),
                   line.product_id.set(self.product_id), line.updated_at.set(self.now.isoformat()),
                   line.expires_on.set(expires)]
        if self.raises:
            actions.append(line.limit_raised_at.set(stamp))
        if self.seen is None:  # opening: nothing drawn, no draw yet
            actions += [line.drawn.set(0), line.draw_seq.set(0), line.loan_ids.set([])]
            condition = line.user_id.does_not_exist()
        else:
            condition = (line.credit_limit == self.seen.limit) & (
                line.limit_raised_at.does_not_exist() if self.seen.limit_raised_at is None
                else line.limit_raised_at == self.seen.limit_raised_at)
        tx.update(CreditLineRecord(user_id=self.user_id), actions=actions, condition=condition)


def _last_raised(line: CreditLine) -> datetime:
    """When the line was opened or last raised; for a line from before that was recorded, its
    last change (the latest it can have been)."""
    return parse_instant(line.limit_raised_at or line.updated_at or "1970-01-01T00:00:00+00:00")


def plan_approval(user_id: str, *, limit: int, apr: str, application_id: str, product_id: str,
                  now: datetime) -> Approval:
    seen = get_line(user_id)
    granted = limit
    if seen is not None and limit > seen.limit and \
            (shanghai_date(now) - shanghai_date(_last_raised(seen))).days < INCREASE_SPACING_DAYS:
        granted = seen.limit
    return Approval(user_id=user_id, asked=limit, limit=granted, apr=apr,
                    application_id=application_id, product_id=product_id, now=now, seen=seen)


def approve(user_id: str, *, limit: int, apr: str, application_id: str, product_id: str,
            now: datetime, also: Any = None) -> Approval:
    """Move the line to an approval, in one transaction with whatever `also(tx, approval)`
    adds (the application's own record). When the line moved since it was read (another
    approval, a draw's bookkeeping does not count), plan again on a fresh read."""
    for _attempt in range(APPROVAL_ATTEMPTS):
        approval = plan_approval(user_id, limit=limit, apr=apr, application_id=application_id,
                                 product_id=product_id, now=now)
        try:
            with TransactWrite(connection=transact_connection()) as tx:
                if also is not None:
                    also(tx, approval)
                approval.write(tx)
            return approval
        except TransactWriteError as err:
            if not condition_failed(err) or not _line_condition_failed(err):
                raise
    raise Conflict("The credit line is changing; try again.", code="CREDIT_LINE_BUSY")


def _line_condition_failed(err: TransactWriteError) -> bool:
    """Whether it was the line's condition (the last item of an approval's transaction)."""
    reasons = getattr(err, "cancellation_reasons", None) or []
    return bool(reasons) and reasons[-1] is not None and reasons[-1].code == "ConditionalCheckFailed"


def set_line(user_id: str, *, limit: int, apr: str, application_id: str, product_id: str,
             now: datetime) -> CreditLine:
    """Open the line, or move it to the latest approval (see `Approval`); what is drawn stays
    drawn. Answers the line as it is now."""
    approve(user_id, limit=limit, apr=apr, application_id=application_id, product_id=product_id,
            now=now)
    line = get_line(user_id)
    assert line is not None
    return line


def offers(user_id: str, products: list, now: datetime) -> list[dict]:
    """Products the user's line can be drawn on: its APR within the product's range and enough
    available credit for the product's minimum."""
    from decimal import Decimal

    from chalicelib.core.clock import shanghai_date
    line = get_line(user_id)
    if line is None or line.expires_on < shanghai_date(now).isoformat():
        return []
    rate = Decimal(line.apr)
    return [{**product.to_api(), "apr": line.apr, "max_amount": min(product.max_amount, line.available)}
            for product in products
            if Decimal(product.apr_min) <= rate <= Decimal(product.apr_max)
            and line.available >= product.min_amount]
