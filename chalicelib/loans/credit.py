"""The revolving credit line (循环额度): one per user, set by the latest approval."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib.loans.models import CreditLineRecord

LINE_VALIDITY_DAYS = 365


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

    @property
    def available(self) -> int:
        return max(0, self.limit - self.drawn)

    def to_api(self) -> dict:
        return {"limit": self.limit, "available": self.available, "apr": self.apr}


def _line(record: CreditLineRecord) -> CreditLine:
    return CreditLine(record.user_id, record.credit_limit, record.drawn, record.apr, record.expires_on,
                      application_id=record.application_id, product_id=record.product_id,
                      draw_seq=record.draw_seq, loan_ids=tuple(record.loan_ids or ()))


def get_line(user_id: str) -> CreditLine | None:
    try:
        return _line(CreditLineRecord.get(user_id, consistent_read=True))
    except DoesNotExist:
        return None


def summary(user_id: str) -> dict | None:
    """`credit` in `GET /v1/me`: the line's limit, what is available and its APR, or None."""
    line = get_line(user_id)
    return None if line is None else line.to_api()


def set_line(user_id: str, *, limit: int, apr: str, application_id: str, product_id: str,
             now: datetime) -> CreditLine:
    """Open the line, or resize it to the latest approval; what is drawn stays drawn.
    One conditional-free update (`drawn` is set only if absent), answered with the new item."""
    expires = (now + timedelta(days=LINE_VALIDITY_DAYS)).date().isoformat()
    record = CreditLineRecord(user_id=user_id)
    record.update(actions=[
        CreditLineRecord.credit_limit.set(limit), CreditLineRecord.apr.set(apr),
        CreditLineRecord.drawn.set(CreditLineRecord.drawn | 0),
        CreditLineRecord.application_id.set(application_id),
        CreditLineRecord.product_id.set(product_id),
        CreditLineRecord.updated_at.set(now.isoformat()),
        CreditLineRecord.expires_on.set(expires)])
    return _line(record)


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
