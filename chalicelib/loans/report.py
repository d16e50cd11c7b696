"""The borrower's credit report (信用报告, issue 19): `GET /v1/me/credit-report`.

The borrower's own view of the latest decision and of their record with us, read from what is
already stored in three reads whatever the history (four with the token's session): the record
item (`chalicelib.loans.record`), the latest decision's application, and the credit line.

- `grade`: the model's risk grade (A-E, the model card's bands) of the latest decision; null
  before any decision, or when the model was not consulted.
- `credit`: the credit line as `GET /v1/me` shows it, set by the latest approval.
- `factors`: from the latest decision's stored contributions (decisions are replayable): what
  raised the assessed risk most (the decision's own reason codes and words), then what lowered
  it most. Never a personal characteristic.
- `history`: the counters of `chalicelib.loans.record`.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.loans import applications, credit
from chalicelib.loans.models import ApplicationRecord
from chalicelib.loans.record import CreditRecord
from chalicelib.loans.service import shanghai_iso
from chalicelib.risk import reasons


def credit_report(user_id: str, now: datetime, lang: str = "zh") -> dict[str, Any]:
    try:
        record = CreditRecord.get(user_id, consistent_read=True)
    except DoesNotExist:
        record = CreditRecord(user_id=user_id)
    latest = None
    if record.latest_application_id:
        latest = ApplicationRecord.get(record.latest_application_id, consistent_read=True)
    decision = json.loads(latest.decision) if latest else {}
    return {
        "as_of": shanghai_iso(now.isoformat()),
        "grade": decision.get("grade"),
        "credit": credit.summary(user_id),
        "factors": reasons.factors(decision.get("contributions") or {}, lang),
        "history": {
            "applications": record.applications, "approved": record.approved, "loans": record.loans,
            "installments_on_time": record.installments_on_time,
            "installments_late": record.installments_late,
            "max_days_past_due": max(record.days_past_due_seen or {0}),
        },
        "model_version": latest.model_version if latest else None,
        "decided_at": applications.decided_at(latest) if latest else None,
    }
