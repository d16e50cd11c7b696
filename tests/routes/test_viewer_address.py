"""Per-address limits behind the page's CloudFront distribution: API Gateway sees an edge
server's address, so the API takes the viewer's own address from X-Viewer-Address, but only
when X-Origin-Verify carries the `origin` secret that only the distribution sends
(infra/web.py). A client calling the API directly cannot move itself to another address."""
from __future__ import annotations

import json

import pytest

from chalicelib.auth import otp
from chalicelib.auth.secret_store import secret_json


@pytest.fixture()
def three_per_address(monkeypatch):
    monkeypatch.setattr(otp, "LIMITS", otp.SendLimits(ip_max=3, ip_window=600))


def send(client, phone: str, **headers: str) -> int:
    answer = client.http.post("/v1/auth/sms-codes", body=json.dumps({"phone": phone}),
                              headers={"Content-Type": "application/json", **headers})
    return answer.status_code


def test_through_the_distribution_each_viewer_has_their_own_limit(client, three_per_address):
    origin = secret_json("origin")["key"]
    # six borrowers behind one edge server (one sourceIp): each is counted at their own address
    for k in range(6):
        assert send(client, f"1390000100{k}", **{"X-Viewer-Address": f"203.0.113.{k + 1}",
                                                  "X-Origin-Verify": origin}) == 202
    # and one viewer is still held to the limit
    for k in range(3):
        assert send(client, f"1390000200{k}", **{"X-Viewer-Address": "198.51.100.7",
                                                  "X-Origin-Verify": origin}) == 202
    assert send(client, "13900003000", **{"X-Viewer-Address": "198.51.100.7", "X-Origin-Verify": origin}) == 429


@pytest.mark.parametrize("proof", [None, "", "not-the-secret"])
def test_without_the_origin_secret_the_viewer_header_is_ignored(client, three_per_address, proof):
    headers = {"X-Viewer-Address": "203.0.113.1"}
    if proof is not None:
        headers["X-Origin-Verify"] = proof
    codes = [send(client, f"1390000400{k}", **{**headers, "X-Viewer-Address": f"203.0.113.{k + 1}"})
             for k in range(4)]
    assert codes == [202, 202, 202, 429]  # all four counted at the caller's own address


def test_a_viewer_header_that_is_not_an_address_falls_back_to_the_peer(client, three_per_address):
    origin = secret_json("origin")["key"]
    codes = [send(client, f"1390000500{k}", **{"X-Viewer-Address": f"not-an-ip-{k}", "X-Origin-Verify": origin})
             for k in range(4)]
    assert codes == [202, 202, 202, 429]
