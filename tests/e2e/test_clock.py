"""The local stack's one clock, driven only through `make jobs` (the `jobs` entry point, a
process of its own) against a running stack, with quiet hours on, as a tester uses it.

A future-dated disbursement, a due-soon reminder sent at 23:30 and delivered in the morning,
an overdue day: after each `make jobs`, the borrower's view (loan, payoff for "today", inbox),
the operator's portfolio and GET /v1/ops/clock are those of that day. Account protection
(a sign-in code's 5 minutes, the 24-hour hold after a phone replacement, the daily real-name
limit) waits for the same clock.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from chalicelib.core.clock import SHANGHAI
from tests.e2e.conftest import ROOT, serving, wait_for
from tests.journeys import (GOOD_APPLICANT, HttpApi, approved_loan, card_ending, last_code, ready_borrower,
                            resident_id, with_key)

QUIET = "21:00-08:00"


@pytest.fixture(scope="module")
def stack():
    with tempfile.TemporaryDirectory(prefix="clock-") as work:
        with serving(Path(work), SMS_QUIET_HOURS=QUIET) as info:
            wait_for(lambda: "Ctrl-C" in info["log"].read_text(), timeout=30)
            info["ops_key"] = re.search(r"X-Ops-Key: (\S+)", info["log"].read_text()).group(1)
            info["env"] = {**info["env"], "SMS_QUIET_HOURS": QUIET}
            yield info


def make_jobs(stack, at: datetime) -> str:
    """`make jobs AT=<at>` against the stack; its output."""
    done = subprocess.run([sys.executable, "-m", "infra.local_stack", "jobs", "--at", at.isoformat()],
                          cwd=ROOT, env=stack["env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "queues drained" in done.stdout
    return done.stdout


def beijing(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


def clock_now(api: HttpApi, stack) -> datetime:
    status, body = api.get("/v1/ops/clock", {"X-Ops-Key": stack["ops_key"]})
    assert status == 200, body
    assert body["now"].endswith("+08:00"), body
    return datetime.fromisoformat(body["now"])


def outbox(stack) -> list[dict]:
    path = stack["outbox"]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def daily_penalty(principal: int, apr: str) -> int:
    return int((Decimal(principal) * Decimal("1.5") * Decimal(apr) / 365).quantize(Decimal(1), ROUND_HALF_UP))


def test_the_clock_route_needs_the_ops_key_and_starts_at_the_wall_clock(stack):
    api = HttpApi(stack["base"])
    assert api.get("/v1/ops/clock")[0] == 403
    assert api.get("/v1/ops/clock", {"X-Ops-Key": "wrong"})[0] == 403
    now = clock_now(api, stack)
    assert abs((now - datetime.now(SHANGHAI)).total_seconds()) < 120


def test_a_future_disbursement_a_reminder_held_overnight_and_an_overdue_day(stack):
    api = HttpApi(stack["base"])
    ops = {"X-Ops-Key": stack["ops_key"]}
    me = ready_borrower(api, stack["outbox"], openid="clock-1", phone="13700002222", card=card_ending("4321"))
    auth = me["headers"]
    start = clock_now(api, stack)
    tomorrow = start.date() + timedelta(days=1)

    # Given a loan drawn today to be paid out tomorrow at 10:00
    _, drawn = approved_loan(api, auth, me["card_id"], amount=1_200_000,
                             disburse_at=beijing(tomorrow, 10).isoformat())
    assert drawn["status"] == "scheduled", drawn
    loan_url = f"/v1/loans/{drawn['loan_id']}"
    assert drawn["disburse_at"] == f"{tomorrow}T10:00:00+08:00"

    # When the jobs run tomorrow at 10:01: it is paid out that day, and the clock says so
    out = make_jobs(stack, beijing(tomorrow, 10, 1))
    assert f"clock moved to {tomorrow}T10:01" in out
    assert clock_now(api, stack) >= beijing(tomorrow, 10, 1)
    _, loan = api.get(loan_url, auth)
    assert loan["status"] == "active", loan
    assert loan["disbursed_at"].startswith(f"{tomorrow}T10:01") and loan["disbursed_at"].endswith("+08:00")
    due = date.fromisoformat(loan["schedule"][0]["due_date"])
    assert due.day == tomorrow.day or due.month != tomorrow.month  # one month on, same day
    _, inbox = api.get("/v1/me/notifications", auth)
    assert [n["kind"] for n in inbox["items"]] == ["disbursed"]
    assert inbox["items"][0]["created_at"].startswith(f"{tomorrow}T10:01")
    _, quote = api.get(f"{loan_url}/payoff", auth)
    assert quote["as_of"] == str(tomorrow) and quote["principal"] == 1_200_000 and quote["interest"] == 0

    # When the jobs run at 23:30 three days before the first due date: the due-soon SMS is
    # held back by quiet hours, neither sent nor in the inbox
    make_jobs(stack, beijing(due - timedelta(days=3), 23, 30))
    assert clock_now(api, stack) >= beijing(due - timedelta(days=3), 23, 30)
    _, inbox = api.get("/v1/me/notifications", auth)
    assert [n["kind"] for n in inbox["items"]] == ["disbursed"]
    assert not [m for m in outbox(stack) if str(due) in m["text"]]
    _, loan = api.get(loan_url, auth)
    assert loan["status"] == "active" and loan["schedule"][0]["status"] == "pending"

    # ... and at 08:01 the next morning it is delivered, stamped with that morning's time
    make_jobs(stack, beijing(due - timedelta(days=2), 8, 1))
    assert clock_now(api, stack) >= beijing(due - timedelta(days=2), 8, 1)
    _, inbox = api.get("/v1/me/notifications", auth)
    soon = [n for n in inbox["items"] if n["kind"] == "due_soon"]
    assert len(soon) == 1 and soon[0]["created_at"].startswith(f"{due - timedelta(days=2)}T08:01"), inbox
    sms = [m for m in outbox(stack) if str(due) in m["text"]]
    assert len(sms) == 1 and sms[0]["to"] == "137****2222"
    assert sms[0]["at"].startswith(f"{due - timedelta(days=2)}T08:01")

    # When the jobs run three days after the due date, unpaid: overdue, with the penalty of
    # D+1 and D+2 in the schedule and in today's payoff, and 3 days past due for operators
    make_jobs(stack, beijing(due + timedelta(days=3), 9, 0))
    today = due + timedelta(days=3)
    assert clock_now(api, stack).date() == today
    _, loan = api.get(loan_url, auth)
    first = loan["schedule"][0]
    penalty = 2 * daily_penalty(first["principal"], loan["apr"])
    assert loan["status"] == "overdue" and first["status"] == "overdue" and first["penalty"] == penalty
    _, quote = api.get(f"{loan_url}/payoff", auth)
    assert quote["as_of"] == str(today) and quote["penalty"] == penalty, quote
    assert quote["amount"] == quote["principal"] + quote["interest"] + quote["penalty"]
    status, portfolio = api.get("/v1/ops/portfolio", ops)
    assert status == 200 and portfolio["as_of"] == str(today)
    assert portfolio["by_days_past_due"]["1-30"]["count"] == 1
    assert portfolio["by_days_past_due"]["1-30"]["outstanding_principal"] == 1_200_000
    assert portfolio["by_days_past_due"]["0"]["count"] == 0
    _, inbox = api.get("/v1/me/notifications", auth)
    # the clock jumped over D-1, D and D+1, whose reminders no job sent: only D+3's is new
    assert [n["kind"] for n in inbox["items"]] == ["overdue", "due_soon", "disbursed"]
    assert all(n["created_at"].endswith("+08:00") for n in inbox["items"])

    # An earlier AT replays that day's jobs and leaves the clock where it is: nothing twice
    before = clock_now(api, stack)
    out = make_jobs(stack, beijing(due - timedelta(days=3), 23, 30))
    assert "clock stays at" in out
    assert clock_now(api, stack) >= before
    _, again = api.get("/v1/me/notifications", auth)
    assert len(again["items"]) == len(inbox["items"])

    # every answer's Date header is on the same clock (as API Gateway's is on AWS's): the
    # borrower's page takes its now from it, for the pay-out picker
    for path in ("/health", "/v1/me", "/app/", "/nowhere"):
        answer = api.session.get(stack["base"] + path, headers=auth, timeout=30)
        stamped = parsedate_to_datetime(answer.headers["Date"])
        assert abs((stamped - clock_now(api, stack)).total_seconds()) < 5, (path, answer.headers["Date"])
    assert clock_now(api, stack) - datetime.now(SHANGHAI) > timedelta(days=2)  # far from the wall clock


def test_account_protection_follows_the_clock(stack):
    """The sign-in code's 5 minutes, the 24-hour hold after a phone replacement and the daily
    real-name limit all run on the local stack's clock, so `make jobs` is how a tester waits."""
    api = HttpApi(stack["base"])
    old, new = "13700004444", "13700005555"
    born = date(1990, 3, 9)
    me = ready_borrower(api, stack["outbox"], openid="clock-2", phone=old, card=card_ending("5678"), born=born)
    auth = me["headers"]
    status, decision = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 1_000_000, "term_months": 6, "purpose": "装修",
        "applicant": GOOD_APPLICANT}, with_key(auth))
    assert status == 201 and decision["status"] == "approved", decision

    # A code sent now has expired once `make jobs` has moved the clock 6 minutes on
    assert api.post("/v1/auth/sms-codes", {"phone": new})[0] == 202
    stale = last_code(stack["outbox"], new)
    make_jobs(stack, clock_now(api, stack) + timedelta(minutes=6))
    status, body = api.post("/v1/auth/sms-login", {"phone": new, "code": stale}, {"Accept-Language": "en"})
    assert status == 401 and body["error"]["code"] == "OTP_INVALID" and "expired" in body["error"]["message"]

    # Replacing the phone starts a hold of 24 hours by the clock
    assert api.post("/v1/auth/sms-codes", {"phone": new})[0] == 202
    assert api.post("/v1/me/phone/current-code", None, auth)[0] == 202
    status, body = api.post("/v1/me/phone", {"phone": new, "code": last_code(stack["outbox"], new),
                                             "current_code": last_code(stack["outbox"], old)}, auth)
    assert status == 200, body
    replaced_at = clock_now(api, stack)
    draw = {"application_id": decision["application_id"], "amount": 200_000, "term_months": 6,
            "repayment_method": "equal_principal", "bank_card_id": me["card_id"]}
    response = api.session.post(f"{stack['base']}/v1/loans", json=draw, headers=with_key(auth), timeout=30)
    assert response.status_code == 403 and response.json()["error"]["code"] == "SECURITY_HOLD"
    assert 86_000 <= int(response.headers["Retry-After"]) <= 86_400

    # The day's real-name checks (one spent by ready_borrower) run out, until midnight by the clock
    identity = {"name": "张三", "id_number": resident_id(born)}  # as ready_borrower verified it
    for _ in range(4):
        assert api.post("/v1/me/identity", identity, auth)[0] == 200
    response = api.session.post(f"{stack['base']}/v1/me/identity", json=identity, headers=auth, timeout=30)
    assert response.status_code == 429 and response.json()["error"]["code"] == "IDENTITY_RATE_LIMITED"
    now = clock_now(api, stack)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), SHANGHAI)
    assert abs(int(response.headers["Retry-After"]) - (midnight - now).total_seconds()) < 120

    # 23 hours later by the clock: still held, for about an hour more
    make_jobs(stack, replaced_at + timedelta(hours=23))
    response = api.session.post(f"{stack['base']}/v1/loans", json=draw, headers=with_key(auth), timeout=30)
    assert response.status_code == 403 and response.json()["error"]["code"] == "SECURITY_HOLD"
    assert 3_000 <= int(response.headers["Retry-After"]) <= 3_600

    # 24 hours and a minute later (the next day): the hold is over, and the real-name check counts afresh
    make_jobs(stack, replaced_at + timedelta(hours=24, minutes=1))
    status, loan = api.post("/v1/loans", draw, with_key(auth))
    assert status == 201 and loan["status"] == "scheduled", loan
    assert api.post("/v1/me/identity", identity, auth)[0] == 200
