"""Test environment: the `local` stage's settings, fake credentials, moto before any client.

Order matters: the stage environment must be set before `app` is imported (pynamodb fixes
table names at class definition), and moto must be imported before any botocore client is
created so that its stubber sees every call. AWS_ENDPOINT_URL is removed so nothing in the
test process can reach a real or local endpoint by accident.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
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

from infra import iam_recorder  # noqa: E402

# Every AWS call each Lambda handler makes, for tests/test_iam_coverage.py (before any botocore
# session exists, like moto). The local stacks the end-to-end tests start record into a folder
# of this run's.
iam_recorder.install()
os.environ[iam_recorder.ENV] = tempfile.mkdtemp(prefix="iam-calls-")

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


# ------------------------------------------------------------------ IAM call recording

IAM_CALLS = ROOT / "build" / "iam-calls.json"  # a whole run's; a partial run's goes beside it
_run = {"deselected": 0, "failed": 0, "complete": False}


def pytest_deselected(items):
    _run["deselected"] += len(items)


def pytest_collection_modifyitems(session, config, items):
    """The IAM coverage check reads the whole run's recording: it runs last."""
    items.sort(key=lambda item: item.get_closest_marker("iam_coverage") is not None)


def pytest_collection_finish(session):
    """The recording is complete when every test module under tests/ was collected and none
    of its tests was left out (-k, -m, --lf, a node id...)."""
    on_disk = {p.resolve() for p in (ROOT / "tests").rglob("test_*.py")}
    collected = {Path(str(item.path)).resolve() for item in session.items}
    _run["complete"] = on_disk <= collected and not _run["deselected"]


def pytest_runtest_logreport(report):
    if report.failed and "iam_coverage" not in report.keywords:
        _run["failed"] += 1


def iam_recording() -> dict:
    """This run's recording, with what the check needs to know about how it was made."""
    from chalicelib.core import config
    snapshot = iam_recorder.merge_dumps(iam_recorder.RECORDER.snapshot(), os.environ.get(iam_recorder.ENV))
    return {**snapshot, "complete": _run["complete"],
            "failed_tests": _run["failed"], "stage": config.stage(),
            "resource_prefix": config.resource_prefix(), "region": config.region(),
            "account": "123456789012"}


def pytest_sessionfinish(session, exitstatus):
    recording = iam_recording()
    path = IAM_CALLS if recording["complete"] else IAM_CALLS.with_name("iam-calls-partial.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(recording, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(os.environ[iam_recorder.ENV], ignore_errors=True)


@pytest.fixture()
def counted_hashes(monkeypatch):
    """The ledger's SHA-256 calls (`chalicelib.money.chain._sha`) counted while the test runs:
    `counted_hashes["hashes"]`, which the test may reset before what it measures."""
    from chalicelib.money import chain
    counted = {"hashes": 0}
    sha = chain._sha

    def counting(text: str) -> str:
        counted["hashes"] += 1
        return sha(text)

    monkeypatch.setattr(chain, "_sha", counting)
    return counted
