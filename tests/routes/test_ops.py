"""The operators' routes: reviews decided with the operator recorded, one loan in full, the
portfolio by status and days past due."""
from __future__ import annotations

import json
import uuid
from datetime import date

import pytest

from chalicelib.loans import credit, disbursement
from chalicelib.loans.models import ApplicationRecord
from chalicelib.repay import service as repay
from tests.routes.conftest import ACCOUNT, APPLICANT, NOW, draw, review_application

OPERATOR_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/lending-prod-operator/ops-jane"


@pytest.fixture()
def ops(client, aws_stack):
    key = json.loads(aws_stack["secrets"]["ops"])["key"]

    def call(method, path, body=None, headers=None):
        all_headers = {"Content-Type": "application/json", "X-Ops-Key": key, **(headers or {})}
        raw = json.dumps(body).encode() if body is not None else b""
        response = client.http.get(path, headers=all_headers) if method == "get" else \
            client.http.post(path, body=raw, headers=all_headers)
        return response.status_code, json.loads(response.body) if response.body else None

    return call


def test_ops_routes_refuse_without_the_key(client, aws_stack):
    for path in ("/v1/ops/reviews", "/v1/ops/portfolio"):
        response = client.http.get(path, headers={"X-Ops-Key": "wrong"})
        assert response.status_code == 403
        assert json.loads(response.body)["error"]["code"] == "OPS_FORBIDDEN"


def test_an_operator_approves_a_review_and_the_line_opens(ops):
    application_id = review_application()
    status, listed = ops("get", "/v1/ops/reviews")
    assert status == 200 and [a["application_id"] for a in listed["items"]] == [application_id]
    status, decided = ops("post", f"/v1/ops/applications/{application_id}/decision",
                          {"status": "approved", "credit_limit": 500_000, "note": "收入证明已核实"})
    assert status == 200 and decided["status"] == "approved" and decided["credit_limit"] == 500_000
    assert decided["reviewed_by"] == "local-operator"
    assert credit.get_line("u-9").limit == 500_000
    assert ops("get", "/v1/ops/reviews")[1]["items"] == []
    status, again = ops("post", f"/v1/ops/applications/{application_id}/decision",
                        {"status": "declined", "note": "twice"})
    assert status == 409 and again["error"]["code"] == "APPLICATION_NOT_IN_REVIEW"


def test_operators_cannot_set_fields_they_do_not_own(ops):
    application_id = review_application()
    status, body = ops("post", f"/v1/ops/applications/{application_id}/decision",
                       {"status": "approved", "note": "x", "apr": "0.01"})
    assert status == 400 and body["error"]["code"] == "UNKNOWN_FIELD"


def test_ops_loan_view_has_the_ledger_and_events(ops, borrower):
    loan_id = draw(borrower, 100_000)["loan_id"]
    disbursement.disburse(loan_id, NOW)
    status, loan = ops("get", f"/v1/ops/loans/{loan_id}")
    assert status == 200 and loan["status"] == "active"
    assert [e["cause"] for e in loan["ledger"]] == ["disbursement"]
    assert [e["event"] for e in loan["events"]][:3] == ["drawn", "disbursing", "disbursed"]
    assert ops("get", f"/v1/ops/loans/{uuid.uuid4()}")[0] == 404


def test_portfolio_by_status_and_days_past_due(ops, borrower):
    live = draw(borrower, 100_000)["loan_id"]
    disbursement.disburse(live, NOW)
    draw(borrower, 50_000)  # scheduled
    repay.close_of_business(date(2027, 2, 13), NOW)  # first due 2027-02-10: overdue
    status, report = ops("get", "/v1/ops/portfolio")
    assert status == 200
    assert report["by_status"]["overdue"] == {"count": 1, "outstanding_principal": 100_000}
    assert report["by_status"]["scheduled"]["count"] == 1
    # the buckets are those of the last close of business (2027-02-13: 3 days past due)
    assert report["by_days_past_due"]["1-30"] == {"count": 1, "outstanding_principal": 100_000}
    assert report["by_days_past_due"]["0"]["count"] == 0


def test_an_operators_decline_starts_the_cool_down_from_the_applications_decision(ops):
    from chalicelib.loans import applications
    from chalicelib.loans.models import DeclineRecord
    application_id = review_application("u-9")
    assert applications._history("u-9", "revolving-credit")["last_decline_on"] is None
    status, _ = ops("post", f"/v1/ops/applications/{application_id}/decision",
                    {"status": "declined", "note": "收入无法核实"})
    assert status == 200
    assert applications._history("u-9", "revolving-credit")["last_decline_on"] == date(2027, 1, 10)
    DeclineRecord(user_id="u-9", product_id="revolving-credit", application_id="later",
                  declined_on="2027-01-20").save()
    older = review_application("u-9")  # decided on 2027-01-10, settled after a later decline
    ops("post", f"/v1/ops/applications/{older}/decision", {"status": "declined", "note": "x"})
    assert applications._history("u-9", "revolving-credit")["last_decline_on"] == date(2027, 1, 20)


def test_the_review_queue_answers_one_page(ops, monkeypatch):
    from chalicelib.loans import applications
    monkeypatch.setattr(applications, "REVIEW_PAGE", 2)
    for _ in range(3):
        review_application()
    assert len(ops("get", "/v1/ops/reviews")[1]["items"]) == 2


@pytest.mark.parametrize("decision, code", [
    ({"status": "approved", "credit_limit": 500_000}, "OPERATOR_APPROVED"),
    ({"status": "declined"}, "OPERATOR_DECLINED"),
])
def test_the_borrower_sees_the_operators_decision_but_never_the_note(ops, client, clock, decision,
                                                                     code, monkeypatch, caplog):
    # Given an application the model sent to review, decided by an operator an hour later
    # with a note meant for colleagues only
    from datetime import timedelta
    from chalicelib.api.http import AUTHENTICATORS
    monkeypatch.setitem(AUTHENTICATORS, "bearer", lambda request: "u-9")
    application_id = review_application("u-9")
    clock.set(NOW + timedelta(hours=1))
    note = "内部备注：客户情绪激动，额度下调 internal-note-7731"
    status, decided = ops("post", f"/v1/ops/applications/{application_id}/decision",
                          {**decision, "note": note})
    # Then the ops answer and the audit log line keep the note for staff
    assert status == 200 and decided["review_note"] == note
    audit = [r for r in caplog.records if r.getMessage() == "operator decision"]
    assert [(r.note, r.operator) for r in audit] == [(note, "local-operator")]
    # When the borrower reads the application, in Chinese (default) and in English
    answers = {}
    for lang in ("zh", "en"):
        response = client.http.get(f"/v1/applications/{application_id}",
                                   headers={"Authorization": "Bearer t", "Accept-Language": lang})
        assert response.status_code == 200
        answers[lang] = json.loads(response.body)
        # Then the note is nowhere in it, and it holds the operator's reason only
        shown = json.dumps(answers[lang], ensure_ascii=False)
        assert "internal-note-7731" not in shown and "内部备注" not in shown
        assert [r["code"] for r in answers[lang]["reasons"]] == [code]
        # and the decision time is the operator's
        assert answers[lang]["decided_at"] == "2027-01-10T11:00:00+08:00"
    zh, en = answers["zh"]["reasons"][0]["message"], answers["en"]["reasons"][0]["message"]
    assert zh != en and any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en.isascii()


def test_an_operators_approval_within_30_days_of_an_increase_does_not_raise_the_limit(ops, clock):
    from datetime import timedelta
    # Given an operator opened a 500,000 fen line
    first = review_application("u-9")
    ops("post", f"/v1/ops/applications/{first}/decision",
        {"status": "approved", "credit_limit": 500_000, "note": "ok"})
    # When ten days later another operator approves a new application at 800,000 fen
    clock.set(NOW + timedelta(days=10))
    second = review_application("u-9")
    status, decided = ops("post", f"/v1/ops/applications/{second}/decision",
                          {"status": "approved", "credit_limit": 800_000, "note": "ok"})
    # Then it is approved at the current limit, and the borrower is told why
    assert status == 200 and decided["credit_limit"] == 500_000
    assert [r["code"] for r in decided["reasons"]] == ["OPERATOR_APPROVED", "LIMIT_INCREASE_TOO_SOON"]
    line = credit.get_line("u-9")
    assert (line.limit, line.application_id) == (500_000, second)
    # And an approval at a lower limit applies at once
    third = review_application("u-9")
    ops("post", f"/v1/ops/applications/{third}/decision",
        {"status": "approved", "credit_limit": 300_000, "note": "ok"})
    assert credit.get_line("u-9").limit == 300_000


def test_two_approvals_at_once_cannot_both_raise_the_limit(ops, clock, monkeypatch):
    import threading
    from datetime import timedelta
    from infra.local_stack import serialise_aws
    # Given a line opened 40 days ago at 300,000 fen, and two applications in review
    first = review_application("u-9")
    ops("post", f"/v1/ops/applications/{first}/decision",
        {"status": "approved", "credit_limit": 300_000, "note": "ok"})
    clock.set(NOW + timedelta(days=40))
    pending = {600_000: review_application("u-9"), 700_000: review_application("u-9")}
    # When two operators approve them at once (600,000 and 700,000 fen): both read the line
    # before either writes, and the 600,000 one writes first
    both_read = threading.Barrier(2, timeout=10)
    first_written = threading.Event()
    real_get_line, asks, waited = credit.get_line, {}, set()

    def read_then_wait(user_id):
        line = real_get_line(user_id)
        me = threading.get_ident()
        if me in asks and me not in waited:
            waited.add(me)
            both_read.wait()
            if asks[me] == 700_000:
                first_written.wait(10)
        return line

    monkeypatch.setattr(credit, "get_line", read_then_wait)
    answers = {}

    def decide(limit):
        asks[threading.get_ident()] = limit
        answers[limit] = ops("post", f"/v1/ops/applications/{pending[limit]}/decision",
                             {"status": "approved", "credit_limit": limit, "note": "ok"})
        if limit == 600_000:
            first_written.set()

    undo = serialise_aws()
    try:
        threads = [threading.Thread(target=decide, args=(limit,)) for limit in pending]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        undo()
    # Then the first raised the limit, and the second, though it read the line before that
    # raise, was held at the raised limit: one raise in 30 days
    assert len(waited) == 2 and {status for status, _ in answers.values()} == {200}, answers
    codes = {limit: [r["code"] for r in body["reasons"]] for limit, (_, body) in answers.items()}
    assert codes == {600_000: ["OPERATOR_APPROVED"],
                     700_000: ["OPERATOR_APPROVED", "LIMIT_INCREASE_TOO_SOON"]}
    assert {limit: body["credit_limit"] for limit, (_, body) in answers.items()} == {
        600_000: 600_000, 700_000: 600_000}
    line = real_get_line("u-9")
    assert (line.limit, line.application_id) == (600_000, pending[700_000])


def test_an_application_decided_before_shows_no_note_either(client, monkeypatch):
    # Given an application an operator decided when the note was appended to its reasons
    from chalicelib.api.http import AUTHENTICATORS
    from chalicelib.loans.models import ApplicationRecord
    monkeypatch.setitem(AUTHENTICATORS, "bearer", lambda request: "u-9")
    application_id = review_application("u-9")
    record = ApplicationRecord.get(application_id)
    record.update(actions=[
        ApplicationRecord.status.set("declined"), ApplicationRecord.review_queue.remove(),
        ApplicationRecord.reviewed_by.set("someone"), ApplicationRecord.review_note.set("客户很难缠"),
        ApplicationRecord.reasons.set(json.dumps(json.loads(record.reasons) + [
            {"code": "OPERATOR_DECISION", "message": "客户很难缠"}], ensure_ascii=False))])
    # When the borrower reads it, Then only the operator's standard reason shows
    response = client.http.get(f"/v1/applications/{application_id}",
                               headers={"Authorization": "Bearer t"})
    shown = json.loads(response.body)
    assert [r["code"] for r in shown["reasons"]] == ["OPERATOR_DECLINED"]
    assert "客户很难缠" not in json.dumps(shown, ensure_ascii=False)


# ------------------------------------------------------------------ deployed: IAM callers
# (the `prod` stage's own settings through chalice's test client: see `prod_client`)

@pytest.fixture()
def deployed(prod_client):
    def call(method, path, user_arn, body=None):
        identity = {"userArn": user_arn, "accountId": ACCOUNT, "caller": "AROAEXAMPLE:x"} if user_arn else {}
        headers = {"Content-Type": "application/json"}
        with prod_client.identity(identity):
            response = prod_client.http.get(path, headers=headers) if method == "get" else \
                prod_client.http.post(path, body=json.dumps(body).encode(), headers=headers)
        return response.status_code, json.loads(response.body) if response.body else None
    return call


def test_deployed_an_operator_role_session_decides_and_is_recorded(deployed):
    application_id = review_application()
    status, listed = deployed("get", "/v1/ops/reviews", OPERATOR_SESSION)
    assert status == 200 and [a["application_id"] for a in listed["items"]] == [application_id]
    status, decided = deployed("post", f"/v1/ops/applications/{application_id}/decision", OPERATOR_SESSION,
                               {"status": "approved", "credit_limit": 500_000, "note": "核实"})
    assert status == 200 and decided["reviewed_by"] == OPERATOR_SESSION  # who, and in which session
    assert ApplicationRecord.get(application_id).reviewed_by == OPERATOR_SESSION


@pytest.mark.parametrize("foreign", [
    f"arn:aws:sts::{ACCOUNT}:assumed-role/lending-dev-operator/ops-jane",  # the dev stage's role
    f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/mallory",                 # an admin of the account
    f"arn:aws:iam::{ACCOUNT}:user/lending-prod-operator",                 # a user named like the role
    f"arn:aws:iam::{ACCOUNT}:root",
    "arn:aws:sts::999999999999:assumed-role/lending-prod-operator/eve",    # the role's name elsewhere
    None,                                                                  # not signed at all
])
def test_deployed_any_other_principal_is_refused_and_nothing_changes(deployed, foreign):
    application_id = review_application()
    for method, path, body in (("get", "/v1/ops/reviews", None), ("get", "/v1/ops/portfolio", None),
                               ("post", f"/v1/ops/applications/{application_id}/decision",
                                {"status": "approved", "credit_limit": 500_000, "note": "x"})):
        status, answer = deployed(method, path, foreign, body)
        assert status == 403 and answer["error"]["code"] == "OPS_FORBIDDEN", (path, foreign)
    assert ApplicationRecord.get(application_id).status == "review"
    assert credit.get_line("u-9") is None
