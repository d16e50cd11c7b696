"""The borrower's credit report (信用报告, issue 19) over the API: the latest decision's grade
and factors, the credit line, and the record with us, counted by the writes that change it
and read in a constant number of reads."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pytest

from bench.common import counting_reads
from chalicelib.core.clock import SHANGHAI
from chalicelib.loans import disbursement
from chalicelib.loans.models import ApplicationRecord
from chalicelib.repay import service as repay
from chalicelib.risk import reasons
from tests.journeys import GOOD_APPLICANT, ChaliceApi, approved_loan, card_ending, ready_borrower, with_key
from tests.routes.test_applications import RISKY_APPLICANT

EMPTY = {"applications": 0, "approved": 0, "loans": 0, "installments_on_time": 0,
         "installments_late": 0, "max_days_past_due": 0}


@pytest.fixture()
def borrower(client, outbox):
    api = ChaliceApi(client)
    return api, ready_borrower(api, outbox, openid="report-1", phone="13600003333", card=card_ending("2468"))


def report(api, me, lang=None):
    headers = {**me["headers"], **({"Accept-Language": lang} if lang else {})}
    status, body = api.get("/v1/me/credit-report", headers)
    assert status == 200, body
    return body


def test_a_new_borrower_has_no_grade_and_an_empty_record(borrower):
    api, me = borrower
    body = report(api, me)
    assert body["grade"] is None and body["credit"] is None and body["factors"] == []
    assert body["history"] == EMPTY
    assert body["model_version"] is None and body["decided_at"] is None
    assert body["as_of"] == "2027-01-10T10:00:00+08:00"  # the service's clock, Beijing time


def test_after_an_approval_the_report_shows_its_grade_line_and_factors(borrower):
    api, me = borrower
    decision, loan = approved_loan(api, me["headers"], me["card_id"], amount=200_000)
    body = report(api, me)
    stored = json.loads(ApplicationRecord.get(decision["application_id"]).decision)
    assert body["grade"] == stored["grade"] and body["grade"] in ("A", "B", "C")
    assert body["credit"] == api.get("/v1/me", me["headers"])[1]["credit"]
    assert body["model_version"] == decision["model_version"] and body["decided_at"] == decision["decided_at"]
    assert body["history"] == {**EMPTY, "applications": 1, "approved": 1}  # drawn, not yet paid out
    # the factors are the stored contributions': what raised the risk most, then what lowered it
    contributions = stored["contributions"]
    hurts = [f for f in body["factors"] if f["direction"] == "hurts"]
    helps = [f for f in body["factors"] if f["direction"] == "helps"]
    assert [f["code"] for f in hurts] == [reasons.feature_reason(n)["code"]
                                          for n in reasons.top_risk_features(contributions)]
    lowest = sorted((v, n) for n, v in contributions.items() if v < 0)[:3]
    assert [f["code"] for f in helps] == [reasons.FEATURE_REASONS[n][0] for _, n in lowest]
    assert helps and body["factors"] == hurts + helps
    assert all("降低" in f["message"] or "适中" in f["message"] or "充足" in f["message"] or "较低" in f["message"]
               for f in helps)
    english = report(api, me, "en")
    assert [f["code"] for f in english["factors"]] == [f["code"] for f in body["factors"]]
    assert all(f["message"].isascii() for f in english["factors"])


def test_the_record_counts_loans_on_time_and_late_installments_and_the_worst_days(borrower, clock):
    api, me = borrower
    _, loan = approved_loan(api, me["headers"], me["card_id"], amount=240_000)
    loan_id, user = loan["loan_id"], me["user_id"]
    assert disbursement.disburse(loan_id, clock.now()) == "active"
    assert disbursement.disburse(loan_id, clock.now()) == "already_active"  # delivered twice
    assert report(api, me)["history"]["loans"] == 1

    schedule = api.get(f"/v1/loans/{loan_id}", me["headers"])[1]["schedule"]
    first, second = (date.fromisoformat(i["due_date"]) for i in schedule[:2])
    on_due = datetime.combine(first, time(10), SHANGHAI)
    clock.set(on_due)
    status, _ = api.post(f"/v1/loans/{loan_id}/repayments", {"amount": schedule[0]["total"]}, with_key(me["headers"]))
    assert status == 201
    assert report(api, me)["history"]["installments_on_time"] == 1

    # the second installment is missed: the grace day is no late day; then overdue for days
    repay.close_of_business(second + timedelta(days=1), on_due)
    assert report(api, me)["history"]["installments_late"] == 0
    for day in (2, 3, 5, 5):  # the fifth day's close twice: nothing counts twice
        repay.close_of_business(second + timedelta(days=day), on_due)
    history = report(api, me)["history"]
    assert (history["installments_late"], history["max_days_past_due"]) == (1, 5)

    # pay everything off: the late one stays late, the ten not yet due are paid early (on time)
    paid_on = datetime.combine(second + timedelta(days=5), time(10), SHANGHAI)
    clock.set(paid_on)
    payoff = api.get(f"/v1/loans/{loan_id}/payoff", me["headers"])[1]
    status, _ = api.post(f"/v1/loans/{loan_id}/repayments", {"amount": payoff["amount"]}, with_key(me["headers"]))
    assert status == 201
    history = report(api, me)["history"]
    assert history == {"applications": 1, "approved": 1, "loans": 1, "installments_on_time": 11,
                       "installments_late": 1, "max_days_past_due": 5}
    # what it reads does not grow with the record
    with counting_reads() as reads:
        report(api, me)
    # the token's session, the record, the latest decision, the credit line: four items
    assert reads == {"calls": 4, "items": 4}, reads


def test_after_a_decline_the_factors_are_the_decisions_own_reasons(client, outbox):
    api = ChaliceApi(client)
    me = ready_borrower(api, outbox, openid="report-2", phone="13600004444", card=card_ending("1357"))
    status, declined = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 500_000, "term_months": 12, "purpose": "家装",
        "applicant": RISKY_APPLICANT}, with_key(me["headers"]))
    assert status == 201 and declined["status"] == "declined", declined
    body = report(api, me)
    stored = json.loads(ApplicationRecord.get(declined["application_id"]).decision)
    assert body["grade"] == stored["grade"] and body["credit"] is None
    risk_reasons = [r for r in declined["reasons"] if r["code"] in reasons.FEATURE_CODES]
    assert risk_reasons, declined
    assert [{"code": f["code"], "message": f["message"]} for f in body["factors"]
            if f["direction"] == "hurts"] == risk_reasons
    assert body["history"] == {**EMPTY, "applications": 1}
    assert body["decided_at"] == declined["decided_at"]
    # nothing in the report names a personal characteristic
    assert not {f["code"] for f in body["factors"]} & reasons.RETIRED_CODES


def test_each_borrower_sees_only_their_own_report(client, outbox, borrower):
    api, me = borrower
    approved_loan(api, me["headers"], me["card_id"], amount=200_000)
    other = ready_borrower(api, outbox, openid="report-3", phone="13600005555", card=card_ending("9753"),
                           born=date(1990, 3, 4))
    assert report(api, other)["history"] == EMPTY
    assert report(api, me)["history"]["applications"] == 1
    status, body = api.get("/v1/me/credit-report")
    assert status == 401 and body["error"]["code"] == "TOKEN_MISSING"


def test_the_worst_days_keep_growing_on_nights_that_post_no_penalty(borrower, clock):
    """An overdue installment whose unpaid principal is so small its daily penalty rounds to
    0 fen posts nothing, and its loan's status and bucket stay the same: close of business then
    writes no loan, but the borrower's days past due still grow and must be recorded."""
    api, me = borrower
    _, loan = approved_loan(api, me["headers"], me["card_id"], amount=240_000)
    loan_id = loan["loan_id"]
    assert disbursement.disburse(loan_id, clock.now()) == "active"
    first = api.get(f"/v1/loans/{loan_id}", me["headers"])[1]["schedule"][0]
    due = date.fromisoformat(first["due_date"])
    clock.set(datetime.combine(due, time(10), SHANGHAI))
    # leave 100 fen of principal unpaid: 100 × 24 % / 365 rounds to 0 fen a day
    status, _ = api.post(f"/v1/loans/{loan_id}/repayments", {"amount": first["total"] - 100}, with_key(me["headers"]))
    assert status == 201
    for day in range(2, 11):
        repay.close_of_business(due + timedelta(days=day), clock.now())
    detail = api.get(f"/v1/loans/{loan_id}", me["headers"])[1]
    assert detail["status"] == "overdue" and detail["schedule"][0]["penalty"] == 0
    history = report(api, me)["history"]
    assert (history["installments_late"], history["max_days_past_due"]) == (1, 10)
