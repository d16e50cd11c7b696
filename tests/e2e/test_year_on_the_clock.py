"""A loan's year on the local stack, driven only through `make jobs` and the API over HTTP.

tests/routes/test_year_simulation.py runs 365 days of jobs in process; here the same life runs
as a tester runs it: `make jobs AT=<day> 09:00` (a process of its own) on the days that
matter, and after each the borrower's view of that day (GET /v1/loans/{id}, its payoff for
"today", the inbox) and GET /v1/ops/clock. The days that matter: the payout day, and for every
installment D-3, D-1 and D (its reminders), D+1 and D+3 for the installments paid late (the
grace day, then overdue with penalty), and the payment days. Every day in between would take
about 365 runs of `make jobs` of several seconds each; the in-process simulation covers them.

Two loans drawn together for tomorrow 09:00, so with the same due dates: A, 1,200,000 fen over
12 months, equal installments, paid off at its 10th due date; B, 300,000 fen over 6 months,
equal principal, closed by its last installment. Each installment is paid on D, except the
3rd (paid at D+3, overdue, with two days of penalty) and the 6th (paid at D+1, the grace day,
without penalty). Then one more run a year after the payout: both closed, nothing changes.
That is 36 runs of `make jobs`, about 4 minutes on 2 busy cores (marked `slow`: `make test`
runs it, `-m "not slow"` leaves it out).
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from chalicelib.core.clock import SHANGHAI
from tests.e2e.conftest import ROOT, serving, wait_for
from tests.journeys import GOOD_APPLICANT, HttpApi, card_ending, ready_borrower, with_key

REMINDERS = {-3: "due_soon", -1: "due_soon", 0: "due_today", 1: "overdue", 3: "overdue", 7: "overdue"}
PAID_LATE = {3: 3}  # installment -> days after D it is paid
PAID_IN_GRACE = {6: 1}
A_PAID_OFF_AT = 10  # installment of A at whose due date A is paid off


@pytest.fixture(scope="module")
def stack():
    with tempfile.TemporaryDirectory(prefix="year-") as work:
        with serving(Path(work), SMS_QUIET_HOURS="21:00-08:00") as info:
            wait_for(lambda: "Ctrl-C" in info["log"].read_text(), timeout=30)
            info["ops_key"] = re.search(r"X-Ops-Key: (\S+)", info["log"].read_text()).group(1)
            yield info


def make_jobs(stack, at: datetime) -> None:
    done = subprocess.run([sys.executable, "-m", "infra.local_stack", "jobs", "--at", at.isoformat()],
                          cwd=ROOT, env=stack["env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def nine(day: date) -> datetime:
    return datetime.combine(day, time(9), SHANGHAI)


def daily_penalty(principal: int, apr: str) -> int:
    return int((Decimal(principal) * Decimal("1.5") * Decimal(apr) / 365).quantize(Decimal(1), ROUND_HALF_UP))


class Borrower:
    """The borrower's side over HTTP: their loans as they see them, their inbox."""

    def __init__(self, api: HttpApi, headers: dict) -> None:
        self.api, self.headers = api, headers

    def loan(self, loan_id: str) -> dict:
        status, body = self.api.get(f"/v1/loans/{loan_id}", self.headers)
        assert status == 200, body
        return body

    def payoff(self, loan_id: str) -> dict:
        status, body = self.api.get(f"/v1/loans/{loan_id}/payoff", self.headers)
        assert status == 200, body
        return body

    def inbox(self) -> list[dict]:
        status, body = self.api.get("/v1/me/notifications", self.headers)
        assert status == 200, body
        return body["items"]

    def pay(self, loan_id: str, amount: int) -> dict:
        status, body = self.api.post(f"/v1/loans/{loan_id}/repayments", {"amount": amount}, with_key(self.headers))
        assert status == 201, body
        return body


def due_reminders(loans: list[dict], day: date) -> Counter:
    """The reminders the jobs of `day` must send: one per unpaid installment of a live loan
    whose due date is a reminder day away."""
    kinds: Counter = Counter()
    for loan in loans:
        if loan["status"] not in ("active", "overdue"):
            continue
        for item in loan["schedule"]:
            offset = (day - date.fromisoformat(item["due_date"])).days
            if item["status"] != "paid" and offset in REMINDERS:
                kinds[REMINDERS[offset]] += 1
    return kinds


@pytest.mark.slow  # about 4 minutes on 2 busy cores: 36 runs of `make jobs`, each a process
def test_two_loans_through_their_life_on_the_days_that_matter(stack):
    api = HttpApi(stack["base"])
    me = ready_borrower(api, stack["outbox"], openid="year-1", phone="13700003333", card=card_ending("8642"))
    borrower = Borrower(api, me["headers"])
    status, now = api.get("/v1/ops/clock", {"X-Ops-Key": stack["ops_key"]})
    assert status == 200
    payout_day = datetime.fromisoformat(now["now"]).date() + timedelta(days=1)

    status, decision = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 3_000_000, "term_months": 12, "purpose": "装修",
        "applicant": GOOD_APPLICANT}, with_key(me["headers"]))
    assert status == 201 and decision["status"] == "approved", decision
    ids = {}
    for name, amount, term, method in (("A", 1_200_000, 12, "equal_installment"), ("B", 300_000, 6, "equal_principal")):
        status, drawn = api.post("/v1/loans", {
            "application_id": decision["application_id"], "amount": amount, "term_months": term,
            "repayment_method": method, "bank_card_id": me["card_id"],
            "disburse_at": nine(payout_day).isoformat()}, with_key(me["headers"]))
        assert status == 201 and drawn["status"] == "scheduled", drawn
        ids[name] = drawn["loan_id"]

    make_jobs(stack, nine(payout_day))
    loans = {name: borrower.loan(loan_id) for name, loan_id in ids.items()}
    assert {loan["status"] for loan in loans.values()} == {"active"}
    assert all(loan["disbursed_at"].startswith(str(payout_day)) for loan in loans.values())
    assert [n["kind"] for n in borrower.inbox()] == ["disbursed", "disbursed"]
    a_dues = [date.fromisoformat(i["due_date"]) for i in loans["A"]["schedule"]]
    b_dues = [date.fromisoformat(i["due_date"]) for i in loans["B"]["schedule"]]
    assert b_dues == a_dues[:6]  # drawn the same day: the same due dates

    days = set()
    for k, due in enumerate(a_dues[:A_PAID_OFF_AT], start=1):
        days |= {due - timedelta(days=3), due - timedelta(days=1), due}
        if k in PAID_LATE:
            days |= {due + timedelta(days=1), due + timedelta(days=3)}
        if k in PAID_IN_GRACE:
            days.add(due + timedelta(days=1))
    notes = {n["notification_id"]: n for n in borrower.inbox()}
    for day in sorted(days):
        expected = due_reminders([borrower.loan(i) for i in ids.values()], day)
        make_jobs(stack, nine(day))
        status, clock = api.get("/v1/ops/clock", {"X-Ops-Key": stack["ops_key"]})
        assert datetime.fromisoformat(clock["now"]).date() == day, clock

        new = [n for n in borrower.inbox() if n["notification_id"] not in notes]
        notes.update({n["notification_id"]: n for n in new})
        reminders = [n for n in new if n["kind"] in ("due_soon", "due_today", "overdue")]
        assert Counter(n["kind"] for n in reminders) == expected, (day, new, expected)
        assert all(n["created_at"].startswith(str(day)) for n in reminders)

        for name, loan_id in ids.items():
            loan = borrower.loan(loan_id)
            if loan["status"] == "closed":
                continue
            quote = borrower.payoff(loan_id)
            assert quote["as_of"] == str(day)
            assert quote["amount"] == quote["principal"] + quote["interest"] + quote["penalty"]
            assert quote["principal"] == loan["outstanding_principal"]
            dues = a_dues if name == "A" else b_dues
            for k, item in enumerate(loan["schedule"], start=1):
                late_by = (day - dues[k - 1]).days
                if item["status"] == "paid":
                    continue
                if late_by >= 2:  # past its grace day: overdue, with a penalty for each day from D+1
                    assert loan["status"] == "overdue" and item["status"] == "overdue", (day, item)
                    assert item["penalty"] == (late_by - 1) * daily_penalty(item["principal"], loan["apr"])
                    assert quote["penalty"] == item["penalty"]
                else:
                    assert item["status"] == "pending" and item["penalty"] == 0, (day, item)
            # the borrower pays what this plan pays today
            if name == "A" and day == a_dues[A_PAID_OFF_AT - 1]:
                paid = borrower.pay(loan_id, quote["amount"])
                assert paid["loan"]["status"] == "closed" and paid["loan"]["outstanding_principal"] == 0
                continue
            for k, item in enumerate(loan["schedule"], start=1):
                pay_on = dues[k - 1] + timedelta(days=PAID_LATE.get(k, PAID_IN_GRACE.get(k, 0)))
                if item["status"] != "paid" and day == pay_on:
                    paid = borrower.pay(loan_id, item["total"] - item["paid"])  # total: with its penalty
                    assert paid["allocation"]["penalty"] == item["penalty"]
                    after = borrower.loan(loan_id)
                    assert after["schedule"][k - 1]["status"] == "paid", after["schedule"][k - 1]
                    assert after["status"] == ("closed" if name == "B" and k == 6 else "active"), after

    loans = {name: borrower.loan(loan_id) for name, loan_id in ids.items()}
    assert loans["A"]["status"] == "closed" and loans["B"]["status"] == "closed"
    for loan in loans.values():
        schedule = loan["schedule"]
        assert schedule[2]["penalty"] == 2 * daily_penalty(schedule[2]["principal"], loan["apr"])
        assert all(i["penalty"] == 0 for k, i in enumerate(schedule) if k != 2)  # the 6th: paid in grace
    wait_for(lambda: sum(n["kind"] == "loan_closed" for n in borrower.inbox()) == 2, timeout=30)
    notes.update({n["notification_id"]: n for n in borrower.inbox()})
    kinds = Counter(n["kind"] for n in notes.values())
    assert kinds["loan_closed"] == 2 and kinds["disbursed"] == 2
    assert kinds["overdue"] == 6  # each loan's 3rd at D+1 and D+3, its 6th at D+1
    assert kinds["repayment_received"] >= 1
    assert all(n["created_at"].endswith("+08:00") for n in notes.values())

    # A year after the payout: the clock is there, and closed loans neither change nor remind
    year_end = payout_day + timedelta(days=365)
    make_jobs(stack, nine(year_end))
    status, clock = api.get("/v1/ops/clock", {"X-Ops-Key": stack["ops_key"]})
    assert datetime.fromisoformat(clock["now"]).date() == year_end, clock
    assert {name: borrower.loan(loan_id) for name, loan_id in ids.items()} == loans
    assert [n for n in borrower.inbox() if n["notification_id"] not in notes] == []
    status, body = api.get(f"/v1/loans/{ids['A']}/payoff", me["headers"])
    assert status == 409, body  # nothing to pay off on a closed loan
