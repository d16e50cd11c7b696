"""The contract's Idempotency-Key semantics on a probe route, on moto."""
from __future__ import annotations

import json
import threading

import pytest
from chalice import Blueprint, Chalice
from chalice.test import Client

from chalicelib.core.errors import RuleViolation
from chalicelib.api.http import AUTHENTICATORS, ROUTES, ApiModel, http_middleware, route


class Payment(ApiModel):
    amount: int


@pytest.fixture()
def probe(aws_stack):
    AUTHENTICATORS["probe"] = lambda request: request.headers.get("x-user", "anon")
    bp = Blueprint("idem_probe")
    calls: list[int] = []
    gate = {"event": None}

    @route(bp, "/pay/{target}", "POST", summary="probe", tag="test", body=Payment, auth="probe",
           status=201, idempotent=True)
    def pay(request, target, body, principal):
        if gate["event"] is not None:
            gate["event"].wait(5)
        if body.amount > 1000:
            raise RuleViolation("too much", code="OVERPAYMENT")
        calls.append(body.amount)
        return {"n": len(calls), "target": target, "who": principal}

    probe_app = Chalice("idem-probe")
    probe_app.register_middleware(http_middleware, "http")
    probe_app.register_blueprint(bp)
    with Client(probe_app) as client:
        yield client, calls, gate
    AUTHENTICATORS.pop("probe")
    ROUTES[:] = [r for r in ROUTES if not r.path.startswith("/pay/")]


def post(client, path, body, key="k-1", user="u-1"):
    headers = {"Content-Type": "application/json", "x-user": user}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.http.post(path, body=json.dumps(body).encode(), headers=headers)


def test_missing_key_is_400_and_nothing_runs(probe):
    client, calls, _ = probe
    response = post(client, "/pay/a", {"amount": 5}, key=None)
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    assert post(client, "/pay/a", {"amount": 5}, key="x" * 256).status_code == 400
    assert calls == []


def test_replay_returns_the_first_response_and_does_nothing_more(probe):
    client, calls, _ = probe
    first = post(client, "/pay/a", {"amount": 5})
    again = post(client, "/pay/a", {"amount": 5})
    assert first.status_code == again.status_code == 201
    assert first.json_body == again.json_body == {"n": 1, "target": "a", "who": "u-1"}
    assert calls == [5]


def test_same_body_with_keys_in_another_order_is_the_same_body(probe):
    client, calls, _ = probe
    client.http.post("/pay/a", body=b'{"amount": 5}', headers={
        "Content-Type": "application/json", "x-user": "u-1", "Idempotency-Key": "k"})
    assert post(client, "/pay/a", {"amount": 5}, key="k").json_body["n"] == 1
    assert calls == [5]


def test_same_key_other_body_is_409_reused(probe):
    client, calls, _ = probe
    post(client, "/pay/a", {"amount": 5})
    response = post(client, "/pay/a", {"amount": 6})
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert calls == [5]


def test_keys_are_scoped_to_user_and_path(probe):
    client, calls, _ = probe
    post(client, "/pay/a", {"amount": 5})
    post(client, "/pay/b", {"amount": 5})
    post(client, "/pay/a", {"amount": 5}, user="u-2")
    assert calls == [5, 5, 5]


def test_a_failed_attempt_is_not_remembered(probe):
    client, calls, _ = probe
    failed = post(client, "/pay/a", {"amount": 5000})
    assert failed.status_code == 422
    # the same key may now be used again, with another body
    retry = post(client, "/pay/a", {"amount": 7})
    assert retry.status_code == 201 and calls == [7]


def test_duplicate_while_the_first_runs_is_409_in_progress(probe):
    client, calls, gate = probe
    gate["event"] = threading.Event()
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", post(client, "/pay/a", {"amount": 5})))
    first.start()
    # wait until the first request holds the in-progress record
    from chalicelib.adapters.idempotency import IdempotencyRecord
    for _ in range(200):
        if IdempotencyRecord.count() == 1:
            break
        threading.Event().wait(0.01)
    second = post(client, "/pay/a", {"amount": 5})
    gate["event"].set()
    first.join(10)
    assert second.status_code == 409
    assert second.json_body["error"]["code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert results["first"].status_code == 201
    assert calls == [5]
