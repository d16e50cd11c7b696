"""No personal data in clear anywhere, after the whole journey and every attack of the suite.

The package's world (conftest) signed two borrowers in, verified their real names and ID
numbers, bound phones and cards, decided, drew, paid out and repaid; the other modules threw
every attack at every route. This module adds the rest of a loan's life (an operator's
decision, the operators' views, reminders and every queued notification sent), then scans
every response, every app log line (Powertools' JSON, as in Lambda, at DEBUG), the SMS/push
outbox, every queued message and every item of every DynamoDB table for the full phone
number, ID number, card number, real name and birth date. The contract's masks must be there
instead. (tests/routes/test_auth_attacks.py scans the identity flows' error paths the same way;
the helpers are shared through tests/auth_support.py.)
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from tests import queues
from tests.auth_support import leaks, table_dump
from tests.journeys import deliver_notifications
from tests.security.conftest import NOW, snapshot


@pytest.fixture(scope="module")
def lived(world):
    """The rest of a loan's life, on top of the world's journey; everything recorded."""
    from chalicelib import wiring
    from chalicelib.core.clock import FixedClock
    from infra.lambda_events import scheduled_event
    wiring.override("clock", FixedClock(NOW))  # module fixtures run before the autouse clock
    a, b = world.a, world.b
    # error paths that carry personal data in their request
    world.api.post("/v1/me/identity", {"name": "张三", "id_number": b["pii"]["id_number"]},
                   world.api.bearer(world.api.post("/v1/auth/wechat", {"code": "dev-o_copycat"})[1]
                                    ["access_token"]))  # 409 IDENTITY_TAKEN
    world.api.post("/v1/me/bank-cards", {"card_number": b["pii"]["card_number"]}, a["headers"])
    world.api.post("/v1/auth/sms-codes", {"phone": "+86" + a["pii"]["phone"]})  # 429, sent before
    # operators
    status, decided, _ = world.call("POST", f"/v1/ops/applications/{a['review_application_id']}/decision",
                                    body={"status": "approved", "credit_limit": 500_000,
                                          "note": "收入证明已核实"}, headers=world.ops())
    assert status == 200, decided
    for path in ("/v1/ops/reviews", f"/v1/ops/loans/{b['loan_id']}", "/v1/ops/portfolio"):
        assert world.call("GET", path, headers=world.ops())[0] == 200
    # everything a borrower can read (before the jobs below move the loans into February)
    for who in (a, b):
        for path in ("/v1/me", "/v1/me/offers", "/v1/me/credit-report", "/v1/loans",
                     f"/v1/me/bank-cards/{who['card_id']}",
                     f"/v1/applications/{who['application_id']}", f"/v1/loans/{who['loan_id']}",
                     f"/v1/loans/{who['loan_id']}/payoff"):
            status, answer, _ = world.call("GET", path, headers=who["headers"])
            assert status == 200, (path, answer)
    # notifications: what the journey queued, then the reminders around the first due date
    sent = deliver_notifications(world.client)
    _, loan, _ = world.call("GET", f"/v1/loans/{a['loan_id']}", headers=a["headers"])
    due = date.fromisoformat(loan["schedule"][0]["due_date"])
    for days in (-3, 0, 1):
        at = datetime.combine(due + timedelta(days=days), datetime.min.time(), timezone(timedelta(hours=8)))
        world.client.lambda_.invoke("close_of_business", scheduled_event(at + timedelta(minutes=5), "cob"))
        assert queues.drain(world.client, "closing") == []
        world.client.lambda_.invoke("reminders", scheduled_event(at + timedelta(hours=9), "reminders"))
        assert queues.drain(world.client, "reminding") == []
        sent += deliver_notifications(world.client)
    assert sent >= 4
    # the inbox now holds the reminders' texts
    for who in (a, b):
        assert world.call("GET", "/v1/me/notifications", headers=who["headers"])[0] == 200
    return world


def _secrets(world) -> list[str]:
    found = []
    for who in (world.a, world.b):
        pii = who["pii"]
        born: date = pii["born"]
        found += [pii["phone"], "+86" + pii["phone"], pii["id_number"], pii["id_number"].lower(),
                  pii["card_number"], pii["name"], born.strftime("%Y%m%d"), born.isoformat()]
    return found


def _otp_codes(world) -> list[str]:
    return re.findall(r"(?<!\d)(\d{6})(?!\d)", "\n".join(
        json.loads(line)["text"] for line in world.outbox.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["channel"] == "sms" and "验证码" in json.loads(line)["text"]))


def _digits_alone(text: str, code: str) -> bool:
    return re.search(rf"(?<!\d){code}(?!\d)", text) is not None


def test_responses_show_only_masks(lived):
    seen = "\n".join(lived.api.seen)
    assert leaks(seen, _secrets(lived)) == []
    a = lived.a["pii"]
    assert f"{a['phone'][:3]}****{a['phone'][-4:]}" in seen
    assert f"{a['id_number'][:4]}{'*' * 10}{a['id_number'][-4:]}" in seen
    assert f'"last4": "{a["card_number"][-4:]}"' in seen or f'"last4":"{a["card_number"][-4:]}"' in seen


def test_logs_hold_no_personal_data_nor_codes(lived):
    text = lived.logs.text
    assert "application decided" in text and "operator decision" in text  # the capture worked
    assert leaks(text, _secrets(lived)) == []
    codes = _otp_codes(lived)
    assert codes, "the outbox should hold the sign-in codes"
    assert [c for c in codes if _digits_alone(text, c)] == []


def test_the_outbox_addresses_and_texts_are_masked(lived):
    text = lived.outbox.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    kinds = {line["channel"] for line in lines}
    assert len(lines) >= 6 and kinds >= {"sms"}
    readable = text + "\n" + "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    assert leaks(readable, _secrets(lived)) == []
    assert {line["to"] for line in lines if line["channel"] == "sms"} >= {"138****8000", "159****1234"}


def test_queued_messages_carry_no_personal_data(lived):
    assert leaks("\n".join(b for bodies in snapshot()["queues"].values() for b in bodies), _secrets(lived)) == []


def test_no_table_holds_personal_data_in_clear(lived):
    dump = table_dump()
    assert dump.count("\n") > 50  # the scan saw the world
    assert leaks(dump, _secrets(lived)) == []
    assert [c for c in _otp_codes(lived) if _digits_alone(dump, c)] == []


def test_the_scans_read_inside_compressed_attributes():
    """A loan's schedule state is stored zlib-compressed: the table scans decompress binary
    values, so personal data put in such an attribute would still be found."""
    import json
    import zlib

    from tests.auth_support import readable
    item = {"state": {"B": zlib.compress("借款人 13800138000".encode())}, "raw": {"B": b"\x00\xff"}}
    text = json.dumps(item, ensure_ascii=False, default=readable)
    assert leaks(text, ["13800138000"]) == ["13800138000"]
    assert "AP8=" in text  # other bytes in base64
