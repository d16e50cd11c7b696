"""The local stack: moto as the embedded AWS, the API, the event pump and the schedules.

    python -m infra.local_stack serve            # what `make run` does
    python -m infra.local_stack jobs --at ISO    # what `make jobs AT=...` does

Ports: API_PORT (8000), MOTO_PORT (5000), LOCAL_HOST (127.0.0.1).

One clock (`chalicelib.adapters.testclock`): the stack's time starts at the wall clock and runs on
from there; `jobs --at AT` moves it forward to AT (never back), runs every schedule with the
event time AT and drains the queues as of the clock. The API, the consumers, quiet hours, the
scheduler and every timestamp read it through `wiring.clock()`; both processes share it
through the embedded AWS.
"""
from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import signal
import socket
import sys
import threading
from datetime import datetime
from typing import Any, Callable

from infra.stage import ROOT, apply_stage_env, chalice_config


def _settings() -> tuple[str, int, int]:
    return (os.environ.get("LOCAL_HOST", "127.0.0.1"), int(os.environ.get("API_PORT", "8000")),
            int(os.environ.get("MOTO_PORT", "5000")))


def _local_env(host: str, moto_port: int) -> None:
    apply_stage_env("local")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{moto_port}"


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def serialise_aws(service: str | None = None, lock: Any = None) -> Callable[[], None]:
    """DynamoDB executes each request atomically; moto in process does not under threads (a
    transaction deep-copies a table while another thread writes to it). One lock around each
    in-process botocore call (of `service` only, or of every service), as DESIGN.md asks of
    concurrency tests. Returns the undo. The local stack locks DynamoDB only: SQS long polls
    would hold the lock for seconds."""
    import botocore.client
    lock = lock or threading.Lock()
    original = botocore.client.BaseClient._make_api_call

    def atomic(self: Any, operation: str, params: Any) -> Any:
        if service is not None and self.meta.service_model.service_name != service:
            return original(self, operation, params)
        with lock:
            return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = atomic  # type: ignore[method-assign]

    def undo() -> None:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
    return undo


def serialise_moto_server(lock: Any) -> None:
    """The same lock around each DynamoDB request the moto server answers for other processes
    (`make jobs`, tests' clients): its werkzeug front end runs each request in a thread of this
    process, against the same in-memory tables as the API and the pump here. Without it, a
    `make jobs` consuming the closing queue while the stack's own pump does failed with
    "dictionary changed size during iteration" in moto."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def atomic(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with lock:
                return list(dispatch(self, environ, start_response))
        return dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = atomic  # type: ignore[method-assign]


def serve() -> int:
    from infra import iam_recorder
    iam_recorder.install_from_env()  # the tests' IAM call recording, before any AWS client
    host, api_port, moto_port = _settings()
    for port in (api_port, moto_port):
        if not _port_free(host, port):
            print(f"port {host}:{port} is in use; stop what holds it or set API_PORT/MOTO_PORT",
                  file=sys.stderr)
            return 2
    _local_env(host, moto_port)

    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log drowns ours
    from moto.server import ThreadedMotoServer

    from infra import moto_workarounds
    # moto keeps a copy of every query result (of every object it made) and copies a whole
    # table for each transaction, so a long-running stack slowed down: see there.
    # MOTO_WORKAROUNDS=0 serves moto as released, to measure the difference (bench/README.md).
    if os.environ.get("MOTO_WORKAROUNDS", "1") != "0":
        moto_workarounds.install()
    dynamo_lock = threading.Lock()
    serialise_moto_server(dynamo_lock)
    moto_server = ThreadedMotoServer(ip_address=host, port=moto_port, verbose=False)
    moto_server.start()
    # The API and the pump in this process reach the same in-memory AWS directly rather than
    # over loopback HTTP, where moto's werkzeug/Flask front end costs more than our handler's
    # own work. Other processes (`make jobs`, the AWS CLI, tests' boto3 clients) use the port.
    from moto import mock_aws
    embedded = mock_aws()
    embedded.start(reset=False)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    serialise_aws("dynamodb", dynamo_lock)  # for the life of the process, shared with the server

    from chalice.config import Config
    from chalice.local import create_local_server

    import app as app_module
    from chalicelib import wiring
    from chalicelib.core.clock import SHANGHAI
    from infra.bootstrap import bootstrap
    from infra.pump import QueuePump, Scheduler

    created = bootstrap("local", local_visibility=30)
    ops_key = json.loads(created["secrets"]["ops"])["key"]

    chalice_app: Any = app_module.app
    cfg = Config.create(chalice_stage="local", app_name="lending", project_dir=str(ROOT),
                        config_from_disk=chalice_config())
    api_server = create_local_server(chalice_app, cfg, host, api_port)

    # Answers as API Gateway does where a client can tell (infra/gateway.py): 404/405 in the
    # contract's body, the client's own address as sourceIp, HEAD, CORS preflights.
    from infra.gateway import GatewayHandler
    api_server.server.RequestHandlerClass = functools.partial(GatewayHandler, app_object=chalice_app,
                                                              config=cfg)
    api_thread = threading.Thread(target=api_server.server.serve_forever, name="api", daemon=True)
    api_thread.start()

    # Half a million objects (botocore's and moto's service models) live as long as the
    # process; a full collection walked them all and stalled requests for up to a second.
    # moto's in-memory tables then grow with every request: collect them ten times less often.
    gc.freeze()
    gen0, gen1, _gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 100)
    stop = threading.Event()
    QueuePump(chalice_app).run(stop)
    Scheduler(chalice_app).run(stop)

    print(f"Lending API    http://{host}:{api_port}   (try /health, /v1/products)", flush=True)
    print(f"Borrower page  http://{host}:{api_port}/app/", flush=True)
    print(f"Embedded AWS   http://{host}:{moto_port}  (moto: {len(created['tables'])} tables, "
          f"{len(created['queues'])} queues + DLQs, {created['products']} products seeded)", flush=True)
    print(f"Ops key        X-Ops-Key: {ops_key}", flush=True)
    print(f"Clock          {wiring.clock().now().astimezone(SHANGHAI).isoformat(timespec='seconds')} "
          "(GET /v1/ops/clock; `make jobs AT=...` moves it forward)", flush=True)
    print("Outbox         var/outbox.jsonl      Stop with Ctrl-C.", flush=True)

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    api_server.server.shutdown()
    api_server.server.server_close()
    embedded.stop(remove_data=False)
    moto_server.stop()
    print("stopped", flush=True)
    return 0


def jobs(at: str) -> int:
    """Run every scheduled job as of `at` against the running stack, then drain the queues."""
    from infra import iam_recorder
    iam_recorder.install_from_env()
    when = datetime.fromisoformat(at)
    if when.tzinfo is None:
        print("AT needs an offset, e.g. 2027-01-10T09:00:00+08:00", file=sys.stderr)
        return 2
    host, _api_port, moto_port = _settings()
    if _port_free(host, moto_port):
        print(f"no local stack on {host}:{moto_port}; start it with `make run`", file=sys.stderr)
        return 2
    _local_env(host, moto_port)
    import app as app_module

    return run_jobs(app_module.app, when)


def advance_clock(when: datetime) -> datetime:
    """Move the local stack's clock forward to `when` (never back: an earlier `when` leaves it
    where it is), then wait until every process of the stack reads the new time (each caches
    it for `testclock.CACHE_SECONDS`), so no consumer of the running stack sees a job's
    messages with the old time. Returns the clock's time."""
    import time

    from chalicelib.adapters import testclock
    from chalicelib.core.clock import SHANGHAI

    moved = testclock.CLOCK.advance_to(when)
    if moved:
        time.sleep(testclock.CACHE_SECONDS + 0.1)
    now = testclock.CLOCK.now()
    print(f"clock {'moved to' if moved else 'stays at'} {now.astimezone(SHANGHAI).isoformat(timespec='seconds')}"
          + ("" if moved else f" (later than {when.isoformat()}: that day's jobs are replayed)"), flush=True)
    return now


def run_jobs(chalice_app: Any, when: datetime) -> int:
    """The local stack's clock moved forward to `when`; every schedule as of `when`, each
    retried as Lambda retries it, and after each the queues drained as of the clock (a
    message parked until a later time stays parked). A job that still fails does not stop
    the others nor the draining of the queues. Exit status 1 if a job failed or a message went
    to a dead-letter queue (a late loan close of business could not close, say), with what
    failed on stderr: every item that could be done is done, and running the same AT again
    redoes only what is left."""
    from chalicelib.core import config
    from infra.pump import ASYNC_RETRIES, QueuePump, invoke_with_retries, schedules

    advance_clock(when)
    failed = []
    pump = QueuePump(chalice_app)
    dead_before = pump.dead_letters()
    for source in schedules(chalice_app):
        print(f"{source.name} as of {when.isoformat()}", flush=True)
        try:
            invoke_with_retries(chalice_app, source, when)
        except Exception as err:  # noqa: BLE001 - reported below; the other jobs still run
            failed.append(source.name)
            print(f"{source.name} FAILED after {1 + ASYNC_RETRIES} attempts: {err}", file=sys.stderr, flush=True)
        # What the job queued is consumed before the next job, as on AWS where the consumers
        # finish close of business's late loans (00:05) long before the reminders (09:00).
        pump.drain()
    print("queues drained", flush=True)
    for key, count in pump.dead_letters().items():
        new = count - dead_before.get(key, 0)
        if new > 0:
            failed.append(f"{key} consumer")
            print(f"{config.queue_name(key)}-dlq: {new} new message(s) failed every retry "
                  f"({', '.join(pump.dead_ids(key))})", file=sys.stderr, flush=True)
    if failed:
        print(f"{len(failed)} job(s) failed: {', '.join(failed)}. What they could do is done; run "
              f"`make jobs AT={when.isoformat()}` again once the cause is fixed.", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local_stack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the local stack until Ctrl-C")
    run_jobs = sub.add_parser("jobs", help="run every scheduled job as of a time, then drain")
    run_jobs.add_argument("--at", required=True, help="ISO time with offset")
    args = parser.parse_args(argv)
    return serve() if args.command == "serve" else jobs(args.at)


if __name__ == "__main__":
    sys.exit(main())
