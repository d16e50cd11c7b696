"""Routes of the ledger slice: the borrower's statement, the operators' anchors and check."""
from __future__ import annotations

from typing import Any

from chalice import Blueprint
from pydantic import Field

from chalicelib.core.errors import NotFound
from chalicelib.api.http import ApiModel, date_param, route
from chalicelib.ledger import audit, statement
from chalicelib.ledger import models as _models  # noqa: F401 - registers the anchors' tables

bp = Blueprint(__name__)


@route(bp, "/v1/loans/{loan_id}/statement", "GET", summary="Every ledger entry of a loan with its "
       "hashes, and each anchored day's Merkle proof (checkable offline)", tag="loans", auth="bearer",
       errors=("404 LOAN_NOT_FOUND",))
def loan_statement(request: Any, loan_id: str, principal: str) -> dict[str, Any]:
    return statement.statement(principal, loan_id)


@route(bp, "/v1/ops/ledger/anchors/{date}", "GET", summary="One day's anchored Merkle root",
       tag="ops", auth="ops", errors=("400 FIELD_INVALID", "404 ANCHOR_NOT_FOUND"))
def ops_anchor(request: Any, date: str, principal: str) -> dict[str, Any]:
    from chalicelib.ledger.models import AnchorRecord
    day = date_param(date, "date")
    try:
        anchor = AnchorRecord.get(day.isoformat(), consistent_read=True)
    except AnchorRecord.DoesNotExist:
        raise NotFound("That day is not anchored (yet).", code="ANCHOR_NOT_FOUND") from None
    return {"date": anchor.date, "root": anchor.root, "loans": anchor.loans, "entries": anchor.entries,
            "anchored_at": anchor.anchored_at, "object_key": anchor.object_key}


class VerifyBody(ApiModel):
    loan_id: str | None = Field(default=None, min_length=1, max_length=64,
                                description="Check one loan (its chain and proofs); omit for the whole book.")


@route(bp, "/v1/ops/ledger/verify", "POST", summary="Walk the ledger's chains and anchors and "
       "report every broken link", tag="ops", auth="ops", body=VerifyBody, errors=("404 LOAN_NOT_FOUND",))
def ops_verify(request: Any, principal: str, body: VerifyBody) -> dict[str, Any]:
    return audit.verify(body.loan_id)
