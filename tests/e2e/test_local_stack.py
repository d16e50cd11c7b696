"""End to end: `python -m infra.local_stack serve` (what `make run` starts), driven over HTTP."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import requests

from tests.e2e.conftest import ROOT, wait_for  # the `stack` fixture comes from conftest.py


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
