"""The end-to-end fixture: `python -m infra.local_stack serve` (what `make run` starts).

Every module that asks for `stack` gets its own stack (module scope, about 4 s to start): the
modules leave different data behind (the fuzzer, a journey that runs `make jobs`, a test that
stops the stack with Ctrl-C), and none of them should see another's.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


@contextmanager
def serving(work: Path, *, timeout: float = 90, **extra_env: str) -> Iterator[dict[str, Any]]:
    """`python -m infra.local_stack serve` on free loopback ports, with no AWS settings from
    this environment; its outbox and log in `work`. Yields once /health answers; Ctrl-C (the
    stack's own shutdown) on the way out. The e2e fixture and bench/http_bench.py share it."""
    api_port, moto_port = free_port(), free_port()
    outbox, log = work / "outbox.jsonl", work / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"API_PORT": str(api_port), "MOTO_PORT": str(moto_port), "OUTBOX_PATH": str(outbox),
                "PYTHONUNBUFFERED": "1", "SMS_QUIET_HOURS": "",  # SMS at any hour, unless extra_env says
                **extra_env})
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "infra.local_stack", "serve"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{api_port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"stack exited: {log.read_text()[-3000:]}")
        try:
            return requests.get(f"{base}/health", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # the first loads the model: slow on a busy machine
            return False

    try:
        wait_for(up, timeout=timeout)
        yield {"base": base, "proc": proc, "outbox": outbox, "log": log, "env": env,
               "ports": (api_port, moto_port)}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("stack")) as info:
        log, moto_port = info["log"], info["ports"][1]
        wait_for(lambda: "Ctrl-C" in log.read_text(), timeout=30)  # the banner, with the ops key
        ops_key = re.search(r"X-Ops-Key: (\S+)", log.read_text())
        info["sqs"] = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{moto_port}",
                                   region_name="us-east-1", aws_access_key_id="local",
                                   aws_secret_access_key="local")
        info["ops_key"] = ops_key.group(1) if ops_key else None
        yield info
