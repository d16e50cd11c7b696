"""The upstream schemathesis CLI, all checks, against the local stack: no failure.

Given the stack `make run` serves and two borrowers who each own a card, an approved
application and an active loan (fuzz-a and fuzz-b, the peers of `schemathesis.toml`'s WFC
auth: they sign in themselves with the sandbox's WeChat codes), when `st run --checks all`
runs every phase (examples, coverage, fuzzing, stateful through the document's links) with the
repository's configuration (fixed seed, 25 examples per operation) and the ops key, then it
exits 0: no 5xx, every status, header and body as documented, schema-valid requests never
refused as malformed (a 422 for a business rule is fine), schema-violating ones refused,
auth enforced, and neither borrower gets the other's objects.

`make fuzz` runs only this test and shows the CLI's report (`-s`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import requests

from chalicelib.api.http import ROUTES
from tests.e2e.conftest import ROOT, wait_for
from tests.journeys import GOOD_APPLICANT, HttpApi, card_ending, ready_borrower, with_key

ST = Path(sys.executable).parent / "st"
PEERS = (("fuzz-a", "13600000001", "1111", date(1985, 3, 14)),
         ("fuzz-b", "13600000002", "2222", date(1990, 7, 1)))


def st_command(base: str, ops_key: str) -> list[str]:
    """What a person runs by hand against `make run` (README, docs/API.md)."""
    return [str(ST if ST.exists() else shutil.which("st")), "--config-file", "schemathesis.toml",
            "run", f"{base}/openapi.json", "--checks", "all", "-H", f"X-Ops-Key: {ops_key}",
            "--workers", "1", "--no-color"]


@pytest.fixture(scope="module")
def borrowers(stack):
    """The CLI's two identities, each with a line and an active loan to be reached by links."""
    api = HttpApi(stack["base"])
    owned = {}
    for openid, phone, last4, born in PEERS:
        who = ready_borrower(api, stack["outbox"], openid=openid, phone=phone,
                             card=card_ending(last4), born=born)
        status, decision = api.post("/v1/applications", {
            "product_id": "revolving-credit", "amount": 5_000_000, "term_months": 12,
            "purpose": "装修", "applicant": GOOD_APPLICANT}, with_key(who["headers"]))
        assert status == 201 and decision["status"] == "approved", decision
        status, loan = api.post("/v1/loans", {
            "application_id": decision["application_id"], "amount": 1_000_000, "term_months": 6,
            "repayment_method": "equal_installment", "bank_card_id": who["card_id"]},
            with_key(who["headers"]))
        assert status == 201, loan
        owned[openid] = {"headers": who["headers"], "loan_id": loan["loan_id"]}
    for who in owned.values():
        wait_for(lambda: api.get(f"/v1/loans/{who['loan_id']}", who["headers"])[1]["status"] == "active",
                 timeout=60)
    return owned


def test_the_schemathesis_cli_finds_nothing(stack, borrowers):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = st_command(stack["base"], stack["ops_key"])
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    report = run.stdout + run.stderr
    print(" ".join(command[:-3] + ["X-Ops-Key: <key>", *command[-3:]]).replace(str(ROOT) + "/", ""))
    print(report)
    assert run.returncode == 0, report[-6000:]
    served = requests.get(f"{stack['base']}/openapi.json", timeout=30).json()
    assert {(method.upper(), path) for path, methods in served["paths"].items() for method in methods} \
        == {(doc.method, doc.path) for doc in ROUTES if doc.path != "/probe"}
    # every operation but the one serving the document itself, which the CLI leaves out
    operations = sum(len(methods) for path, methods in served["paths"].items() if path != "/openapi.json")
    assert f"Selected: {operations}/{operations}" in report and f"Tested: {operations}" in report
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}", report), f"{phase} phase did not pass:\n{report[-3000:]}"
    covered = re.search(r"API Links:\s+(\d+) covered", report)
    assert covered and int(covered.group(1)) >= 5, "stateful testing followed too few links"
    summary = report.split("SUMMARY")[-1]
    assert re.search(r"(\d+) generated, \1 passed", summary), summary
