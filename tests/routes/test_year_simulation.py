"""A year of daily jobs on moto: close of business and reminders fired up to 3 times, up to a
day late, some days skipped; repayments at random. Invariants after every day."""
from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

from chalicelib.core.clock import SHANGHAI
from chalicelib.ledger import anchors, audit
from chalicelib.ledger.models import AnchorRecord
from chalicelib.loans import disbursement
from chalicelib.money import ledger
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from chalicelib.repay import service
from chalicelib.repay.models import NotificationRecord
from chalicelib.loans.schedules import load
from tests.journeys import deliver_notifications
from tests.routes.conftest import NOW, draw

START = date(2027, 1, 10)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), SHANGHAI).astimezone(timezone.utc)


def test_a_year_of_jobs_and_random_repayments(client, borrower, clock, outbox):
    rng = random.Random(20270110)
    loans = [draw(borrower, amount, term=term, method=method)["loan_id"] for amount, term, method in
             ((300_000, 6, "equal_installment"), (200_000, 12, "equal_principal"),
              (150_000, 3, "equal_principal"))]
    for loan_id in loans:
        assert disbursement.disburse(loan_id, NOW) == "active"
    pending_late: list[date] = []
    for offset in range(1, 366):
        day = START + timedelta(days=offset)
        clock.set(at(day))
        runs = rng.choice([0, 1, 1, 1, 2, 3])  # 0: skipped today (maybe run late tomorrow)
        for late_day in pending_late:
            service.close_of_business(late_day, at(day))
            service.send_reminders(late_day)
        pending_late = [day] if runs == 0 and rng.random() < 0.5 else []
        for _ in range(runs):
            service.close_of_business(day, at(day, 0))
            anchors.anchor_through(day - timedelta(days=1), at(day, 0))  # as the job's handler does
            service.send_reminders(day)
        for loan_id in loans:
            record = LoanRecord.get(loan_id)
            if record.status in ("active", "overdue") and rng.random() < 0.04:
                quote = service.payoff("u-1", loan_id, None, at(day))
                amount = rng.choice([quote["amount"], max(1, quote["amount"] // 3), rng.randint(1, 20_000)])
                service.repay("u-1", loan_id, min(amount, quote["amount"]), at(day))
        deliver_notifications(client)
        for loan_id in loans:
            record = LoanRecord.get(loan_id)
            assert record.outstanding_principal >= 0
            entries = [json.loads(e.lines) for e in LedgerEntryRecord.query(loan_id)]
            assert sum(ledger.balances(entries).values()) == 0
            assert ledger.balances(entries).get(ledger.PRINCIPAL_RECEIVABLE, 0) == record.outstanding_principal

    for loan_id in loans:
        state = load(LoanRecord.get(loan_id).state)
        penalty_days = Counter(e.entry_id for e in LedgerEntryRecord.query(loan_id) if e.cause == "penalty")
        assert all(n == 1 for n in penalty_days.values())
        posted = sum(json.loads(e.lines)[0]["debit"] for e in LedgerEntryRecord.query(loan_id)
                     if e.cause == "penalty")
        assert posted == sum(i.penalty_posted for i in state.installments)
    # Every chain and every anchor of the year verifies (issue 16), and the anchors have no gap
    # after the first: a skipped morning is caught up by the next one.
    checked = audit.verify()
    assert checked["broken"] == [] and checked["checked"] == sum(
        len(list(LedgerEntryRecord.query(l))) for l in loans)
    days = sorted(a.date for a in AnchorRecord.scan())
    assert days[-1] >= (START + timedelta(days=363)).isoformat()
    assert len(days) == (date.fromisoformat(days[-1]) - date.fromisoformat(days[0])).days + 1
    assert checked["anchors"] == len(days) > 300
    sent = [json.loads(line) for line in outbox.read_text().splitlines()]
    inbox = [n for n in NotificationRecord.query("u-1")]
    reminder_ids = Counter(n.notification_id for n in inbox)
    assert all(count == 1 for count in reminder_ids.values())
    assert len(sent) == len(inbox)  # one message out per notification, however often queued
    # the year exercised what it claims to: penalties, every reminder kind, repayments
    kinds = Counter(n.kind for n in inbox)
    assert {"due_soon", "due_today", "overdue", "repayment_received"} <= set(kinds)
    assert sum(1 for l in loans for e in LedgerEntryRecord.query(l) if e.cause == "penalty") > 0
