"""The OpenAPI document against the running local stack, with schemathesis.

Given the stack that `make run` serves and two signed-in borrowers (A fuzzes; B owns a card, an
approved application, an active loan and a loan scheduled for later), when schemathesis sends
schema-driven requests, valid and invalid, to every operation as borrower A (with the ops key on
`/v1/ops/*`), then every response passes every built-in check (no 5xx; status code, content
type, headers and body as documented; auth enforced; valid data accepted, invalid rejected; 405
for undeclared methods), no body carries a stack trace, and B's objects are, to A, exactly as
absent as ids that never existed. Real successes (B's own journey) match the document too.

Bounded and reproducible: a fixed seed, derandomized Hypothesis, a small `max_examples`.
"""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any, Callable

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from chalicelib.core.clock import SHANGHAI
from chalicelib.api.openapi import document
from tests.e2e.conftest import wait_for
from tests.journeys import GOOD_APPLICANT, HttpApi, card_ending, ready_borrower, with_key

MAX_EXAMPLES = 20
SEED = 20270110

# The document is built in-process from the route metadata the stack serves: schemathesis'
# lazy loader (`schemathesis.pytest.from_fixture`, the way to load it from a fixture's URL)
# fails on pytest 9 (it sets `request.node._nodeid`, which pytest 9 no longer has).
# `test_the_stack_serves_the_fuzzed_document` proves the served one is the same.
schema = schemathesis.openapi.from_dict(document(), config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True,
                   "database": "none"},
    "checks": {
        # The contract's 422 is "well-formed but breaks a rule" (checksum, limit, cap): what a
        # JSON schema cannot rule out, so a schema-valid request may earn it.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409",
                                                           "422", "429"]},
    },
}))


class Api(HttpApi):
    """HttpApi (what ready_borrower drives) plus `call`: every response checked against the
    document."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(base)
        self.headers = headers or {}

    def call(self, method: str, template: str, path: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None, **params: str) -> requests.Response:
        response = self.session.request(method, self.base + (path or template), json=body,
                                        params=params or None, timeout=30,
                                        headers={**self.headers, **(headers or {})})
        schema[template][method].validate_response(response)
        no_stack_trace_in(response.text)
        return response


@pytest.fixture(scope="module")
def borrowers(stack) -> dict[str, Any]:
    """A (the fuzzer's identity, with an approved credit line) and B (owns the probed objects)."""
    plain = Api(stack["base"])
    a = ready_borrower(plain, stack["outbox"], openid="fuzz-a", phone="13600000001",
                       card=card_ending("1111"), born=date(1985, 3, 14))
    b = ready_borrower(plain, stack["outbox"], openid="fuzz-b", phone="13600000002",
                       card=card_ending("2222"), born=date(1990, 7, 1))
    for who in (a, b):
        who["api"] = Api(stack["base"], who["headers"])
        decision = who["api"].call("POST", "/v1/applications", headers=with_key({}), body={
            "product_id": "revolving-credit", "amount": 5_000_000, "term_months": 12,
            "purpose": "装修", "applicant": GOOD_APPLICANT})
        assert decision.status_code == 201, decision.text
        assert decision.json()["status"] == "approved", decision.text
        who["application_id"] = decision.json()["application_id"]
    drawn = b["api"].call("POST", "/v1/loans", headers=with_key({}), body={
        "application_id": b["application_id"], "amount": 1_000_000, "term_months": 6,
        "repayment_method": "equal_installment", "bank_card_id": b["card_id"]})
    assert drawn.status_code == 201, drawn.text
    b["loan_id"] = drawn.json()["loan_id"]
    later = (datetime.now(SHANGHAI) + timedelta(days=3)).replace(microsecond=0).isoformat()
    scheduled = b["api"].call("POST", "/v1/loans", headers=with_key({}), body={
        "application_id": b["application_id"], "amount": 200_000, "term_months": 3,
        "repayment_method": "equal_principal", "bank_card_id": b["card_id"], "disburse_at": later})
    assert scheduled.status_code == 201, scheduled.text
    b["scheduled_loan_id"] = scheduled.json()["loan_id"]

    def active():
        current = b["api"].call("GET", "/v1/loans/{loan_id}", f"/v1/loans/{b['loan_id']}")
        return current.json()["status"] == "active"

    wait_for(active, timeout=30)
    return {"a": a, "b": b, "ops_key": stack["ops_key"]}


def no_stack_trace_in(text: str | None) -> None:
    text = text or ""
    assert "Traceback" not in text and 'File "' not in text, f"a stack trace: {text[:500]}"


def no_stack_trace(ctx, response, case) -> None:
    """No body ever shows a stack trace, whatever was sent."""
    no_stack_trace_in(response.text)


# Path parameters that name a borrower's own object, and the key of B's object of that kind.
OWNED = {"application_id": "application_id", "loan_id": "loan_id", "card_id": "card_id"}


def foreign_objects_are_not_found(base: str, a_token: str, b: dict[str, Any]) -> Callable:
    def foreign_objects_are_not_found(ctx, response, case) -> None:
        """The same request as A with B's id in place of the generated one answers exactly as
        with an id that never existed: never a success, never another status or error code."""
        names = [name for name in case.path_parameters or {} if name in OWNED]
        if (not names or case.operation.path.startswith("/v1/ops/")  # operators see every object
                or case.method.upper() != case.operation.method.upper()):  # an undeclared method
            return
        answers = []
        for value in (b[OWNED[names[0]]], f"missing-{uuid.uuid4().hex[:12]}"):
            probe = case.derive()
            probe.path_parameters[names[0]] = value
            headers = {"Authorization": f"Bearer {a_token}"}
            if "Idempotency-Key" in (case.headers or {}):
                headers["Idempotency-Key"] = str(uuid.uuid4())
            answer = probe.call(base_url=base, headers=headers, timeout=30)
            answers.append((answer.status_code, _code(answer.text)))
        foreign, unknown = answers
        assert not 200 <= foreign[0] < 300, f"A got B's {names[0]}: {foreign}"
        assert foreign == unknown, (f"B's {names[0]} answers A {foreign}, an unknown id {unknown}: "
                                    "the difference tells A that it exists")
    return foreign_objects_are_not_found


def _code(text: str | None) -> str | None:
    try:
        return json.loads(text or "")["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def test_the_stack_serves_the_fuzzed_document(stack):
    served = requests.get(f"{stack['base']}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(document()))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(case, stack, borrowers):
    a_token = borrowers["a"]["tokens"]["access_token"]
    if case.operation.path.startswith("/v1/ops/"):
        headers = {"X-Ops-Key": borrowers["ops_key"]}
    else:
        headers = {"Authorization": f"Bearer {a_token}"}
    case.call_and_validate(base_url=stack["base"], headers=headers, timeout=30, additional_checks=[
        no_stack_trace, foreign_objects_are_not_found(stack["base"], a_token, borrowers["b"])])


# What A may try with B's objects: (method, template, which of B's ids, body). Each must answer
# exactly as it does for an id that never existed, and change nothing of B's.
FOREIGN = [
    ("GET", "/v1/applications/{application_id}", "application_id", None),
    ("GET", "/v1/loans/{loan_id}", "loan_id", None),
    ("GET", "/v1/loans/{loan_id}/payoff", "loan_id", None),
    ("GET", "/v1/loans/{loan_id}/statement", "loan_id", None),
    ("POST", "/v1/loans/{loan_id}/repayments", "loan_id", {"amount": 10_000}),
    ("POST", "/v1/loans/{loan_id}/cancel", "scheduled_loan_id", None),
    ("GET", "/v1/me/bank-cards/{card_id}", "card_id", None),
]


OWNER_READS = {"application_id": "/v1/applications/{application_id}",
               "loan_id": "/v1/loans/{loan_id}", "scheduled_loan_id": "/v1/loans/{loan_id}",
               "card_id": "/v1/me/bank-cards/{card_id}"}


@pytest.mark.parametrize("method,template,owned,body", FOREIGN,
                         ids=[f"{m} {t}" for m, t, _, _ in FOREIGN])
def test_another_borrowers_object_is_not_found(borrowers, method, template, owned, body):
    a, b = borrowers["a"], borrowers["b"]
    name = template[template.index("{") + 1:template.index("}")]

    def as_a(value: str) -> requests.Response:
        return a["api"].call(method, template, template.replace("{" + name + "}", value), body,
                             headers=with_key({}))

    foreign, unknown = as_a(b[owned]), as_a(f"missing-{uuid.uuid4().hex[:12]}")
    assert foreign.status_code == 404, foreign.text
    assert (foreign.status_code, _code(foreign.text)) == (unknown.status_code, _code(unknown.text))
    read = OWNER_READS[owned]
    mine = b["api"].call("GET", read, read.replace(read[read.index("{"):], b[owned]))
    assert mine.status_code == 200, mine.text  # the object exists, for its owner


@pytest.mark.parametrize("field", ["application_id", "bank_card_id"])
def test_a_loan_cannot_be_drawn_on_another_borrowers_line_or_card(borrowers, field):
    a, b = borrowers["a"], borrowers["b"]
    # The fuzzer, signed in as A, may have been approved again since (the document's examples
    # are valid applications), and only the latest approval can be drawn on: take a fresh one.
    decision = a["api"].call("POST", "/v1/applications", headers=with_key({}), body={
        "product_id": "revolving-credit", "amount": 5_000_000, "term_months": 12,
        "purpose": "装修", "applicant": GOOD_APPLICANT})
    assert decision.status_code == 201 and decision.json()["status"] == "approved", decision.text
    draw = {"application_id": decision.json()["application_id"], "amount": 100_000, "term_months": 3,
            "repayment_method": "equal_principal", "bank_card_id": a["card_id"]}
    theirs = {"application_id": b["application_id"], "bank_card_id": b["card_id"]}[field]
    foreign = a["api"].call("POST", "/v1/loans", body={**draw, field: theirs}, headers=with_key({}))
    unknown = a["api"].call("POST", "/v1/loans", headers=with_key({}),
                            body={**draw, field: f"missing-{uuid.uuid4().hex}"})
    assert foreign.status_code == 404, foreign.text
    assert (foreign.status_code, _code(foreign.text)) == (unknown.status_code, _code(unknown.text))


def test_b_is_untouched_and_invisible_to_a(borrowers):
    a, b = borrowers["a"], borrowers["b"]
    loans = {loan["loan_id"]: loan for loan in
             b["api"].call("GET", "/v1/loans").json()["items"]}
    assert loans[b["scheduled_loan_id"]]["status"] == "scheduled"  # A's cancel did nothing
    active = loans[b["loan_id"]]
    assert active["outstanding_principal"] == active["principal"] == 1_000_000  # nor A's repayment
    seen_by_a = json.dumps(a["api"].call("GET", "/v1/loans").json()) + \
        json.dumps(a["api"].call("GET", "/v1/me").json()) + \
        json.dumps(a["api"].call("GET", "/v1/me/credit-report").json())
    for value in (b["loan_id"], b["scheduled_loan_id"], b["card_id"], b["application_id"]):
        assert value not in seen_by_a


def test_real_successes_match_the_document(stack, borrowers):
    """B's own reads and writes, each checked against the document by `Api.call`."""
    b, ops = borrowers["b"], Api(stack["base"], {"X-Ops-Key": borrowers["ops_key"]})
    api, loan = b["api"], b["loan_id"]
    for template, path in [("/v1/me", None), ("/v1/me/offers", None), ("/v1/loans", None),
                           ("/v1/me/credit-report", None),
                           ("/v1/me/notifications", None), ("/v1/products", None),
                           ("/health", None), ("/openapi.json", None),
                           ("/v1/applications/{application_id}",
                            f"/v1/applications/{b['application_id']}"),
                           ("/v1/me/bank-cards/{card_id}", f"/v1/me/bank-cards/{b['card_id']}"),
                           ("/v1/loans/{loan_id}/payoff", f"/v1/loans/{loan}/payoff"),
                           ("/v1/loans/{loan_id}/statement", f"/v1/loans/{loan}/statement")]:
        assert api.call("GET", template, path).status_code == 200, template
    repaid = api.call("POST", "/v1/loans/{loan_id}/repayments", f"/v1/loans/{loan}/repayments",
                      {"amount": 10_000}, headers=with_key({}))
    assert repaid.status_code == 201, repaid.text
    cancelled = api.call("POST", "/v1/loans/{loan_id}/cancel",
                         f"/v1/loans/{b['scheduled_loan_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.call("POST", "/v1/auth/refresh", body={
        "refresh_token": b["tokens"]["refresh_token"]}).status_code == 200
    for template, path in [("/v1/ops/reviews", None), ("/v1/ops/portfolio", None),
                           ("/v1/ops/model", None),
                           ("/v1/ops/loans/{loan_id}", f"/v1/ops/loans/{loan}")]:
        assert ops.call("GET", template, path).status_code == 200, template
    verified = ops.call("POST", "/v1/ops/ledger/verify", body={"loan_id": loan})
    assert verified.status_code == 200 and verified.json()["broken"] == [], verified.text


def test_rate_limited_answers_carry_retry_after_as_documented(stack):
    """Every check on a real 429 (second code to one phone within the minute), headers included."""
    operation = schema["/v1/auth/sms-codes"]["POST"]
    answers = []
    for _ in range(2):
        case = operation.Case(body={"phone": "13600000077"}, media_type="application/json")
        answers.append(case.call_and_validate(base_url=stack["base"], timeout=30,
                                              additional_checks=[no_stack_trace]))
    assert [answer.status_code for answer in answers] == [202, 429]
    retry_after = {name.lower(): value for name, value in answers[1].headers.items()}["retry-after"]
    assert int(retry_after[0] if isinstance(retry_after, list) else retry_after) >= 1
