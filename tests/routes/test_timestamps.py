"""Every timestamp in a response is Asia/Shanghai time with +08:00 (CONTRACT.md, Conventions),
whatever the clock's own offset: a whole journey's responses are scanned for any other."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from chalicelib.core.clock import SHANGHAI
from infra.lambda_events import scheduled_event
from tests.journeys import GOOD_APPLICANT, ChaliceApi, card_ending, deliver_notifications, ready_borrower, with_key

INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


class Recording(ChaliceApi):
    """ChaliceApi that keeps every (method, path, body) it was answered."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.answers: list[tuple[str, str, Any]] = []

    def _call(self, method, path, body=None, headers=None):  # type: ignore[no-untyped-def]
        status, payload = super()._call(method, path, body, headers)
        self.answers.append((method, path, payload))
        return status, payload


def instants(value: Any, where: str = "") -> list[tuple[str, str]]:
    """Every string in a JSON value that holds a date and a time, with where it is."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in instants(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [found for n, item in enumerate(value) for found in instants(item, f"{where}[{n}]")]
    if isinstance(value, str) and INSTANT.search(value):
        return [(where, value)]
    return []


def test_every_timestamp_of_a_journey_is_beijing_time(client, outbox, clock, aws_stack):
    api = Recording(client)
    ops = {"X-Ops-Key": json.loads(aws_stack["secrets"]["ops"])["key"]}
    me = ready_borrower(api, outbox, openid="stamps-1", phone="13600004444", card=card_ending("2580"))
    auth = me["headers"]
    api.get("/v1/me", auth)
    api.get(f"/v1/me/bank-cards/{me['card_id']}", auth)
    api.get("/v1/me/offers", auth)
    status, decision = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 3_000_000, "term_months": 12, "purpose": "装修",
        "applicant": GOOD_APPLICANT}, with_key(auth))
    assert status == 201 and decision["status"] == "approved", decision
    api.get(f"/v1/applications/{decision['application_id']}", auth)
    later = (clock.now() + timedelta(hours=2)).astimezone(SHANGHAI)
    status, loan = api.post("/v1/loans", {
        "application_id": decision["application_id"], "amount": 600_000, "term_months": 6,
        "repayment_method": "equal_installment", "bank_card_id": me["card_id"],
        "disburse_at": later.isoformat()}, with_key(auth))
    assert status == 201, loan
    clock.set(later + timedelta(minutes=1))
    client.lambda_.invoke("disbursement_sweep", scheduled_event(clock.now(), "disbursement_sweep"))
    from infra.pump import QueuePump
    from app import app
    QueuePump(app, retry_delay=0).drain(timeout_seconds=60)
    api.get(f"/v1/loans/{loan['loan_id']}", auth)
    api.get("/v1/loans", auth)
    api.get(f"/v1/loans/{loan['loan_id']}/payoff", auth)
    status, paid = api.post(f"/v1/loans/{loan['loan_id']}/repayments", {"amount": 50_000}, with_key(auth))
    assert status == 201, paid
    deliver_notifications(client)
    status, inbox = api.get("/v1/me/notifications", auth)
    assert {n["kind"] for n in inbox["items"]} >= {"disbursed", "repayment_received"}
    api.get(f"/v1/ops/loans/{loan['loan_id']}", ops)
    api.get("/v1/ops/portfolio", ops)
    api.get("/v1/ops/reviews", ops)
    api.get("/v1/ops/clock", ops)

    stamps = [(method, path, where, value) for method, path, body in api.answers
              for where, value in instants(body)]
    paths = {path.split("/")[2] if path.count("/") > 1 else path for _, path, _, _ in stamps}
    assert {"me", "applications", "loans", "ops"} <= paths  # the journey did show timestamps
    wrong = [s for s in stamps if not s[3].endswith("+08:00")]
    assert not wrong, wrong
