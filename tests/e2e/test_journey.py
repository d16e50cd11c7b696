"""The borrower journey over HTTP on the local stack (what `make run` serves).

sign in -> verify -> card -> products -> apply -> draw now -> active within seconds, with a
schedule that follows the money rules; a card ending 0000 -> failed, credit restored; repay,
prepay, payoff; `make jobs` for reminders and overdue.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta

from tests.e2e.conftest import ROOT, wait_for  # the `stack` fixture comes from conftest.py
from tests.journeys import GOOD_APPLICANT, HttpApi, card_ending, ready_borrower, with_key


def run_jobs(stack, at: str) -> None:
    done = subprocess.run([sys.executable, "-m", "infra.local_stack", "jobs", "--at", at], cwd=ROOT,
                          env=stack["env"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


def outbox(stack) -> list[dict]:
    path = stack["outbox"]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_borrower_journey(stack):
    api = HttpApi(stack["base"])
    me = ready_borrower(api, stack["outbox"], openid="journey-1", phone="13700001111",
                        card=card_ending("4321"))
    auth = me["headers"]
    status, products = api.get("/v1/products")
    assert status == 200 and products["items"]

    # a second card, added before any loan (afterwards it would need a fresh SMS code)
    status, bad_card = api.post("/v1/me/bank-cards", {"card_number": card_ending("0000")}, auth)
    assert status == 201, bad_card

    status, decision = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 5_000_000, "term_months": 12, "purpose": "装修",
        "applicant": GOOD_APPLICANT}, with_key(auth))
    assert status == 201 and decision["status"] == "approved", decision
    limit = decision["credit_limit"]

    status, loan = api.post("/v1/loans", {
        "application_id": decision["application_id"], "amount": 1_200_000, "term_months": 12,
        "repayment_method": "equal_installment", "bank_card_id": me["card_id"]}, with_key(auth))
    assert status == 201 and loan["status"] == "scheduled", loan

    def active():
        _, current = api.get(f"/v1/loans/{loan['loan_id']}", auth)
        return current if current["status"] == "active" else None

    current = wait_for(active, timeout=30)
    schedule = current["schedule"]
    assert len(schedule) == 12
    assert sum(i["principal"] for i in schedule) == 1_200_000
    assert all(i["total"] == i["principal"] + i["interest"] for i in schedule)
    _, profile = api.get("/v1/me", auth)
    assert profile["credit"]["available"] == limit - 1_200_000

    # a loan to the card ending 0000: the payout is refused and the credit comes back
    status, doomed = api.post("/v1/loans", {
        "application_id": decision["application_id"], "amount": 600_000, "term_months": 6,
        "repayment_method": "equal_principal", "bank_card_id": bad_card["card_id"]}, with_key(auth))
    assert status == 201, doomed

    def failed():
        _, current = api.get(f"/v1/loans/{doomed['loan_id']}", auth)
        return current["status"] == "failed"

    wait_for(failed, timeout=30)
    _, profile = api.get("/v1/me", auth)
    assert profile["credit"]["available"] == limit - 1_200_000

    # a second loan: a prepayment recomputes the schedule, then the payoff closes it
    status, second = api.post("/v1/loans", {
        "application_id": decision["application_id"], "amount": 600_000, "term_months": 6,
        "repayment_method": "equal_installment", "bank_card_id": me["card_id"]}, with_key(auth))
    assert status == 201, second
    before = wait_for(lambda: (lambda c: c if c["status"] == "active" else None)(
        api.get(f"/v1/loans/{second['loan_id']}", auth)[1]), timeout=30)
    status, paid = api.post(f"/v1/loans/{second['loan_id']}/repayments", {"amount": 200_000}, with_key(auth))
    assert status == 201 and paid["allocation"]["principal"] == 200_000, paid
    _, after = api.get(f"/v1/loans/{second['loan_id']}", auth)
    assert after["outstanding_principal"] == 400_000
    assert [i["due_date"] for i in after["schedule"]] == [i["due_date"] for i in before["schedule"]]
    assert after["schedule"][-1]["principal"] < before["schedule"][-1]["principal"]
    _, quote = api.get(f"/v1/loans/{second['loan_id']}/payoff", auth)
    assert quote["principal"] == 400_000
    status, closed = api.post(f"/v1/loans/{second['loan_id']}/repayments", {"amount": quote["amount"]},
                              with_key(auth))
    assert status == 201 and closed["loan"]["status"] == "closed", closed
    _, profile = api.get("/v1/me", auth)
    assert profile["credit"]["available"] == limit - 1_200_000

    # reminders: make jobs three days before the first due date, twice
    due = date.fromisoformat(schedule[0]["due_date"])
    run_jobs(stack, f"{due - timedelta(days=3)}T09:00:00+08:00")
    soon = [m for m in outbox(stack) if m["to"] == "137****1111" and str(due) in m["text"]]
    assert len(soon) == 1
    run_jobs(stack, f"{due - timedelta(days=3)}T09:00:00+08:00")
    assert len([m for m in outbox(stack) if str(due) in m["text"]]) == 1
    _, inbox = api.get("/v1/me/notifications", auth)
    assert any(n["kind"] == "due_soon" for n in inbox["items"])

    # three days after the due date: overdue, with the penalty of D+1 and D+2
    run_jobs(stack, f"{due + timedelta(days=3)}T01:00:00+08:00")
    _, late = api.get(f"/v1/loans/{loan['loan_id']}", auth)
    assert late["status"] == "overdue"
    first = late["schedule"][0]
    apr = late["apr"]
    from decimal import ROUND_HALF_UP, Decimal
    daily = int((Decimal(first["principal"]) * Decimal("1.5") * Decimal(apr) / 365).quantize(
        Decimal(1), rounding=ROUND_HALF_UP))
    assert first["status"] == "overdue" and first["penalty"] == 2 * daily
    on = due + timedelta(days=3)
    _, quote = api.get(f"/v1/loans/{loan['loan_id']}/payoff?on={on}", auth)
    assert quote["penalty"] == 2 * daily  # the days before `on` from D+1: D+1 and D+2
    assert quote["principal"] == 1_200_000
    rest = 1_200_000 - first["principal"]
    accrued = int((Decimal(rest) * Decimal(apr) * 3 / 365).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert quote["interest"] == first["interest"] + accrued
    assert quote["amount"] == quote["principal"] + quote["interest"] + quote["penalty"]
