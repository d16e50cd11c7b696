"""The ledger as an outsider checks it, on the running local stack (issue 16): a loan paid out
and repaid through HTTP, the day anchored by `make jobs`, `make verify-ledger` clean; the
borrower's statement checked offline by tools/verify_statement.py against the root the
operators' route gives; then an entry changed behind the system's back, and both checks
name it."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, time, timedelta

import boto3

from chalicelib.core.clock import SHANGHAI
from tests.e2e.conftest import ROOT
from tests.journeys import HttpApi, approved_loan, card_ending, ready_borrower, with_key


def run(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=stack["env"], capture_output=True,
                          text=True, timeout=300)


def test_a_day_anchored_by_make_jobs_verifies_and_a_changed_entry_is_named(stack, tmp_path):
    api, ops = HttpApi(stack["base"]), {"X-Ops-Key": stack["ops_key"]}
    me = ready_borrower(api, stack["outbox"], openid="ledger-1", phone="13700005555", card=card_ending("5678"))
    auth = me["headers"]
    _, drawn = approved_loan(api, auth, me["card_id"], amount=600_000)
    loan_id = drawn["loan_id"]
    _, now = api.get("/v1/ops/clock", ops)
    today = datetime.fromisoformat(now["now"]).date()

    # Paid out by the sweep, then repaid in part, the same day
    paid_out = run(stack, "-m", "infra.local_stack", "jobs", "--at",
                   (datetime.fromisoformat(now["now"]) + timedelta(minutes=2)).isoformat())
    assert paid_out.returncode == 0, paid_out.stderr[-2000:]
    status, repaid = api.post(f"/v1/loans/{loan_id}/repayments", {"amount": 20_000}, with_key(auth))
    assert status == 201, repaid

    # When the next morning's jobs run (close of business anchors the day before)
    morning = datetime.combine(today + timedelta(days=1), time(0, 10), SHANGHAI)
    done = run(stack, "-m", "infra.local_stack", "jobs", "--at", morning.isoformat())
    assert done.returncode == 0, done.stderr[-2000:]

    # Then the day's anchor is there, and make verify-ledger finds every chain and anchor whole
    status, anchor = api.get(f"/v1/ops/ledger/anchors/{today}", ops)
    assert status == 200 and anchor["loans"] >= 1 and anchor["entries"] >= 2, anchor
    clean = run(stack, "-m", "infra.verify_ledger")
    assert clean.returncode == 0 and "every chain and anchor holds" in clean.stdout, clean.stdout + clean.stderr

    # ...and the borrower's statement checks offline against that root
    status, statement = api.get(f"/v1/loans/{loan_id}/statement", auth)
    assert status == 200 and [e["kind"] for e in statement["entries"]] == ["disbursement", "repayment"]
    assert [a["date"] for a in statement["anchors"]] == [str(today)]
    saved = tmp_path / "statement.json"
    saved.write_text(json.dumps(statement, ensure_ascii=False))
    offline = run(stack, "tools/verify_statement.py", str(saved), "--root", f"{today}={anchor['root']}")
    assert offline.returncode == 0, offline.stdout + offline.stderr

    # When someone changes the repayment's amount directly in the table
    dynamo = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{stack['ports'][1]}", region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    entry_id = statement["entries"][1]["entry_id"]
    key = {"loan_id": {"S": loan_id}, "entry_id": {"S": entry_id}}
    item = dynamo.get_item(TableName="lending-local-ledger", Key=key)["Item"]
    lines = json.loads(item["lines"]["S"])
    lines[0]["debit"] += 10_000
    lines[-1]["credit"] += 10_000
    dynamo.update_item(TableName="lending-local-ledger", Key=key, UpdateExpression="SET #l = :l",
                       ExpressionAttributeNames={"#l": "lines"}, ExpressionAttributeValues={":l": {"S": json.dumps(lines)}})

    # Then make verify-ledger names the loan and the entry
    broken = run(stack, "-m", "infra.verify_ledger")
    assert broken.returncode == 1 and f"{loan_id} {entry_id}" in broken.stdout, broken.stdout + broken.stderr
    # ...and the statement the system gives now fails the offline check against the same root
    _, reissued = api.get(f"/v1/loans/{loan_id}/statement", auth)
    saved.write_text(json.dumps(reissued, ensure_ascii=False))
    offline = run(stack, "tools/verify_statement.py", str(saved), "--root", f"{today}={anchor['root']}")
    assert offline.returncode == 1 and entry_id in offline.stdout, offline.stdout
