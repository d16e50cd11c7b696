"""The ledger anyone can check (issue 16): hash chains posted with the money, daily anchors
written once (DynamoDB and an Object Lock bucket), the borrower's statement, and the operators'
check naming every entry changed, deleted or re-anchored behind the system's back."""
from __future__ import annotations

import importlib.util
import json
from datetime import date, datetime, time, timedelta, timezone

import pytest

from chalicelib.adapters import aws
from chalicelib.core import config
from chalicelib.core.clock import SHANGHAI
from chalicelib.ledger import anchors, audit, statement
from chalicelib.ledger.models import AnchorRecord, ProofRecord
from chalicelib.loans import disbursement
from chalicelib.loans.models import LedgerEntryRecord, LoanRecord
from chalicelib.money import chain
from chalicelib.repay import service as repay
from infra.lambda_events import scheduled_event
from infra.stage import ROOT
from tests import queues
from tests.routes.conftest import NOW, draw

DAY = date(2027, 1, 10)  # NOW in Beijing: the loans below are drawn, paid out and repaid that day


def beijing(day: date, hour: int = 0, minute: int = 5) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(timezone.utc)


def offline_verifier():
    spec = importlib.util.spec_from_file_location("verify_statement", ROOT / "tools" / "verify_statement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def loans(borrower):
    """Two loans paid out on DAY, one of them repaid in part the same day."""
    made = []
    for amount in (120_000, 90_000):
        loan_id = draw(borrower, amount)["loan_id"]
        assert disbursement.disburse(loan_id, NOW) == "active"
        made.append(loan_id)
    repay.repay("u-1", made[0], 30_000, NOW + timedelta(hours=1))
    return made


def close_of_business(client, day: date) -> dict:
    """The scheduled sweep, then its queue drained by the consumer (as Lambda's poller would)."""
    answer = client.lambda_.invoke("close_of_business", scheduled_event(beijing(day), "close_of_business")).payload
    assert queues.drain(client, "closing") == []
    return answer


@pytest.fixture()
def ops(client, aws_stack):
    key = json.loads(aws_stack["secrets"]["ops"])["key"]

    def call(method: str, path: str, body: dict | None = None):
        headers = {"X-Ops-Key": key, "Content-Type": "application/json"}
        response = getattr(client.http, method)(path, headers=headers,
                                                **({"body": json.dumps(body)} if body is not None else {}))
        return response.status_code, json.loads(response.body)
    return call


def test_every_posting_extends_its_loans_chain_and_moves_the_loans_head(loans):
    first = loans[0]
    records = sorted(LedgerEntryRecord.query(first, consistent_read=True), key=lambda r: r.seq)
    assert [(r.seq, r.cause) for r in records] == [(1, "disbursement"), (2, "repayment")]
    assert records[0].prev_hash == chain.GENESIS and records[1].prev_hash == records[0].hash
    assert records[1].prev_entry_id == records[0].entry_id
    loan = LoanRecord.get(first)
    assert (loan.ledger_seq, loan.ledger_head, loan.ledger_head_entry) == (2, records[1].hash, records[1].entry_id)
    assert chain.check_chain(first, [r.link() for r in records], length=2, head=loan.ledger_head) == []
    # the hash is SHA-256 of the previous hash and the canonical JSON, +08:00 time included
    link = records[1].link()
    assert link.at.endswith("+08:00") and link.at.startswith("2027-01-10T11:00")
    assert records[1].hash == chain.entry_hash(records[0].hash, chain.canonical(
        first, 2, link.entry_id, link.at, "repayment", link.lines))


def test_penalties_posted_by_close_of_business_chain_on_after_the_repayment(client, loans):
    late_day = date(2027, 2, 14)  # D+4 of the first installment: penalty days D+1..D+3
    close_of_business(client, late_day)
    # (the first loan's repayment paid its first installment early: only the second is late)
    records = sorted(LedgerEntryRecord.query(loans[1], consistent_read=True), key=lambda r: r.seq)
    assert [(r.seq, r.cause) for r in records] == [(1, "disbursement")] + [(k, "penalty") for k in (2, 3, 4)]
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    for loan_id in loans:
        assert audit.verify(loan_id)["broken"] == []
    assert LoanRecord.get(loans[1]).ledger_seq == 4


def test_close_of_business_anchors_the_day_before_once_in_dynamodb_and_the_locked_bucket(client, loans):
    # When close of business runs the next morning
    answer = close_of_business(client, DAY + timedelta(days=1))

    # Then the day is anchored: the root over both loans' heads, in the table and in S3
    assert answer["anchored"] == [DAY.isoformat()]
    heads = {l: LoanRecord.get(l).ledger_head for l in loans}
    record = AnchorRecord.get(DAY.isoformat())
    assert record.root == chain.root(heads) and (record.loans, record.entries) == (2, 3)
    s3 = aws.client("s3")
    head = s3.head_object(Bucket=config.anchor_bucket(), Key=f"anchors/{DAY}.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    stored = json.loads(s3.get_object(Bucket=config.anchor_bucket(), Key=f"anchors/{DAY}.json")["Body"].read())
    assert stored["root"] == record.root and [l["loan_id"] for l in stored["leaves"]] == sorted(loans)
    # and nobody can delete it
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=config.anchor_bucket(), Key=f"anchors/{DAY}.json", VersionId=head["VersionId"])

    # When the job is replayed (Lambda's retry, `make jobs` with an earlier AT)
    again = close_of_business(client, DAY + timedelta(days=1))

    # Then nothing is written again
    assert again["anchored"] == []
    versions = s3.list_object_versions(Bucket=config.anchor_bucket(), Prefix=f"anchors/{DAY}.json")
    assert len(versions["Versions"]) == 1
    assert AnchorRecord.get(DAY.isoformat()).anchored_at == record.anchored_at


def test_a_run_that_died_after_the_bucket_finishes_the_day_with_the_locked_copy(client, loans):
    # Given a run that put the day's document in the bucket, then died before the record
    heads, read = anchors.day_heads(DAY.isoformat())
    doc = anchors.document(DAY.isoformat(), heads, read)
    aws.client("s3").put_object(Bucket=config.anchor_bucket(), Key=anchors.object_key(DAY.isoformat()),
                                Body=json.dumps(doc).encode(), ChecksumAlgorithm="SHA256")
    # When the job runs again
    close_of_business(client, DAY + timedelta(days=1))
    # Then the record is the bucket's, and the proofs lead to it
    assert AnchorRecord.get(DAY.isoformat()).root == doc["root"]
    assert {p.loan_id for p in ProofRecord.scan()} == set(loans)


def test_days_missed_by_an_outage_are_anchored_in_order_without_gaps(client, loans):
    close_of_business(client, DAY + timedelta(days=1))
    answer = close_of_business(client, DAY + timedelta(days=5))  # four mornings without a run
    assert answer["anchored"] == [(DAY + timedelta(days=k)).isoformat() for k in range(1, 5)]
    empty = AnchorRecord.get((DAY + timedelta(days=2)).isoformat())
    assert (empty.root, empty.loans, empty.entries) == (chain.EMPTY_ROOT, 0, 0)


def test_the_statement_proves_each_anchored_day_offline(client, loans, borrower):
    close_of_business(client, DAY + timedelta(days=1))
    repay.repay("u-1", loans[0], 5_000, beijing(DAY + timedelta(days=1), 12))
    close_of_business(client, DAY + timedelta(days=2))
    saved = statement.statement("u-1", loans[0])
    assert [e["seq"] for e in saved["entries"]] == [1, 2, 3]
    assert [a["date"] for a in saved["anchors"]] == ["2027-01-10", "2027-01-11"]
    assert saved["anchors"][0]["head"] == saved["entries"][1]["hash"]  # that day's last entry
    for anchor in saved["anchors"]:
        assert chain.root_from_proof(loans[0], anchor["head"], anchor["proof"]) == anchor["root"]
    roots = {a.date: a.root for a in AnchorRecord.scan()}
    verifier = offline_verifier()
    assert verifier.verify(saved, roots) == []

    # When someone changes an entry's amount in the table, then re-issues the statement
    tampered = LedgerEntryRecord.get(loans[0], saved["entries"][1]["entry_id"])
    lines = json.loads(tampered.lines)
    lines[0]["debit"] -= 1_000
    lines[1]["credit"] -= 1_000
    tampered.lines = json.dumps(lines)
    tampered.save()
    reissued = statement.statement("u-1", loans[0])

    # Then the new statement fails the offline check against the anchored roots
    problems = verifier.verify(reissued, roots)
    assert problems and any(saved["entries"][1]["entry_id"] in p for p in problems)
    # ...and so does the old one if its entry is edited to match the table
    saved["entries"][1]["lines"] = lines
    saved["entries"][1]["amount"] -= 1_000
    assert verifier.verify(saved, roots)


def test_another_borrowers_statement_is_not_found(loans):
    from chalicelib.core.errors import NotFound
    with pytest.raises(NotFound):
        statement.statement("u-2", loans[0])


def test_verify_names_a_changed_entry_a_deleted_entry_and_a_changed_anchor(client, loans, ops):
    close_of_business(client, DAY + timedelta(days=1))
    status, clean = ops("post", "/v1/ops/ledger/verify", {})
    assert status == 200 and clean["broken"] == [] and clean["checked"] == 3 and clean["anchors"] == 1

    # an amount changed directly in DynamoDB
    repayment = next(r for r in LedgerEntryRecord.query(loans[0]) if r.cause == "repayment")
    lines = json.loads(repayment.lines)
    lines[0]["debit"] += 100
    lines[1]["credit"] += 100
    repayment.lines = json.dumps(lines)
    repayment.save()
    # the other loan's only entry deleted
    gone = next(iter(LedgerEntryRecord.query(loans[1])))
    gone.delete()
    # and the day's anchor rewritten in the table
    anchor = AnchorRecord.get(DAY.isoformat())
    anchor.root = "f" * 64
    anchor.save()

    status, found = ops("post", "/v1/ops/ledger/verify", {})
    assert status == 200
    by_what = {(b["loan_id"], b["entry_id"], b.get("date")) for b in found["broken"]}
    assert (loans[0], repayment.entry_id, None) in by_what
    assert (loans[1], gone.entry_id, None) in by_what
    assert (None, None, DAY.isoformat()) in by_what
    assert all(b["why"] for b in found["broken"])

    # one loan alone
    status, one = ops("post", "/v1/ops/ledger/verify", {"loan_id": loans[0]})
    assert status == 200
    assert [(b["entry_id"], b.get("date")) for b in one["broken"]] == [
        (repayment.entry_id, None),   # its content changed
        (None, DAY.isoformat())]      # its proof no longer leads to the rewritten anchor


def test_the_ops_anchor_route(client, loans, ops):
    close_of_business(client, DAY + timedelta(days=1))
    status, body = ops("get", f"/v1/ops/ledger/anchors/{DAY}")
    assert status == 200 and body["root"] == AnchorRecord.get(DAY.isoformat()).root
    assert (body["loans"], body["entries"]) == (2, 3)
    assert ops("get", "/v1/ops/ledger/anchors/2027-01-09")[0] == 404
    status, bad = ops("get", "/v1/ops/ledger/anchors/20270110")
    assert status == 400 and bad["error"]["code"] == "FIELD_INVALID"
    assert ops("post", "/v1/ops/ledger/verify", {"loan_id": "nope"})[0] == 404


def test_a_days_proofs_cost_two_hashes_a_loan_not_a_tree_each(aws_stack, counted_hashes):
    """At 10 million borrowers a day changes ~460,000 chains: a tree built again for each
    proof (n² hashes) would never finish. Writing 300 proofs hashes about 600 times."""
    from chalicelib.ledger import anchors
    from chalicelib.ledger.models import ProofRecord
    heads = {f"L{n:04d}": chain.entry_hash(chain.GENESIS, str(n)) for n in range(300)}
    doc = anchors.document("2027-01-10", {k: (1, h) for k, h in heads.items()}, 300)
    counted_hashes["hashes"] = 0
    anchors._write_proofs("2027-01-10", doc)
    assert counted_hashes["hashes"] <= 2 * len(heads)
    stored = ProofRecord.get("L0123", "2027-01-10")
    assert chain.root_from_proof("L0123", stored.head, json.loads(stored.proof)) == doc["root"]
