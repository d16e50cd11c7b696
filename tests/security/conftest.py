"""One world for the whole suite: a fresh moto account and two borrowers who went the whole way.

Borrowers A (the attacker) and B (the victim) each signed in, bound a phone, passed real-name
checks, added a card, were approved, drew a loan that was paid out and partly repaid, and drew
a second loan that is still `scheduled` (so a forbidden cancel or repayment would show). B also
has an application waiting for an operator. The attack tests snapshot every table, queue and
the outbox before and after, so "nothing changed" is checked, not assumed.

One journey for the package keeps the suite fast (a journey costs seconds: each DynamoDB
transaction opens a new connection); the attack tests leave the world as they found it, which
their snapshots prove, and the personal-data scan (test_pii.py) adds its own steps. Every app
log line of the whole suite is captured in `world.logs` for that scan.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.auth_support import LogCapture, RecordingApi, readable
from tests.journeys import GOOD_APPLICANT, card_ending, ready_borrower, resident_id, with_key
from tests.routes.conftest import review_application

NOW = datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)  # the suite's wall clock (root conftest)
ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class World:
    client: Any
    api: RecordingApi
    outbox: Path
    ops_key: str
    a: dict[str, Any] = field(default_factory=dict)
    b: dict[str, Any] = field(default_factory=dict)
    logs: LogCapture = field(default_factory=LogCapture)

    def call(self, method: str, path: str, *, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        """Any method, any bytes; the answer is recorded for the personal-data scans."""
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        return self.api.exchange(method, path, payload, headers)

    def ops(self) -> dict[str, str]:
        return {"X-Ops-Key": self.ops_key}


def snapshot() -> dict[str, Any]:
    """Everything a request could have changed: every item of every table, every message of
    every queue (visible or in flight), the outbox. Read from moto's in-memory backends (the
    same data a Scan would return, in a millisecond instead of a fifth of a second, which is
    what lets every attack be checked this way); sorted, so only a change shows."""
    import os

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.sqs.models import sqs_backends

    from chalicelib import wiring
    from chalicelib.adapters.db import TABLES
    region = os.environ["AWS_DEFAULT_REGION"]
    tables = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables
    assert {m.Meta.table_name for m in TABLES} <= set(tables), "a table is missing from moto"
    items = sorted(f"{name} {json.dumps(item.to_json(), sort_keys=True, ensure_ascii=False, default=readable)}"
                   for name, table in tables.items() for item in table.all_items())
    queues = {name: sorted(m.body for m in queue._messages)
              for name, queue in sqs_backends[DEFAULT_ACCOUNT_ID][region].queues.items()}
    outbox = Path(wiring.outbox_path())
    return {"tables": items, "queues": queues,
            "outbox": outbox.read_text(encoding="utf-8") if outbox.exists() else ""}


def assert_unchanged(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    if before == after:
        return
    added = sorted(set(after["tables"]) - set(before["tables"]))
    removed = sorted(set(before["tables"]) - set(after["tables"]))
    queues = [q for q in set(before["queues"]) | set(after["queues"])
              if before["queues"].get(q) != after["queues"].get(q)]
    raise AssertionError(f"{what} changed state:\n+ {added[:5]}\n- {removed[:5]}\n"
                         f"queues changed: {queues}\n"
                         f"outbox grew {len(after['outbox']) - len(before['outbox'])} chars")


def assert_error(status: int, body: Any, expected_status: int, codes: tuple[str, ...] | None = None,
                 what: str = "") -> None:
    """The contract's error body, exactly: {"error": {"code": UPPER_SNAKE, "message": text}}."""
    assert status == expected_status, (what, status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, (what, body)
    assert set(body["error"]) == {"code", "message"}, (what, body)
    code, message = body["error"]["code"], body["error"]["message"]
    assert isinstance(code, str) and code.isupper() and code.replace("_", "").isalnum(), (what, body)
    assert isinstance(message, str) and message.strip(), (what, body)
    assert "Traceback" not in message and 'File "' not in message, (what, body)
    if codes is not None:
        assert code in codes, (what, body)


def _borrower(api: RecordingApi, outbox: Path, *, openid: str, phone: str, last4: str,
              born: date) -> dict[str, Any]:
    from chalicelib.loans import disbursement
    card = card_ending(last4)
    me = ready_borrower(api, outbox, openid=openid, phone=phone, card=card, born=born)
    auth = me["headers"]
    keys = {"apply": str(uuid.uuid4()), "draw": str(uuid.uuid4()), "repay": str(uuid.uuid4())}
    application = {"product_id": "revolving-credit", "amount": 3_000_000, "term_months": 12,
                   "purpose": "装修", "applicant": GOOD_APPLICANT}
    status, decision = api.post("/v1/applications", application, with_key(auth, keys["apply"]))
    assert status == 201 and decision["status"] == "approved", decision
    draw = {"application_id": decision["application_id"], "amount": 300_000, "term_months": 12,
            "repayment_method": "equal_installment", "bank_card_id": me["card_id"]}
    status, loan = api.post("/v1/loans", draw, with_key(auth, keys["draw"]))
    assert status == 201, loan
    assert disbursement.disburse(loan["loan_id"], NOW) == "active"
    repayment = {"amount": 10_000}
    status, paid = api.post(f"/v1/loans/{loan['loan_id']}/repayments", repayment,
                            with_key(auth, keys["repay"]))
    assert status == 201, paid
    later = (NOW + timedelta(days=3)).isoformat()
    status, scheduled = api.post("/v1/loans", {**draw, "amount": 60_000, "disburse_at": later},
                                 with_key(auth))
    assert status == 201 and scheduled["status"] == "scheduled", scheduled
    return {**me, "application_id": decision["application_id"], "loan_id": loan["loan_id"],
            "scheduled_loan_id": scheduled["loan_id"], "repayment_id": paid["repayment_id"],
            "keys": keys, "bodies": {"apply": application, "draw": draw, "repay": repayment},
            "pii": {"phone": phone, "id_number": resident_id(born), "card_number": card,
                    "name": "张三", "born": born}}  # ready_borrower's name and ID number


@pytest.fixture(scope="package")
def world(tmp_path_factory):
    import app as app_module
    from chalice.test import Client

    from chalicelib import wiring
    from chalicelib.auth import secret_store
    from chalicelib.adapters import idempotency
    from chalicelib.core.clock import FixedClock
    from infra.bootstrap import fresh_moto_account

    outbox = tmp_path_factory.mktemp("security") / "outbox.jsonl"
    patch = pytest.MonkeyPatch()
    patch.setenv("OUTBOX_PATH", str(outbox))
    logs = LogCapture()
    with fresh_moto_account() as created:
        idempotency.reset()
        secret_store.forget()
        wiring.reset()
        wiring.override("clock", FixedClock(NOW))
        logs.__enter__()
        try:
            with Client(app_module.app, stage_name="local", project_dir=str(ROOT)) as client:
                api = RecordingApi(client)
                w = World(client=client, api=api, outbox=outbox,
                          ops_key=json.loads(created["secrets"]["ops"])["key"], logs=logs)
                w.a = _borrower(api, outbox, openid="o_attacker", phone="13812348000", last4="1111",
                                born=date(1988, 5, 17))
                w.b = _borrower(api, outbox, openid="o_victim", phone="15900001234", last4="2222",
                                born=date(1979, 11, 23))
                w.b["review_application_id"] = review_application(w.b["user_id"], GOOD_APPLICANT)
                w.a["review_application_id"] = review_application(w.a["user_id"], GOOD_APPLICANT)
                # the day the ops anchor route is asked for (matrix.PLAIN_VALUES) is anchored
                from chalicelib.ledger import anchors
                from tests.security.matrix import PLAIN_VALUES
                anchors.anchor_day(date.fromisoformat(PLAIN_VALUES["date"]), NOW)
                yield w
        finally:
            logs.__exit__(None, None, None)
            wiring.reset()
            idempotency.reset()
            secret_store.forget()
            patch.undo()
