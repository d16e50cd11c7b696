"""The portfolio's aggregates (issue 17): kept by every write that changes a loan, read in one
BatchGet whatever the size of the book, moved at close of business as days pass, and checked
every night against a recount that reports any drift."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import pytest

from bench.common import counting_reads
from chalicelib.core.clock import SHANGHAI
from chalicelib.loans import aggregates, disbursement
from chalicelib.loans import service as loans_service
from chalicelib.loans.models import LoanRecord
from chalicelib.repay import service as repay
from infra.lambda_events import scheduled_event
from tests.routes.conftest import NOW, draw, loan_of_its_own

FIRST_DUE = date(2027, 2, 10)  # a loan paid out on NOW (2027-01-10)


def consistent(on: date | None = None) -> dict:
    """The counters, after checking they equal a recount of the loans (by stored bucket, and
    by the bucket each loan has on `on` when given)."""
    counted = aggregates.read()
    assert aggregates.drift(counted, aggregates.recount()) == []
    if on is not None:
        assert aggregates.drift(counted, aggregates.recount(on)) == []
    return counted


def test_every_write_that_changes_a_loan_moves_the_counters_with_it(borrower):
    # A draw (scheduled), a second one cancelled, a third whose payout is refused
    kept = draw(borrower, 300_000)["loan_id"]
    cancelled = draw(borrower, 50_000)["loan_id"]
    counted = consistent()
    assert counted["by_status"]["scheduled"] == {"count": 2, "outstanding_principal": 350_000}
    loans_service.cancel("u-1", cancelled, NOW)
    refused = draw(borrower, 70_000, card="c-0000")["loan_id"]
    assert disbursement.disburse(refused, NOW) == "failed"
    # ...the first paid out, then part repaid
    assert disbursement.disburse(kept, NOW) == "active"
    counted = consistent(NOW.date())
    assert counted["by_status"]["cancelled"] == {"count": 1, "outstanding_principal": 0}
    assert counted["by_status"]["failed"] == {"count": 1, "outstanding_principal": 0}
    assert counted["by_status"]["active"] == {"count": 1, "outstanding_principal": 300_000}
    assert counted["by_days_past_due"]["0"] == {"count": 1, "outstanding_principal": 300_000}
    repaid = repay.repay("u-1", kept, 10_000, NOW + timedelta(days=3))  # less than an installment
    counted = consistent()
    assert counted["by_status"]["active"]["outstanding_principal"] == repaid["loan"]["outstanding_principal"] < 300_000

    # When the first installment is missed: the grace day, then overdue, then 31 days
    repay.close_of_business(FIRST_DUE + timedelta(days=1), NOW)
    counted = consistent(FIRST_DUE + timedelta(days=1))
    assert counted["by_status"]["active"]["count"] == 1  # still active on the grace day
    assert counted["by_days_past_due"]["1-30"]["count"] == 1 and counted["by_days_past_due"]["0"]["count"] == 0
    repay.close_of_business(FIRST_DUE + timedelta(days=2), NOW)
    assert consistent(FIRST_DUE + timedelta(days=2))["by_status"]["overdue"]["count"] == 1
    repay.close_of_business(FIRST_DUE + timedelta(days=31), NOW)
    counted = consistent(FIRST_DUE + timedelta(days=31))
    assert counted["by_days_past_due"]["31-60"]["count"] == 1 and counted["by_days_past_due"]["1-30"]["count"] == 0

    # When everything is paid off, the loan leaves the live buckets
    paid_on = datetime.combine(FIRST_DUE + timedelta(days=32), time(10), SHANGHAI)
    repay.repay("u-1", kept, repay.payoff("u-1", kept, None, paid_on)["amount"], paid_on)
    counted = consistent()
    assert LoanRecord.get(kept).status == "closed"
    assert counted["by_status"]["closed"] == {"count": 1, "outstanding_principal": 0}
    assert all(cell["count"] == 0 for cell in counted["by_days_past_due"].values())


def test_the_sweep_queues_a_loan_on_its_grace_day_so_its_bucket_moves_that_night(client, borrower):
    loan_id = draw(borrower, 100_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    at = datetime.combine(FIRST_DUE + timedelta(days=1), time(0, 5), SHANGHAI).astimezone(timezone.utc)
    answer = client.lambda_.invoke("close_of_business", scheduled_event(at, "close_of_business")).payload
    assert answer["queued"] == 1  # due yesterday: not late yet, but one day past due
    from tests import queues
    assert queues.drain(client, "closing") == []
    assert LoanRecord.get(loan_id).dpd_bucket == "1-30"
    assert consistent(FIRST_DUE + timedelta(days=1))["by_days_past_due"]["1-30"]["count"] == 1


@pytest.mark.parametrize("loans", [1, 12])
def test_the_portfolio_is_one_read_of_the_counter_shards_however_many_loans(client, aws_stack, borrower, loans):
    for n in range(loans):
        loan_of_its_own(f"u-{100 + n}", 100_000 + n)
    key = json.loads(aws_stack["secrets"]["ops"])["key"]
    with counting_reads() as reads:
        response = client.http.get("/v1/ops/portfolio", headers={"X-Ops-Key": key})
    report = json.loads(response.body)
    assert response.status_code == 200 and report["by_status"]["active"]["count"] == loans
    assert reads["calls"] == 1 and reads["items"] <= aggregates.SHARDS


def test_the_nightly_check_reports_drift_injected_into_a_counter(client, borrower, last_metrics, caplog):
    loan_id = draw(borrower, 200_000)["loan_id"]
    assert disbursement.disburse(loan_id, NOW) == "active"
    at = datetime.combine(NOW.date() + timedelta(days=1), time(3), SHANGHAI)
    clean = client.lambda_.invoke("portfolio_check", scheduled_event(at, "portfolio_check")).payload
    assert clean["drift"] == [] and last_metrics["PortfolioDrift"] == 0

    # When someone (or a write path that forgot them) changes a counter shard
    shard = aggregates.PortfolioShardRecord(shard=7)
    shard.update(actions=[aggregates.PortfolioShardRecord.p_status_active.add(5_000)])

    # Then the next check names the cell, logs it and counts it
    report = client.lambda_.invoke("portfolio_check", scheduled_event(at, "portfolio_check")).payload
    assert report["drift"] == [{"group": "by_status", "name": "active", "field": "outstanding_principal",
                                "counters": 205_000, "recount": 200_000}]
    assert last_metrics["PortfolioDrift"] == 1
    assert any(getattr(r, "cell", None) == "by_status.active.outstanding_principal" for r in caplog.records)


def test_a_transaction_that_meets_another_on_a_counter_shard_is_retried_not_failed(borrower, monkeypatch):
    """DynamoDB cancels a transaction that meets another in flight on one of its items
    (TransactionConflict); the counter shards make that likelier. A cancelled transaction wrote
    nothing, so it is sent again (moto never conflicts: the answer is injected)."""
    import botocore.client
    from botocore.exceptions import ClientError

    original = botocore.client.BaseClient._make_api_call
    conflicts = {"left": 2}

    def call(client, operation, params):  # type: ignore[no-untyped-def]
        if operation == "TransactWriteItems" and conflicts["left"]:
            conflicts["left"] -= 1
            reasons = [{"Code": "None"}] * (len(params["TransactItems"]) - 1) + [{"Code": "TransactionConflict"}]
            raise ClientError({"Error": {"Code": "TransactionCanceledException",
                                         "Message": "Transaction cancelled [TransactionConflict]"},
                               "CancellationReasons": reasons}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)
    loan_id = draw(borrower, 100_000)["loan_id"]
    assert conflicts["left"] == 0
    assert LoanRecord.get(loan_id).status == "scheduled"
    assert consistent()["by_status"]["scheduled"] == {"count": 1, "outstanding_principal": 100_000}
