"""End to end: `python -m infra.local_stack serve` (what `make run` starts), driven over HTTP."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    api_port, moto_port = free_port(), free_port()
    outbox = tmp_path_factory.mktemp("stack") / "outbox.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(API_PORT=str(api_port), MOTO_PORT=str(moto_port), OUTBOX_PATH=str(outbox),
               PYTHONUNBUFFERED="1", SMS_QUIET_HOURS="")  # the suite runs at any hour
    log = tmp_path_factory.mktemp("stack") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "infra.local_stack", "serve"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{api_port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"stack exited: {log.read_text()[-3000:]}")
        try:
            return requests.get(f"{base}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(up, timeout=90)
    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    info = {"base": base, "proc": proc, "sqs": sqs, "outbox": outbox, "log": log,
            "env": env, "ports": (api_port, moto_port)}
    yield info
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_health_and_seeded_products_over_http(stack):
    assert requests.get(f"{stack['base']}/health", timeout=5).json()["status"] == "ok"
    items = requests.get(f"{stack['base']}/v1/products", timeout=5).json()["items"]
    assert len(items) >= 3
    banner = stack["log"].read_text()
    assert f"http://127.0.0.1:{stack['ports'][0]}" in banner and "Ctrl-C" in banner


def test_queued_message_is_consumed_and_poison_reaches_the_dlq(stack):
    sqs = stack["sqs"]
    url = sqs.get_queue_url(QueueName="lending-local-notifications")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="lending-local-notifications-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
        "notification_id": "e2e-1", "user_id": "u-e2e", "kind": "disbursed", "channel": "sms",
        "to": "13912345678", "text": "您的借款已到账", "loan_id": "loan-e2e"}))
    sqs.send_message(QueueUrl=url, MessageBody="poison")

    def delivered():
        if not stack["outbox"].exists():
            return None
        return [json.loads(line) for line in stack["outbox"].read_text().splitlines()]

    lines = wait_for(delivered, timeout=30)
    assert lines[0]["to"] == "139****5678" and lines[0]["channel"] == "sms"

    def in_dlq():
        attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"]) == 1

    wait_for(in_dlq, timeout=60)
    got = sqs.receive_message(QueueUrl=dlq, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert got["Body"] == "poison"
    assert int(got["Attributes"]["ApproximateReceiveCount"]) >= 5


def test_make_jobs_runs_against_the_stack_and_returns(stack):
    done = subprocess.run([sys.executable, "-m", "infra.local_stack", "jobs",
                           "--at", "2027-01-10T09:00:00+08:00"], cwd=ROOT, env=stack["env"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "queues drained" in done.stdout


def test_ctrl_c_stops_everything_and_frees_the_ports(stack):
    proc = stack["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    for port in stack["ports"]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))  # raises if anything still listens
