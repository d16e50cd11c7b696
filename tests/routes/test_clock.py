"""The service's clock: GET /v1/ops/clock in the local stage only, the local stack's clock moving
forward only, and the wall clock when deployed."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

from tests.conftest import ROOT
from tests.journeys import ChaliceApi


def test_the_clock_route_answers_the_service_clock_in_beijing_time_to_operators(client, clock, aws_stack):
    api = ChaliceApi(client)
    ops = {"X-Ops-Key": json.loads(aws_stack["secrets"]["ops"])["key"]}
    assert api.get("/v1/ops/clock", ops) == (200, {"now": "2027-01-10T10:00:00+08:00"})
    clock.set(datetime(2027, 3, 1, 15, 30, tzinfo=timezone.utc))
    assert api.get("/v1/ops/clock", ops) == (200, {"now": "2027-03-01T23:30:00+08:00"})
    status, body = api.get("/v1/ops/clock")
    assert status == 403 and body["error"]["code"] == "OPS_FORBIDDEN"
    signed = api.post("/v1/auth/wechat", {"code": "dev-clock-reader"})[1]
    assert api.get("/v1/ops/clock", {"Authorization": f"Bearer {signed['access_token']}"})[0] == 403


def test_the_local_clock_moves_forward_only_and_every_process_reads_it(aws_stack, monkeypatch):
    from chalicelib.adapters import testclock
    from chalicelib.core.clock import SHANGHAI
    monkeypatch.setattr(testclock, "CACHE_SECONDS", 0)
    mine, theirs = testclock.TestClock(), testclock.TestClock()  # as in `make jobs` and `make run`
    start = theirs.now()
    assert abs(start - datetime.now(timezone.utc)) < timedelta(seconds=5)  # starts at the wall clock
    later = datetime(2031, 5, 6, 10, 1, tzinfo=SHANGHAI)
    assert mine.advance_to(later) is True
    assert timedelta(0) <= theirs.now() - later < timedelta(seconds=5)  # and runs on from there
    assert mine.advance_to(later - timedelta(days=3)) is False  # never back
    assert theirs.now() >= later
    assert mine.advance_to(later + timedelta(days=1)) is True
    assert theirs.now() >= later + timedelta(days=1)


def test_a_reader_sees_a_move_once_its_cache_has_expired(aws_stack, monkeypatch):
    from chalicelib.adapters import testclock
    monkeypatch.setattr(testclock, "CACHE_SECONDS", 60)
    reader, mover = testclock.TestClock(), testclock.TestClock()
    before = reader.now()
    mover.advance_to(before + timedelta(days=10))
    assert reader.now() - before < timedelta(days=1)  # cached
    reader.forget()
    assert reader.now() - before >= timedelta(days=10)


DEPLOYED = textwrap.dedent('''
    import os
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("STAGE", None)
    # The app as `chalice package --stage prod` loads it (the stage's environment first), and
    # the API definition that command puts in the template
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.swagger import CFNSwaggerGenerator
    chalice_app = CLIFactory(os.getcwd(), environ=os.environ).create_config_obj("prod").chalice_app
    assert os.environ["STAGE"] == "prod"
    paths = CFNSwaggerGenerator().generate_swagger(chalice_app)["paths"]
    assert "/v1/ops/clock" not in paths and "/v1/ops/portfolio" in paths, sorted(paths)
    import app
    from chalicelib import wiring
    from chalicelib.api import openapi
    from chalicelib.core.clock import SystemClock
    assert "/v1/ops/clock" not in app.app.routes, sorted(app.app.routes)
    assert "/v1/ops/clock" not in openapi.document()["paths"]
    assert "/v1/ops/portfolio" in app.app.routes  # the other ops routes are there
    assert isinstance(wiring.clock(), SystemClock)
    print("ok")
''')


def test_deployed_stages_have_no_clock_route_nor_template_entry_and_keep_the_wall_clock():
    done = subprocess.run([sys.executable, "-c", DEPLOYED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
