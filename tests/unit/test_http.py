"""The HTTP plumbing: strict bodies, the contract's error body, chalice's own errors rewritten."""
from __future__ import annotations

import json

import pytest
from chalice import Response

from chalicelib.core.errors import BadRequest
from chalicelib.api.http import ApiModel, normalise_error, parse_body


class Amount(ApiModel):
    amount: int


def test_valid_body_parses():
    assert parse_body(b'{"amount": 100}', Amount).amount == 100


@pytest.mark.parametrize("raw, code", [
    (b'{"amount": 100, "credit_limit": 1}', "UNKNOWN_FIELD"),
    (b'{}', "FIELD_REQUIRED"),
    (b'{"amount": 1.5}', "FIELD_INVALID"),
    (b'{"amount": "100"}', "FIELD_INVALID"),
    (b'{"amount": true}', "FIELD_INVALID"),
    (b'not json', "BODY_INVALID"),
    (b'[1, 2]', "BODY_INVALID"),
    (b'', "BODY_INVALID"),
    (b'{"amount": 1, "pad": "' + b"x" * 20000 + b'"}', "BODY_TOO_LARGE"),
])
def test_bad_bodies_are_400_with_a_code(raw, code):
    with pytest.raises(BadRequest) as err:
        parse_body(raw, Amount)
    assert err.value.status == 400
    assert err.value.code == code


def test_validation_message_does_not_echo_the_input():
    secret = "110101199003071234"
    with pytest.raises(BadRequest) as err:
        parse_body(json.dumps({"amount": secret}).encode(), Amount)
    assert secret not in err.value.message


def test_chalice_errors_are_rewritten_to_the_contract_body():
    response = normalise_error(Response(body={"Code": "MethodNotAllowedError",
                                              "Message": "Unsupported method: POST"}, status_code=405))
    assert response.body == {"error": {"code": "METHOD_NOT_ALLOWED", "message": "Unsupported method: POST"}}


def test_chalice_500_hides_its_message():
    response = normalise_error(Response(body={"Code": "InternalServerError",
                                              "Message": "boom at line 3"}, status_code=500))
    assert response.body["error"]["code"] == "INTERNAL_ERROR"
    assert "boom" not in response.body["error"]["message"]


def test_other_bodies_are_left_alone():
    body = {"Code": "x", "Message": "y", "extra": 1}
    assert normalise_error(Response(body=body)).body is body


def test_route_authenticates_before_parsing_and_passes_the_principal():
    from chalice import Blueprint, Chalice
    from chalice.test import Client

    from chalicelib.core.errors import Unauthorized
    from chalicelib.api.http import AUTHENTICATORS, route

    def authenticate(request):
        if request.headers.get("authorization") != "Bearer good":
            raise Unauthorized("Sign in again.", code="TOKEN_INVALID")
        return "user-1"

    AUTHENTICATORS["test-scheme"] = authenticate
    bp = Blueprint("probe")
    seen = []

    @route(bp, "/probe", "POST", summary="probe", tag="test", body=Amount, auth="test-scheme")
    def probe(request, body, principal):
        seen.append((principal, body.amount))
        return {"ok": True}

    probe_app = Chalice("probe")
    probe_app.register_blueprint(bp)
    try:
        with Client(probe_app) as client:
            denied = client.http.post("/probe", body=b"not json",
                                      headers={"Content-Type": "application/json"})
            assert denied.status_code == 401
            assert denied.json_body["error"]["code"] == "TOKEN_INVALID"
            ok = client.http.post("/probe", body=b'{"amount": 5}', headers={
                "Content-Type": "application/json", "Authorization": "Bearer good"})
            assert ok.status_code == 200
        assert seen == [("user-1", 5)]
    finally:
        AUTHENTICATORS.pop("test-scheme")
        from chalicelib.api.http import ROUTES
        ROUTES[:] = [r for r in ROUTES if r.path != "/probe"]


def _throttled():
    from botocore.exceptions import ClientError
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                       "PutItem")


def _wrapped_throttle():
    from pynamodb.exceptions import PutError
    try:
        raise _throttled()
    except Exception as cause:  # noqa: BLE001
        try:
            raise PutError("Failed to put item") from cause
        except PutError as wrapped:
            return wrapped


def _cancelled_by_conflict():
    from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError
    cause = VerboseClientError({"Error": {"Code": "TransactionCanceledException", "Message": "x"}},
                               "TransactWriteItems",
                               cancellation_reasons=[None, CancellationReason(code="TransactionConflict")])
    return TransactWriteError("Failed to write transaction items", cause=cause)


@pytest.mark.parametrize("make, status, code", [
    (_throttled, 503, "DEPENDENCY_UNAVAILABLE"),
    (_wrapped_throttle, 503, "DEPENDENCY_UNAVAILABLE"),
    (_cancelled_by_conflict, 503, "DEPENDENCY_UNAVAILABLE"),
    (lambda: __import__("botocore.exceptions").exceptions.EndpointConnectionError(endpoint_url="https://x"),
     503, "DEPENDENCY_UNAVAILABLE"),
    (lambda: KeyError("bug"), 500, "INTERNAL_ERROR"),
    (lambda: __import__("botocore.exceptions").exceptions.ClientError(
        {"Error": {"Code": "ValidationException", "Message": "bad"}}, "PutItem"), 500, "INTERNAL_ERROR"),
])
def test_a_passing_aws_failure_is_503_with_retry_after_and_a_bug_is_500(make, status, code):
    from chalice import Blueprint, Chalice
    from chalice.test import Client

    from chalicelib.api.http import ROUTES, route

    bp = Blueprint("probe")

    @route(bp, "/probe-fail", "GET", summary="probe", tag="test")
    def probe(request):
        raise make()

    probe_app = Chalice("probe")
    probe_app.register_blueprint(bp)
    try:
        with Client(probe_app) as client:
            answer = client.http.get("/probe-fail")
        assert answer.status_code == status and answer.json_body["error"]["code"] == code
        assert ("Retry-After" in answer.headers) == (status == 503)
    finally:
        ROUTES[:] = [r for r in ROUTES if r.path != "/probe-fail"]
