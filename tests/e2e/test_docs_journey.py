"""The curl journey of docs/API.md, run as written against the local stack.

Given a fresh stack, when the guide's shell block runs (only the base URL, the outbox's place
and the wait for the payout differ), then every step succeeds: the borrower signs in, binds a
phone with the texted code, is verified, adds a card, is approved, draws a loan that is paid
out, repays the first installment, sees the notices and refreshes the tokens. A guide whose
example broke would fail here, not in a newcomer's terminal.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")),
                                reason="the guide's examples use bash, curl and jq")


def journey_script(base: str) -> str:
    guide = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    section = guide.split("## The borrower's journey", 1)[1]
    script = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert "sleep 60;" in script and "http://127.0.0.1:8000" in script
    # the payout comes within a minute; here, as soon as the loan is active
    wait = ('for i in $(seq 1 120); do [ "$(curl -s $API/v1/loans/$LOAN -H "$AUTH" | jq -r .status)" '
            '= active ] && break; sleep 0.5; done;')
    return "set -euo pipefail\n" + script.replace("http://127.0.0.1:8000", base).replace("sleep 60;", wait)


def test_the_guides_journey_runs_as_written(stack, tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "outbox.jsonl").symlink_to(stack["outbox"])  # where the guide reads codes
    run = subprocess.run(["bash", "-c", journey_script(stack["base"])], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert '"phone_masked":"138****8000"' in out and '"verified":true' in out
    assert '"status": "approved"' in out and '"status": "active"' in out
    assert re.search(r'"repayment_id":"[^"]+","amount":\d+', out), out[-2000:]
    assert '"kind": "disbursed"' in out or '"kind":"disbursed"' in out
    assert out.rstrip().endswith("}") and '"access_token"' in out.splitlines()[-1]
    assert '"error"' not in out, out[-3000:]
