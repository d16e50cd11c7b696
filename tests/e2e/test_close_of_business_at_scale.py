"""Close of business at scale on the running local stack (issue 17): 10,000 active loans, 1,000
of them late, closed by the sweep and the `closing` queue's consumers that `make jobs` and the
stack's own pump run side by side; then every message delivered again, and the day run again.
Each late loan is closed once: its days of penalty posted once, whatever came twice.

The portfolio is written straight into the stack's DynamoDB (as a migration would), with no
ledger entries before: building 10,000 loans through HTTP would take an hour and test nothing
this does not."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, time as clock_time
from decimal import Decimal

import boto3

from chalicelib.core.clock import SHANGHAI
from tests.e2e.conftest import ROOT
from tests.journeys import HttpApi

LOANS, LATE = 10_000, 1_000
LATE_BY = 5  # the late loans' first installment was due five days before the business date


def run(stack, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=stack["env"], capture_output=True,
                          text=True, timeout=timeout)


def states_for(business_date: date) -> tuple[str, list[str]]:
    """A 3-month loan's state whose first installment is LATE_BY days overdue on
    `business_date`, and states with no installment on a reminder day (nor late) then."""
    from chalicelib.money import engine

    def state(paid_out: date) -> engine.LoanState:
        return engine.new_loan(principal=300_000, apr=Decimal("0.18"), term_months=3, method="equal_installment",
                               disbursed_on=paid_out, apr_cap=Decimal("0.24"))

    late, on_time = None, []
    for back in range(10, 45):
        candidate = state(business_date - timedelta(days=back))
        offsets = [(business_date - i.due_date).days for i in candidate.installments]
        if offsets[0] == LATE_BY and late is None:
            late = candidate
        elif all(offset < -3 for offset in offsets):
            on_time.append(candidate)
    assert late is not None and on_time
    return json.dumps(late.to_dict()), [json.dumps(s.to_dict()) for s in on_time]


def seed(dynamo, business_date: date) -> tuple[list[str], list[str]]:
    """Write the portfolio: LATE late loans and LOANS - LATE on time, with their installment
    index items. Returns (late ids, on-time ids)."""
    from bench.common import loan_record
    from chalicelib.loans import schedules
    from chalicelib.loans.models import LoanRecord
    from chalicelib.repay.models import InstallmentRecord

    late_state, on_time_states = states_for(business_date)
    late, on_time, requests = [], [], []
    for n in range(LOANS):
        loan_id = str(uuid.uuid4())
        state = late_state if n < LATE else on_time_states[n % len(on_time_states)]
        (late if n < LATE else on_time).append(loan_id)
        record = loan_record(loan_id, n, status="active", term_months=3, state=state,
                             disburse_at="2026-10-01T00:00:00Z", created_at="2026-10-01T00:00:00Z")
        requests.append((LoanRecord.Meta.table_name, record.serialize()))
        for item in schedules.index_items(loan_id, f"u{n}", "revolving-credit", state):
            requests.append((InstallmentRecord.Meta.table_name, item.serialize()))
    for start in range(0, len(requests), 25):
        batch: dict[str, list] = {}
        for table, item in requests[start:start + 25]:
            batch.setdefault(table, []).append({"PutRequest": {"Item": item}})
        while batch:
            batch = dynamo.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {}
    return late, on_time


def scan(dynamo, table: str, **kwargs) -> list[dict]:
    items, start = [], {}
    while True:
        page = dynamo.scan(TableName=table, **kwargs, **start)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_ten_thousand_loans_a_thousand_late_each_closed_once_even_delivered_twice(stack):
    api, ops = HttpApi(stack["base"]), {"X-Ops-Key": stack["ops_key"]}
    moto = {"endpoint_url": f"http://127.0.0.1:{stack['ports'][1]}", "region_name": "us-east-1",
            "aws_access_key_id": "local", "aws_secret_access_key": "local"}
    dynamo, sqs = boto3.client("dynamodb", **moto), boto3.client("sqs", **moto)
    _, now = api.get("/v1/ops/clock", ops)
    business_date = datetime.fromisoformat(now["now"]).astimezone(SHANGHAI).date() + timedelta(days=1)
    at = datetime.combine(business_date, clock_time(0, 10), SHANGHAI)

    # Given 10,000 active loans, 1,000 of them five days past their first due date
    started = time.monotonic()
    late, on_time = seed(dynamo, business_date)
    seeded_s = time.monotonic() - started

    # When the night's jobs run (`make jobs`): the sweep queues the late loans, the consumers
    # of this process and of the stack's pump close them
    started = time.monotonic()
    first = run(stack, "-m", "infra.local_stack", "jobs", "--at", at.isoformat())
    closed_s = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]

    # ...and then every late loan's message comes again, and the same night runs again (its
    # sweep queues all 1,000 once more): 2,000 more deliveries of the same 1,000 loans
    queue_url = sqs.get_queue_url(QueueName="lending-local-closing")["QueueUrl"]
    body = {"business_date": business_date.isoformat(), "at": at.isoformat()}
    for start in range(0, LATE, 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(n), "MessageBody": json.dumps({"loan_id": loan_id, **body})}
            for n, loan_id in enumerate(late[start:start + 10])])
    again = run(stack, "-m", "infra.local_stack", "jobs", "--at", at.isoformat())
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]

    # Then each late loan is overdue with its 4 days of penalty (D+1 .. X-1 for its first
    # installment) posted exactly once, and no loan on time was touched
    status = {item["loan_id"]["S"]: item["status"]["S"]
              for item in scan(dynamo, "lending-local-loans", ProjectionExpression="loan_id, #s",
                               ExpressionAttributeNames={"#s": "status"})}
    assert Counter(status[loan_id] for loan_id in late) == {"overdue": LATE}
    assert Counter(status[loan_id] for loan_id in on_time) == {"active": LOANS - LATE}
    entries = scan(dynamo, "lending-local-ledger", ProjectionExpression="loan_id, entry_id, #c",
                   ExpressionAttributeNames={"#c": "cause"})
    assert all(e["cause"]["S"] == "penalty" for e in entries)
    per_loan = Counter(e["loan_id"]["S"] for e in entries)
    assert set(per_loan) == set(late) and set(per_loan.values()) == {LATE_BY - 1}
    assert len({(e["loan_id"]["S"], e["entry_id"]["S"]) for e in entries}) == LATE * (LATE_BY - 1)
    # ...with every late loan's chain whole (and the queue and its dead letters empty)
    sample = run(stack, "-m", "infra.verify_ledger", "--loan", late[0])
    assert sample.returncode == 0, sample.stdout + sample.stderr
    for name in ("lending-local-closing", "lending-local-closing-dlq"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                       "ApproximateNumberOfMessagesNotVisible"])
        assert sum(int(v) for v in attrs["Attributes"].values()) == 0, (name, attrs)
    print(f"\nseeded {LOANS} loans in {seeded_s:.0f} s; the night with {LATE} late closed in {closed_s:.0f} s")
