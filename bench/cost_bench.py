"""The AWS bill of one 12-month loan's life, and of a million decisions (issue 17).

One borrower's whole life runs in process on moto through the real routes and handlers
(chalice's test client, as the route tests): sign-up (WeChat, SMS code, phone, real name, card),
an application, a drawdown, the payout (sweep, consumer), twelve repayments on their due dates
with the reminders before each, one installment paid three days late (two close-of-business
days of penalty), the ledger's daily anchors. Every AWS request the code makes is recorded by
phase (one hook under botocore, whatever client makes it), with DynamoDB's capacity units
computed from the items' sizes by DynamoDB's documented rules (moto's `ConsumedCapacity` is a
constant, so it cannot be used): reads 4 KB units (half for eventually consistent), writes 1 KB
units, transactions twice, and each global secondary index a written item lands in (its
projection's size). Lambda invocations are counted per handler call (the bearer authorizer once
per authenticated request: its cache is off, ttl 0) and their duration measured here; API
Gateway requests are the HTTP calls. CloudWatch Logs ingestion is the bytes the code logs.

`bench/prices.json` prices them (one file: region, date, source of each price). The figures
are printed as JSON by `python -m bench.cost_bench`; `bench/run.py` turns them into the cost
table of bench/README.md.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, time as clock_time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from bench.common import ROOT, emit, moto_account

PRICES = ROOT / "bench" / "prices.json"
READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


# ---- DynamoDB item sizes and capacity units (DynamoDB developer guide, "Item sizes") --------

def value_size(value: dict[str, Any]) -> int:
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = len(str(v).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(e) for k, e in v.items())
    return len(json.dumps(v))


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    return units * 2 if transactional else units if consistent else units / 2


def write_units(size: int, transactional: bool = False) -> int:
    units = max(1, math.ceil(size / 1024))
    return units * 2 if transactional else units


class Dynamo:
    """The tables' keys and indexes (from the pynamodb models), and an unrecorded client to
    read an item as a write left it."""

    def __init__(self) -> None:
        import boto3

        from chalicelib.adapters.db import TABLES
        self.client = boto3.client("dynamodb")
        self.indexes: dict[str, list[tuple[list[str], str, list[str]]]] = {}
        self.keys: dict[str, list[str]] = {}
        for model in TABLES:
            name = model.Meta.table_name
            self.keys[name] = [a.attr_name for a in (model._hash_key_attribute(), model._range_key_attribute()) if a]
            found = []
            for index in model._indexes.values():
                keys = [a.attr_name for a in index.Meta.attributes.values() if a.is_hash_key or a.is_range_key]
                projection = index.Meta.projection
                found.append((keys, projection.projection_type, list(getattr(projection, "non_key_attributes", None) or [])))
            self.indexes[name] = found

    def stored(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def index_units(self, table: str, item: dict[str, Any] | None) -> int:
        """Write units a written item costs in the table's global secondary indexes it is in
        (an index is updated after the transaction, at the standard rate)."""
        if not item:
            return 0
        units = 0
        for keys, projection, included in self.indexes.get(table, []):
            if not all(k in item for k in keys):
                continue  # a sparse index the item is not in
            base = self.keys[table] + keys
            if projection == "ALL":
                projected = item
            else:
                names = set(base) | (set(included) if projection == "INCLUDE" else set())
                projected = {k: v for k, v in item.items() if k in names}
            units += write_units(item_size(projected))
        return units


def short_name(table: str) -> str:
    """A table's name without the stage's prefix (`loans`, not `lending-bench-loans`)."""
    from chalicelib.core import config
    return table.removeprefix(config.resource_prefix() + "-")


# ---- the recorder ------------------------------------------------------------------------------

class Recorder:
    def __init__(self, dynamo: Dynamo, outbox: Path) -> None:
        self.dynamo = dynamo
        self.outbox = outbox
        self._phase = "setup"
        self._texts = 0
        self.calls: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.lambdas: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.api_requests: dict[str, int] = defaultdict(int)
        self.log_bytes: dict[str, int] = defaultdict(int)
        self.sms: dict[str, int] = defaultdict(int)
        # read and write units by table (writes with their indexes), per phase: what dominates
        self.by_table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._inside = False

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, name: str) -> None:
        """Texts the sandbox sender wrote since the last change (SMS go to the outbox locally,
        to the SMS vendor when deployed) belong to the phase that ends."""
        self.settle()
        self._phase = name

    def settle(self) -> None:
        texts = len(self.outbox.read_text().splitlines()) if self.outbox.exists() else 0
        self.sms[self._phase] += texts - self._texts
        self._texts = texts

    def count(self, name: str, value: float = 1) -> None:
        self.calls[self.phase][name] += value

    def record(self, service: str, operation: str, params: dict[str, Any], answer: dict[str, Any]) -> None:
        if service == "dynamodb":
            self._dynamo(operation, params, answer)
        elif service == "sqs":
            entries = len(params.get("Entries", [])) or 1
            if operation in ("SendMessage", "SendMessageBatch"):
                body = sum(len(e.get("MessageBody", "")) for e in params.get("Entries", [params]))
                self.count("sqs_requests", max(1, math.ceil(body / 65536)) if operation == "SendMessage"
                           else max(1, math.ceil(body / 65536)))
                self.count("sqs_messages", entries)
            elif operation not in ("GetQueueUrl", "GetQueueAttributes"):
                self.count("sqs_requests")
        elif service == "kms":
            self.count("kms_requests")
        elif service == "secretsmanager":
            self.count("secrets_requests")
        elif service == "sns":
            self.count("sns_requests")
            if "PhoneNumber" in params:
                self.sms[self.phase] += 1
        elif service == "s3":
            self.count("s3_put" if operation.startswith("Put") else "s3_get")
        else:
            self.count(f"{service}_requests")

    def _dynamo(self, operation: str, params: dict[str, Any], answer: dict[str, Any]) -> None:
        dynamo = self.dynamo
        if operation == "GetItem":
            self._read(params["TableName"], read_units(item_size(answer.get("Item")), params.get("ConsistentRead", False)))
        elif operation == "BatchGetItem":
            for table, items in answer.get("Responses", {}).items():
                consistent = params["RequestItems"][table].get("ConsistentRead", False)
                for item in items:
                    self._read(table, read_units(item_size(item), consistent))
        elif operation in ("Query", "Scan"):
            size = sum(item_size(i) for i in answer.get("Items", []))
            self._read(params["TableName"], read_units(size, params.get("ConsistentRead", False)))
        elif operation == "TransactGetItems":
            for got, entry in zip(answer.get("Responses", []), params["TransactItems"]):
                self._read(entry["Get"]["TableName"], read_units(item_size(got.get("Item")), True, transactional=True))
        elif operation == "PutItem":
            self._written(params["TableName"], params["Item"], False)
        elif operation == "UpdateItem":
            self._written(params["TableName"], answer.get("Attributes") or dynamo.stored(params["TableName"], params["Key"]),
                          False)
        elif operation == "DeleteItem":
            self.count("ddb_wru", 1)
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        self._written(table, request["PutRequest"]["Item"], False)
                    else:
                        self.count("ddb_wru", 1)
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, op), = entry.items()
                table = op["TableName"]
                if kind == "Put":
                    self._written(table, op["Item"], True)
                elif kind == "Update":
                    self._written(table, dynamo.stored(table, op["Key"]), True)
                else:  # ConditionCheck and Delete consume write units too
                    self.count("ddb_wru", 2)

    def _read(self, table: str, units: float) -> None:
        self.count("ddb_rru", units)
        self.by_table[self.phase][f"{short_name(table)} rru"] += units

    def _written(self, table: str, item: dict[str, Any] | None, transactional: bool) -> None:
        units = write_units(item_size(item), transactional) + self.dynamo.index_units(table, item)
        self.count("ddb_wru", units)
        self.by_table[self.phase][f"{short_name(table)} wru"] += units

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import botocore.client
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def call(client, operation, params):  # type: ignore[no-untyped-def]
            answer = original(client, operation, params)
            if not recorder._inside:
                recorder._inside = True
                try:
                    recorder.record(client.meta.service_model.service_name, operation, params, answer)
                finally:
                    recorder._inside = False
            return answer

        botocore.client.BaseClient._make_api_call = call
        try:
            yield
        finally:
            botocore.client.BaseClient._make_api_call = original

    def invoked(self, function: str, seconds: float) -> None:
        self.lambdas[self.phase][f"{function}:n"] += 1
        self.lambdas[self.phase][f"{function}:s"] += seconds


class LogCounter(io.TextIOBase):
    """The stream of the service's log handlers while the life runs: counts the bytes logged
    (what CloudWatch Logs ingests), at the production stage's level, and drops them."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def write(self, text: str) -> int:
        self.recorder.log_bytes[self.recorder.phase] += len(text.encode())
        return len(text)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import logging

        from infra.stage import chalice_config
        level = chalice_config()["stages"]["prod"]["environment_variables"].get("POWERTOOLS_LOG_LEVEL", "INFO")
        logger = logging.getLogger("lending")
        saved = logger.level, [(h, h.stream) for h in logger.handlers if hasattr(h, "stream")]
        logger.setLevel(level)
        for handler, _ in saved[1]:
            handler.stream = self
        try:
            with contextlib.redirect_stdout(self):  # the metrics (EMF) are printed, and ingested too
                yield
        finally:
            logger.setLevel(saved[0])
            for handler, stream in saved[1]:
                handler.stream = stream


# ---- one loan's life ---------------------------------------------------------------------------

START = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)  # 10:00 Beijing


def beijing(day: date, hour: int, minute: int = 0) -> datetime:
    from chalicelib.core.clock import SHANGHAI
    return datetime.combine(day, clock_time(hour, minute), SHANGHAI).astimezone(timezone.utc)


def life(recorder: Recorder, outbox: Path) -> dict[str, Any]:
    from chalice.test import Client

    from app import app
    from chalicelib import wiring
    from chalicelib.adapters import aws
    from chalicelib.core.clock import FixedClock, SHANGHAI
    from chalicelib.loans.models import LoanRecord
    from chalicelib.loans.schedules import load
    from infra.lambda_events import scheduled_event, sqs_event, sqs_record
    from tests.journeys import ChaliceApi, card_ending, ready_borrower, with_key, GOOD_APPLICANT

    clock = FixedClock(START)
    wiring.override("clock", clock)
    client = Client(app, stage_name="local", project_dir=str(ROOT))

    class TimedApi(ChaliceApi):
        def _call(self, method, path, body=None, headers=None):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            answer = super()._call(method, path, body, headers)
            recorder.invoked("api_handler", time.perf_counter() - started)
            recorder.api_requests[recorder.phase] += 1
            if headers and "Authorization" in headers:
                recorder.invoked("bearer_authorizer", 0.0)  # timed inside api_handler's figure
            return answer

    api = TimedApi(client)

    def invoke(function: str, event: dict) -> Any:
        started = time.perf_counter()
        answer = client.lambda_.invoke(function, event).payload
        recorder.invoked(function, time.perf_counter() - started)
        return answer

    def drain(key: str) -> None:
        consumer = {"disbursements": "disbursement_consumer", "notifications": "notification_consumer",
                    "closing": "close_of_business_consumer", "reminding": "reminder_consumer"}[key]
        sqs, url = aws.client("sqs"), aws.queue_url(key)
        arn = f"arn:aws:sqs:us-east-1:123456789012:{url.rsplit('/', 1)[1]}"
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return
            answer = invoke(consumer, sqs_event([sqs_record(m, arn) for m in messages]))
            assert answer == {"batchItemFailures": []}, answer
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])

    def job(name: str, at: datetime) -> None:
        clock.set(at)
        invoke(name, scheduled_event(at, name))
        if name == "reminders":  # the sweep queued the day's pages
            drain("reminding")

    recorder.phase = "sign_up"
    me = ready_borrower(api, outbox, openid=f"cost-{uuid.uuid4().hex[:8]}", phone="13800001234",
                        card=card_ending("4321"))
    drain("notifications")
    auth = me["headers"]

    recorder.phase = "application"
    status, decision = api.post("/v1/applications", {
        "product_id": "revolving-credit", "amount": 3_000_000, "term_months": 12, "purpose": "装修",
        "applicant": GOOD_APPLICANT}, with_key(auth))
    assert status == 201 and decision["status"] == "approved", decision

    recorder.phase = "drawdown"
    status, loan = api.post("/v1/loans", {
        "application_id": decision["application_id"], "amount": 1_200_000, "term_months": 12,
        "repayment_method": "equal_installment", "bank_card_id": me["card_id"]}, with_key(auth))
    assert status == 201, loan
    loan_id = loan["loan_id"]

    recorder.phase = "disbursement"
    clock.set(START + timedelta(minutes=1))
    drain("disbursements")  # the draw queued it at once; the minute sweep is the safety net
    drain("notifications")
    assert LoanRecord.get(loan_id).status == "active"

    # Each day is anchored by the next morning's close of business. A day holding this loan's
    # entries is the loan's cost ("ledger_anchor"); the others (an empty root, one S3 object)
    # are the system's whatever the book ("idle_anchor", priced per day).
    from chalicelib.ledger import anchors
    state = load(LoanRecord.get(loan_id).state)
    dues = [i.due_date for i in state.installments]
    late_installment = 6  # paid three days late: two close-of-business days post penalty
    paid_out = START.astimezone(SHANGHAI).date()
    entry_days = {paid_out}
    anchored = {"through": paid_out - timedelta(days=1), "loan_days": 0, "idle_days": 0}

    def anchor_until(last: date) -> None:
        day = anchored["through"] + timedelta(days=1)
        while day <= last:
            mine = day in entry_days
            recorder.phase = "ledger_anchor" if mine else "idle_anchor"
            anchored["loan_days" if mine else "idle_days"] += 1
            at = beijing(day + timedelta(days=1), 0, 5)
            clock.set(at)
            started = time.perf_counter()
            anchors.anchor_through(day, at)
            recorder.lambdas[recorder.phase]["close_of_business:s"] += time.perf_counter() - started
            anchored["through"] = day
            day += timedelta(days=1)

    def close_of_business(day: date, phase: str = "close_of_business") -> None:
        anchor_until(day - timedelta(days=1))  # the handler's own anchoring finds it done
        recorder.phase = phase
        clock.set(beijing(day, 0, 5))
        invoke("close_of_business", scheduled_event(beijing(day, 0, 5), "close_of_business"))
        drain("closing")

    for number, due in enumerate(dues, start=1):
        recorder.phase = "reminder"
        for offset in (-3, -1, 0):
            job("reminders", beijing(due + timedelta(days=offset), 9))
            drain("notifications")
        pay_on = due + timedelta(days=3 if number == late_installment else 0)
        if number == late_installment:
            for offset in (1, 3):
                recorder.phase = "reminder"
                job("reminders", beijing(due + timedelta(days=offset), 9))
                drain("notifications")
            for day in (due + timedelta(days=1), due + timedelta(days=2), due + timedelta(days=3)):
                close_of_business(day)  # the grace day's bucket move, then two days of penalty
                entry_days.add(day)
        recorder.phase = "repayment"
        clock.set(beijing(pay_on, 10))
        status, owed = api.get(f"/v1/loans/{loan_id}", auth)  # the borrower looks before paying
        this = next(i for i in owed["schedule"] if i["installment"] == number)
        due_now = this["total"] - this["paid"]
        if number == len(dues):  # the last: exactly what closes the loan
            status, quote = api.get(f"/v1/loans/{loan_id}/payoff", auth)
            due_now = quote["amount"]
        status, paid = api.post(f"/v1/loans/{loan_id}/repayments", {"amount": due_now}, with_key(auth))
        assert status == 201, paid
        drain("notifications")
        entry_days.add(pay_on)
    assert LoanRecord.get(loan_id).status == "closed"
    after = dues[-1] + timedelta(days=2)
    anchor_until(after - timedelta(days=1))
    # What runs whatever the book: one idle run of each job (priced per month below)
    for name in ("reminders", "disbursement_sweep", "repayment_reconciler"):
        recorder.phase = f"idle_{name}"
        job(name, beijing(after, 12))
    close_of_business(after, phase="idle_close_of_business")
    recorder.phase = "after"
    return {"loan_id": loan_id, "installments": len(dues), "anchored_loan_days": anchored["loan_days"],
            "idle_anchor_days": anchored["idle_days"], "late_days_closed": 3}


def decisions(recorder: Recorder, count: int = 20) -> None:
    """`count` applications by one signed-in borrower (their average is a decision's cost)."""
    from chalice.test import Client

    from app import app
    from tests.journeys import GOOD_APPLICANT, ChaliceApi, with_key
    api = ChaliceApi(Client(app, stage_name="local", project_dir=str(ROOT)))
    recorder.phase = "decision_setup"
    status, signed = api.post("/v1/auth/wechat", {"code": f"dev-decisions-{uuid.uuid4().hex[:6]}"})
    auth = {"Authorization": f"Bearer {signed['access_token']}"}
    recorder.phase = "decision"
    for n in range(count):
        started = time.perf_counter()
        status, _ = api.post("/v1/applications", {
            "product_id": "revolving-credit", "amount": 1_000_000 + n, "term_months": 12, "purpose": "装修",
            "applicant": GOOD_APPLICANT}, with_key(auth))
        recorder.invoked("api_handler", time.perf_counter() - started)
        recorder.invoked("bearer_authorizer", 0.0)
        recorder.api_requests["decision"] += 1
    recorder.calls["decision"]["decisions"] = count


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        outbox = Path(work) / "outbox.jsonl"
        os.environ["OUTBOX_PATH"] = str(outbox)
        with moto_account():
            recorder = Recorder(Dynamo(), outbox)
            with recorder.installed(), LogCounter(recorder).installed():
                facts = life(recorder, outbox)
                decisions(recorder)
                recorder.settle()
    return {"life": facts, "calls": {k: dict(v) for k, v in recorder.calls.items()},
            "lambdas": {k: dict(v) for k, v in recorder.lambdas.items()},
            "units_by_table": {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in recorder.by_table.items()},
            "api_requests": dict(recorder.api_requests), "log_bytes": dict(recorder.log_bytes),
            "sms": dict(recorder.sms), "prices": json.loads(PRICES.read_text())}


# ---- the bill ----------------------------------------------------------------------------------

LIFE = ("sign_up", "application", "drawdown", "disbursement", "reminder", "repayment", "close_of_business",
        "ledger_anchor")
RUNS_PER_MONTH = {"idle_disbursement_sweep": 30 * 24 * 60, "idle_repayment_reconciler": 30 * 24 * 12,
                  "idle_reminders": 30, "idle_close_of_business": 30, "idle_anchor": 30}
# A daily job's own part (its index queries on an idle day, its invocation) is the system's:
# taken out of the loan's phase once per run of the job there.
DAILY_PART = {"reminder": ("reminders", "idle_reminders"),  # the sweep and its empty pages
              "close_of_business": ("close_of_business", "idle_close_of_business")}
# Lambda's SQS event source long-polls each queue with at least 5 pollers, 20 s a receive when
# idle (the queues' ReceiveMessageWaitTimeSeconds): requests a month per queue, billed by SQS.
IDLE_POLLS_PER_QUEUE = 5 * 30 * 24 * 3600 // 20


def memory_gb(function: str) -> float:
    from infra.stage import function_setting
    return int(function_setting("prod", function, "lambda_memory_size", 128)) / 1024


def unit_prices(prices: dict[str, Any]) -> dict[str, float]:
    """USD per unit (one request, one GB-second, one GB) from bench/prices.json's main table."""
    return {k: v["price"] / v["per"] for k, v in prices["prices_usd"].items()}


def china_unit_prices(prices: dict[str, Any]) -> dict[str, float]:
    """CNY per unit at the China regions' prices found offline (`china_cross_check`), the main
    table's at the exchange rate for the rest."""
    cny = {k: usd * prices["usd_to_cny"] for k, usd in unit_prices(prices).items()}
    cny.update({k: v["price"] / v["per"] for k, v in prices["china_cross_check"]["prices_cny"].items()})
    return cny


def phase_cost(figures: dict[str, Any], phase: str, p: dict[str, float]) -> dict[str, float]:
    """Cost by service of one phase of the recorded run, at the unit prices `p`."""
    calls = figures["calls"].get(phase, {})
    lambdas = figures["lambdas"].get(phase, {})
    invocations = sum(v for k, v in lambdas.items() if k.endswith(":n"))
    gb_seconds = sum(v * memory_gb(k[:-2]) for k, v in lambdas.items() if k.endswith(":s"))
    return {
        "lambda": invocations * p["lambda_request"] + gb_seconds * p["lambda_gb_second"],
        "api_gateway": figures["api_requests"].get(phase, 0) * p["api_gateway_rest_request"],
        "dynamodb": calls.get("ddb_wru", 0) * p["ddb_write_request_unit"] + calls.get("ddb_rru", 0) * p["ddb_read_request_unit"],
        "sqs": calls.get("sqs_requests", 0) * p["sqs_request"],
        "kms": calls.get("kms_requests", 0) * p["kms_request"],
        "secrets_manager": calls.get("secrets_requests", 0) * p["secrets_request"],
        "s3": calls.get("s3_put", 0) * p["s3_put"] + calls.get("s3_get", 0) * p["s3_get"],
        "cloudwatch_logs": figures["log_bytes"].get(phase, 0) / 2**30 * p["logs_ingested_gb"],
    }


def netted_phases(figures: dict[str, Any], p: dict[str, float]) -> dict[str, dict[str, float]]:
    """Each phase's cost at the unit prices `p`, the daily jobs' own part taken out of the
    loan's phases (it is in the fixed monthly figure instead)."""
    phases = {phase: phase_cost(figures, phase, p) for phase in (*LIFE, "decision", *RUNS_PER_MONTH)}
    idle_days = figures["life"]["idle_anchor_days"]
    phases["idle_anchor"] = {k: v / idle_days for k, v in phases["idle_anchor"].items()}  # one day's
    for phase, (job_name, idle) in DAILY_PART.items():
        runs = figures["lambdas"].get(phase, {}).get(f"{job_name}:n", 0)
        phases[phase] = {k: max(0.0, v - runs * phases[idle][k]) for k, v in phases[phase].items()}
    # A day's anchor is one S3 object and one root whatever changed that day: the loan's part of
    # a day it changed is what that day cost beyond an empty day's (its entries, its proof).
    loan_days = figures["life"]["anchored_loan_days"]
    phases["ledger_anchor"] = {k: max(0.0, v - loan_days * phases["idle_anchor"][k])
                               for k, v in phases["ledger_anchor"].items()}
    return phases


def life_by_service(phases: dict[str, dict[str, float]]) -> dict[str, float]:
    return {service: sum(phases[phase][service] for phase in LIFE) for service in phases["sign_up"]}


def bill(figures: dict[str, Any]) -> dict[str, Any]:
    rate = figures["prices"]["usd_to_cny"]
    phases = netted_phases(figures, unit_prices(figures["prices"]))
    life = life_by_service(phases)
    life_usd = sum(life.values())
    china = life_by_service(netted_phases(figures, china_unit_prices(figures["prices"])))
    decision = phases["decision"]
    per_decision = sum(decision.values()) / figures["calls"]["decision"]["decisions"]
    p = figures["prices"]["prices_usd"]
    fixed_month = sum(sum(phases[name].values()) * runs for name, runs in RUNS_PER_MONTH.items()) + \
        3 * IDLE_POLLS_PER_QUEUE * p["sqs_request"]["price"] / p["sqs_request"]["per"]
    sms = {phase: n for phase, n in figures["sms"].items() if phase in LIFE and n}
    return {
        "region": figures["prices"]["region"], "as_of": figures["prices"]["as_of"], "usd_to_cny": rate,
        "phases_usd": phases,
        "life_usd_by_service": life, "life_usd": life_usd, "life_cny": life_usd * rate,
        "dominant": max(life, key=life.get),
        "china_life_cny_by_service": china, "china_life_cny": sum(china.values()),
        "million_decisions_usd": per_decision * 1_000_000, "million_decisions_cny": per_decision * 1_000_000 * rate,
        "fixed_usd_per_month": fixed_month,
        "sms_per_life": sum(sms.values()), "sms_by_phase": sms,
        "sms_cny_per_life": sum(sms.values()) * figures["prices"]["sms_cny"]["price"],
        "counts": {phase: {"api_requests": figures["api_requests"].get(phase, 0),
                           "lambda_invocations": sum(v for k, v in figures["lambdas"].get(phase, {}).items()
                                                     if k.endswith(":n")),
                           **{k: round(v, 1) for k, v in figures["calls"].get(phase, {}).items()},
                           "log_kib": round(figures["log_bytes"].get(phase, 0) / 1024, 1)}
                   for phase in (*LIFE, "decision")},
    }


def main() -> int:
    figures = measure()
    figures["bill"] = bill(figures)
    return emit(figures)


if __name__ == "__main__":
    sys.exit(main())
