"""Test environment: the `local` stage's settings, fake credentials, moto before any client.

Order matters: the stage environment must be set before `app` is imported (pynamodb fixes
table names at class definition), and moto must be imported before any botocore client is
created so that its stubber sees every call. AWS_ENDPOINT_URL is removed so nothing in the
test process can reach a real or local endpoint by accident.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(var, None)
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                   "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "LendingTest"})

from infra.stage import apply_stage_env  # noqa: E402

apply_stage_env("local")

import moto  # noqa: E402,F401  - before any botocore client exists
import pytest  # noqa: E402

import app as app_module  # noqa: E402


@pytest.fixture(autouse=True)
def clock():
    """The app's wall clock, fixed at a Beijing working hour (10:00 on 2027-01-10); move it
    with `clock.set(...)`."""
    from datetime import datetime, timezone

    from chalicelib import wiring
    from chalicelib.core.clock import FixedClock
    fixed = FixedClock(datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc))
    wiring.override("clock", fixed)
    yield fixed
    wiring.reset()


@pytest.fixture()
def outbox(tmp_path, monkeypatch):
    path = tmp_path / "outbox.jsonl"
    monkeypatch.setenv("OUTBOX_PATH", str(path))
    yield path


@pytest.fixture()
def aws_stack(outbox):
    """A fresh moto account with every table, queue, key and secret of the stage, seeded."""
    from infra.bootstrap import fresh_moto_account

    with fresh_moto_account() as created:
        yield created


@pytest.fixture()
def client(aws_stack):
    from chalice.test import Client
    with Client(app_module.app, stage_name="local", project_dir=str(ROOT)) as test_client:
        yield test_client
