"""Drawdowns against the credit line and exactly-once disbursement, on moto.

The auth slice is represented by its seam (`chalicelib.loans.people`): these tests are about
money leaving the lender, the borrower journey over HTTP is in tests/e2e and test_journey.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import timedelta

import pytest

from chalicelib.loans import credit, disbursement, service
from chalicelib.money import ledger
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from infra.lambda_events import sqs_event
from infra.local_stack import serialise_aws
from tests.routes.conftest import NOW, draw

def ledger_of(loan_id):
    return [json.loads(e.lines) for e in LedgerEntryRecord.query(loan_id)]


def test_a_drawdown_takes_credit_and_shows_a_schedule(borrower):
    loan = draw(borrower, 120_000)
    assert loan["status"] == "scheduled"
    assert sum(i["principal"] for i in loan["schedule"]) == 120_000
    assert loan["total_repayment"] == 120_000 + loan["total_interest"]
    assert credit.get_line("u-1").available == 1_000_000 - 120_000


def test_more_than_available_is_refused_and_changes_nothing(borrower):
    draw(borrower, 900_000)
    with pytest.raises(Exception) as err:
        draw(borrower, 200_000)
    assert getattr(err.value, "code", None) == "CREDIT_LIMIT_EXCEEDED"
    assert credit.get_line("u-1").drawn == 900_000


def test_disburse_at_more_than_seven_days_ahead_is_refused(borrower):
    with pytest.raises(Exception) as err:
        draw(borrower, at=NOW + timedelta(days=8))
    assert err.value.code == "DISBURSE_AT_INVALID"


def test_cancel_gives_the_credit_back(borrower):
    loan = draw(borrower, 300_000)
    cancelled = service.cancel("u-1", loan["loan_id"], NOW)
    assert cancelled["status"] == "cancelled"
    assert credit.get_line("u-1").available == 1_000_000
    with pytest.raises(Exception) as err:
        service.cancel("u-1", loan["loan_id"], NOW)
    assert err.value.status == 409


def test_another_users_loan_is_not_found(borrower):
    loan = draw(borrower)
    with pytest.raises(Exception) as err:
        service.get_loan("u-2", loan["loan_id"])
    assert err.value.status == 404


def consume(client, loan_ids, copies=5, seed=7):
    records = [{"messageId": f"{loan_id}-{n}", "receiptHandle": "r", "body": json.dumps({"loan_id": loan_id}),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
               for loan_id in loan_ids for n in range(copies)]
    random.Random(seed).shuffle(records)
    return client.lambda_.invoke("disbursement_consumer", sqs_event(records)).payload


def test_each_loan_is_paid_once_however_often_its_message_comes(client, borrower, clock):
    loans = [draw(borrower, 100_000)["loan_id"] for _ in range(3)]
    answer = consume(client, loans, copies=5)
    assert answer == {"batchItemFailures": []}
    assert sorted(t.idempotency_key for t in borrower["gateway"].transfers) == sorted(loans)
    for loan_id in loans:
        record = LoanRecord.get(loan_id)
        assert record.status == "active"
        entries = ledger_of(loan_id)
        assert len(entries) == 1 and sum(ledger.balances(entries).values()) == 0


def test_a_crash_after_the_payout_never_pays_twice(client, borrower, monkeypatch, clock):
    loan_id = draw(borrower, 100_000)["loan_id"]
    real_activate = disbursement._activate

    def crash(*args, **kwargs):
        raise RuntimeError("container died")

    monkeypatch.setattr(disbursement, "_activate", crash)
    assert consume(client, [loan_id], copies=1)["batchItemFailures"]
    assert LoanRecord.get(loan_id).status == "disbursing"
    monkeypatch.setattr(disbursement, "_activate", real_activate)
    # redelivered while the lease is fresh: left alone; after the lease: finished, no new payout
    assert disbursement.disburse(loan_id, NOW + timedelta(seconds=10)) == "in_progress"
    assert disbursement.disburse(loan_id, NOW + timedelta(minutes=2)) == "active"
    assert len(borrower["gateway"].transfers) == 1
    assert len(ledger_of(loan_id)) == 1


def test_a_loan_due_tomorrow_is_not_paid_today(borrower):
    later = draw(borrower, 100_000, at=NOW + timedelta(days=1))["loan_id"]
    now_loan = draw(borrower, 100_000)["loan_id"]
    queued = disbursement.sweep(NOW)
    assert queued["queued"] == 1 and queued["items_read"] == 1
    assert disbursement.disburse(later, NOW) == "not_due"
    assert disbursement.disburse(now_loan, NOW) == "active"


def test_a_refused_card_fails_the_loan_and_restores_the_credit(borrower):
    loan_id = draw(borrower, 250_000, card="c-0000")["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "failed"
    assert LoanRecord.get(loan_id).status == "failed"
    assert credit.get_line("u-1").available == 1_000_000
    assert ledger_of(loan_id) == []


@pytest.fixture()
def serialised_aws():
    """DynamoDB runs each request atomically; moto does not under threads. One lock around each
    botocore call makes moto behave like DynamoDB, so the test checks our conditions, not moto."""
    undo = serialise_aws()
    yield
    undo()


def test_two_hundred_concurrent_drawdowns_never_exceed_a_line_or_the_loan_count(borrower,
                                                                             serialised_aws):
    # Given twenty borrowers, each with a 1,000,000 fen line
    users = [f"u-{n}" for n in range(100, 120)]
    applications = {user: approve_again(user) for user in users}
    # 400,000 fen draws: the line holds two; 70,000 fen draws: the line would hold 14, the
    # three-live-loans rule allows three
    amount = {user: 400_000 if n < 10 else 70_000 for n, user in enumerate(users)}
    results: dict[str, list[str]] = {user: [] for user in users}

    def one(user: str) -> None:
        try:
            service.draw(user, service.DrawRequest(applications[user], amount[user], 12,
                                                   "equal_installment", "c-ok", None), NOW)
            results[user].append("ok")
        except Exception as err:  # noqa: BLE001
            results[user].append(getattr(err, "code", repr(err)))

    # When each of them sends ten draws at once (200 in all)
    threads = [threading.Thread(target=one, args=(user,)) for user in users for _ in range(10)]
    random.Random(3).shuffle(threads)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every line holds exactly what fits, and what is drawn is what the loans lent
    for user in users:
        line = credit.get_line(user)
        loans = list(LoanRecord.by_user.query(user))
        accepted = results[user].count("ok")
        assert accepted == len(loans) == (2 if amount[user] == 400_000 else 3), results[user]
        assert line.drawn == sum(l.principal for l in loans) == accepted * amount[user] <= line.limit
        refusal = "CREDIT_LIMIT_EXCEEDED" if amount[user] == 400_000 else "TOO_MANY_LOANS"
        assert set(results[user]) == {"ok", refusal}, results[user]


def test_a_new_approval_resizes_the_line_and_keeps_what_is_drawn(borrower):
    draw(borrower, 300_000)
    line = credit.set_line("u-1", limit=2_000_000, apr="0.1500", application_id="a-2",
                           product_id="revolving-credit", now=NOW + timedelta(days=30))
    assert (line.limit, line.drawn, line.available, line.apr) == (2_000_000, 300_000, 1_700_000, "0.1500")
    assert credit.get_line("u-1") == line


def test_the_loan_list_is_one_page_newest_first(borrower, monkeypatch):
    from datetime import timedelta
    monkeypatch.setattr(service, "LIST_PAGE", 2)
    made = [service.draw("u-1", service.DrawRequest(borrower["application_id"], 50_000, 3,
                                                     "equal_installment", "c-ok", None),
                         NOW + timedelta(minutes=k))["loan_id"] for k in range(3)]
    assert [loan["loan_id"] for loan in service.list_loans("u-1")] == [made[2], made[1]]


@pytest.fixture()
def as_borrower(client, aws_stack, monkeypatch):
    """GET as borrower u-1 over HTTP (bearer seam), and as an operator (the local ops key)."""
    from chalicelib.api.http import AUTHENTICATORS
    monkeypatch.setitem(AUTHENTICATORS, "bearer", lambda request: "u-1")
    ops_key = json.loads(aws_stack["secrets"]["ops"])["key"]

    def get(path, lang=None, ops=False):
        headers = {"X-Ops-Key": ops_key} if ops else {"Authorization": "Bearer t"}
        if lang:
            headers["Accept-Language"] = lang
        response = client.http.get(path, headers=headers)
        assert response.status_code == 200, response.body
        return json.loads(response.body)

    return get


def test_failed_and_cancelled_loans_show_no_bill_and_say_why(borrower, as_borrower):
    # Given a loan the bank refused to pay out, one the borrower cancelled, and a live one
    refused = draw(borrower, 250_000, card="c-0000")["loan_id"]
    assert disbursement.disburse(refused, NOW) == "failed"
    cancelled = draw(borrower, 100_000, at=NOW + timedelta(days=2))["loan_id"]
    service.cancel("u-1", cancelled, NOW)
    live = draw(borrower, 100_000)["loan_id"]
    # When the borrower and an operator look at them
    listed = {loan["loan_id"]: loan for loan in as_borrower("/v1/loans")["items"]}
    for loan_id, code in ((refused, "CARD_REFUSED"), (cancelled, "CANCELLED_BY_BORROWER")):
        for shown in (as_borrower(f"/v1/loans/{loan_id}"), listed[loan_id],
                      as_borrower(f"/v1/ops/loans/{loan_id}", ops=True)):
            # Then nothing is owed on them and the reason is given, in Chinese by default
            assert shown["schedule"] == [] and shown["outstanding_principal"] == 0
            assert (shown["total_interest"], shown["total_repayment"]) == (0, 0)
            assert shown["status_reason"]["code"] == code
            assert any("\u4e00" <= ch <= "\u9fff" for ch in shown["status_reason"]["message"])
        english = as_borrower(f"/v1/loans/{loan_id}", lang="en")["status_reason"]
        assert english["code"] == code and english["message"].isascii()
    # And a loan that goes ahead still shows its bill, with no status reason
    assert listed[live]["schedule"] and listed[live]["total_repayment"] > 100_000
    assert listed[live]["status_reason"] is None


def test_the_api_document_describes_status_reason_as_the_loans_show_it(client):
    loan = json.loads(client.http.get("/openapi.json").body)["components"]["schemas"]["Loan"]
    reason = loan["properties"]["status_reason"]
    assert "status_reason" in loan["required"] and reason["nullable"] is True
    assert set(reason["properties"]["code"]["enum"]) == set(service.STATUS_REASONS)
    assert reason["required"] == ["code", "message"]


def approve_again(user="u-1", limit=1_000_000, apr="0.1800", product="revolving-credit", at=NOW):
    """A later approval of the user (as applications.apply or an operator records one): its
    application, and the line moved to it."""
    from chalicelib.loans.models import ApplicationRecord
    from tests.routes.conftest import APPLICANT
    application_id = str(uuid.uuid4())
    ApplicationRecord(application_id=application_id, user_id=user, product_id=product,
                      amount=limit, term_months=12, purpose="装修", applicant=json.dumps(APPLICANT),
                      status="approved", credit_limit=limit, apr=apr, reasons="[]",
                      model_version="test", decided_at=service.iso_utc(at), decision="{}").save()
    credit.set_line(user, limit=limit, apr=apr, application_id=application_id, product_id=product,
                    now=at)
    return application_id


def refused(call):
    with pytest.raises(Exception) as err:
        call()
    return getattr(err.value, "status", None), getattr(err.value, "code", repr(err.value))


def test_only_the_application_that_set_the_line_can_be_drawn_on(borrower):
    # Given a line set by a revolving-credit approval at 18 %, then a cash-advance approval
    # at 10.8 %: the line now follows the cash advance
    first = borrower["application_id"]
    latest = approve_again(limit=500_000, apr="0.1080", product="cash-advance")
    # When the borrower draws on the older approval
    # Then it is refused as superseded, and nothing is drawn
    assert refused(lambda: draw(borrower, 100_000)) == (409, "APPLICATION_SUPERSEDED")
    assert credit.get_line("u-1").drawn == 0 and list(LoanRecord.by_user.query("u-1")) == []
    # And the latest approval draws with its own product and APR
    loan = service.draw("u-1", service.DrawRequest(latest, 100_000, 3, "interest_first", "c-ok",
                                                   None), NOW)
    assert (loan["product_id"], loan["apr"]) == ("cash-advance", "0.1080")
    assert first != latest


def test_an_approval_landing_during_a_draw_is_caught_by_its_transaction(borrower, monkeypatch):
    # Given a draw that has read the line, when another approval (same limit and APR, another
    # application) moves the line before the draw writes
    real_get_line = credit.get_line
    landed = []

    def read_then_approval_lands(user_id):
        line = real_get_line(user_id)
        if not landed:
            landed.append(user_id)
            approve_again()
        return line

    monkeypatch.setattr(credit, "get_line", read_then_approval_lands)
    # Then the draw is refused as superseded and nothing is drawn
    assert refused(lambda: draw(borrower, 100_000)) == (409, "APPLICATION_SUPERSEDED")
    assert landed and real_get_line("u-1").drawn == 0
    assert list(LoanRecord.by_user.query("u-1")) == []


def test_no_draw_while_a_loan_is_overdue(borrower):
    # Given a paid-out loan whose first installment (due 2027-02-10) is overdue
    from datetime import date
    from chalicelib.repay import service as repay
    late = draw(borrower, 100_000)["loan_id"]
    assert disbursement.disburse(late, NOW) == "active"
    repay.close_of_business(date(2027, 2, 13), NOW)
    assert LoanRecord.get(late).status == "overdue"
    # When the borrower draws again, Then it is refused and nothing is drawn
    assert refused(lambda: draw(borrower, 100_000)) == (422, "LOAN_OVERDUE")
    assert credit.get_line("u-1").drawn == 100_000


def test_a_fourth_live_loan_is_refused_until_one_ends(borrower):
    # Given three live loans: one paid out, one scheduled now, one scheduled for later
    active = draw(borrower, 100_000)["loan_id"]
    assert disbursement.disburse(active, NOW) == "active"
    draw(borrower, 100_000)
    later = draw(borrower, 100_000, at=NOW + timedelta(days=3))["loan_id"]
    # When a fourth is drawn, Then it is refused though the line has room
    assert refused(lambda: draw(borrower, 100_000)) == (422, "TOO_MANY_LOANS")
    assert credit.get_line("u-1").available == 700_000
    # And once one is cancelled (or refused by the bank), the next draw goes through
    service.cancel("u-1", later, NOW)
    refused_by_bank = draw(borrower, 100_000, card="c-0000")["loan_id"]
    assert disbursement.disburse(refused_by_bank, NOW) == "failed"
    assert draw(borrower, 100_000)["status"] == "scheduled"
    assert refused(lambda: draw(borrower, 100_000)) == (422, "TOO_MANY_LOANS")


def test_two_draws_at_two_live_loans_racing_cannot_both_pass(borrower, serialised_aws, monkeypatch):
    # Given two live loans
    draw(borrower, 100_000)
    draw(borrower, 100_000)
    # When two draws both read the user's loans before either writes
    both_read = threading.Barrier(2, timeout=10)
    real = service.live_loans
    waited: set[int] = set()

    def read_then_wait(line):
        loans = real(line)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_read.wait()
        return loans

    monkeypatch.setattr(service, "live_loans", read_then_wait)
    results: list[str] = []

    def one() -> None:
        try:
            draw(borrower, 100_000)
            results.append("ok")
        except Exception as err:  # noqa: BLE001
            results.append(getattr(err, "code", repr(err)))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly one passes: the other sees the third loan and is refused
    assert sorted(results) == ["TOO_MANY_LOANS", "ok"]
    assert len(list(LoanRecord.by_user.query("u-1"))) == 3
    assert credit.get_line("u-1").drawn == 300_000


def test_the_api_document_lists_the_draws_refusals(client):
    responses = json.loads(client.http.get("/openapi.json").body)["paths"]["/v1/loans"]["post"][
        "responses"]
    assert "SECURITY_HOLD" in responses["403"]["x-error-codes"]
    assert {"APPLICATION_SUPERSEDED", "APPLICATION_NOT_APPROVED", "NO_CREDIT_LINE",
            "IDEMPOTENCY_KEY_REUSED"} <= set(responses["409"]["x-error-codes"])
    assert {"LOAN_OVERDUE", "TOO_MANY_LOANS", "CREDIT_LIMIT_EXCEEDED", "AFFORDABILITY"} <= set(
        responses["422"]["x-error-codes"])
    assert "TOO_MANY_LOANS" in responses["422"]["description"]


def test_a_security_hold_refuses_a_draw_before_anything_else(borrower, monkeypatch):
    """In the 24 hours after a phone replacement (auth's hold on the profile), the draw is
    refused first, whatever else the request holds, with the seconds left; then it passes."""
    from chalicelib.auth import service as auth
    from chalicelib.auth.models import PROFILE, UserRecord, user_pk
    from chalicelib.core.clock import FixedClock
    from chalicelib.core.errors import Forbidden
    monkeypatch.setattr(auth, "clock", FixedClock(NOW))
    UserRecord(pk=user_pk("u-1"), sk=PROFILE, user_id="u-1", created_at=NOW.isoformat(),
               signup_method="wechat", security_hold_until=int(NOW.timestamp()) + 3600).save()
    for request in (service.DrawRequest(borrower["application_id"], 100_000, 12,
                                        "equal_installment", "c-ok", None),
                    service.DrawRequest("no-such-application", 10**12, 7, "x", "no-card", None)):
        with pytest.raises(Forbidden) as refused:
            service.draw("u-1", request, NOW)
        assert refused.value.code == "SECURITY_HOLD"
        assert refused.value.headers == {"Retry-After": "3600"}
    assert credit.get_line("u-1").drawn == 0 and list(LoanRecord.by_user.query("u-1")) == []
    monkeypatch.setattr(auth, "clock", FixedClock(NOW + timedelta(hours=1)))
    assert draw(borrower)["status"] == "scheduled"
