"""Record every AWS call each Lambda function makes, for the IAM coverage check.

moto enforces neither IAM nor KMS key policies, so a test run proves nothing about the
deployed roles by itself. This records, for every botocore call made while a Lambda handler
runs, which function made it (`api_handler` for a route, else the name of the schedule,
queue consumer or authorizer), the service, the operation and the parameters that name the
resource (table and index, queue, secret, key, phone or endpoint). `infra.iam_check` turns
those into the IAM actions and resource ARNs AWS authorizes, adds what AWS does on the
function's behalf (the KMS calls of DynamoDB and Secrets Manager, the SQS event source's
polling, CloudWatch Logs and X-Ray), and compares them with each function's policy.

How a running handler is known: chalice's own entry points are wrapped (`Chalice.__call__`
for the API, `EventSourceHandler.__call__` for schedules and queue consumers,
`ChaliceAuthorizer.__call__` for authorizers), whichever way a test or the local stack
invokes them. The botocore hook is a `before-parameter-build` handler registered on every
session (as moto registers its stub), so calls made through boto3, pynamodb and Powertools
are all seen.

Containers: in Lambda each function runs in containers of its own, so a data key, a secret
or a client that one function cached is never used by another. In one test process they
would be shared, and a function could pass its tests without ever making a call it makes in
AWS. So when a handler of another function than the last one starts, the per-container
caches are dropped first (`new_container`); and opened personal-data keys, cached by the
sealed value they open, are dropped before every invocation (`new_invocation`), because a
value sealed in one container is opened in another.

    install()            # before any botocore session exists (tests/conftest.py does it)
    RECORDER.snapshot()  # {"invocations": {...}, "calls": [...]}

The local stack records too when `IAM_CALLS_DIR` is set (the tests set it, and the end-to-end
tests' `make run` and `make jobs` processes inherit it): each process writes its snapshot
there when it exits, and the tests add those to their own (`merge_dumps`). There, functions
run side by side in threads, so no container is emulated: the calls are recorded as made.
"""
from __future__ import annotations

import atexit
import contextvars
import functools
import json
import os
import threading
import uuid
from collections import Counter
from typing import Any, Callable

_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("lambda_function", default=None)


def _target(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a call that say which resource it acts on (never values or items)."""
    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return {"tables": sorted(params.get("RequestItems", {}))}
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return {"items": sorted({(kind, item.get("TableName", "")) for entry in params.get("TransactItems", [])
                                     for kind, item in entry.items()})}
        return {k: params[k] for k in ("TableName", "IndexName") if k in params}
    if service == "sqs":
        return {k: params[k] for k in ("QueueUrl", "QueueName") if k in params}
    if service == "secretsmanager":
        return {"SecretId": params.get("SecretId"), "ClientRequestToken": "ClientRequestToken" in params}
    if service == "kms":
        return {"KeyId": params.get("KeyId")}
    if service == "sns":
        return {k: params[k] for k in ("TargetArn", "TopicArn") if k in params} | \
            ({"PhoneNumber": True} if "PhoneNumber" in params else {})
    if service == "s3":
        return {k: params[k] for k in ("Bucket", "Key") if k in params}
    return {"parameters": sorted(params)}


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.invocations: Counter[str] = Counter()
        self.unattributed = 0
        self._last_function: str | None = None
        self.on_new_container: Callable[[], None] = new_container
        self.on_invocation: Callable[[], None] = new_invocation

    # botocore `before-parameter-build` handler
    def before_parameter_build(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        function = _function.get()
        if function is None:
            with self._lock:
                self.unattributed += 1
            return
        service = model.service_model.service_name
        key = json.dumps({"function": function, "service": service, "operation": model.name,
                          "target": _target(service, model.name, params)}, sort_keys=True)
        with self._lock:
            self.calls[key] += 1

    def enter(self, function: str) -> contextvars.Token:
        with self._lock:
            switched = self._last_function is not None and self._last_function != function
            self._last_function = function
            self.invocations[function] += 1
        if switched:
            self.on_new_container()
        self.on_invocation()
        return _function.set(function)

    def leave(self, token: contextvars.Token) -> None:
        _function.reset(token)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            calls = [dict(json.loads(key), count=count) for key, count in sorted(self.calls.items())]
            return {"invocations": dict(sorted(self.invocations.items())), "calls": calls,
                    "unattributed_calls": self.unattributed}

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.invocations.clear()
            self.unattributed = 0
            self._last_function = None


def new_invocation() -> None:
    """Drop the opened personal-data keys: they are cached per container by the blob, and a
    blob sealed by one invocation is opened by others in other containers (of the same
    function too) with a KMS Decrypt that a shared process would never make."""
    from chalicelib.auth import pii_vault
    pii_vault.clear_data_key_cache()


def new_container() -> None:
    """Drop what a Lambda container keeps between invocations: AWS clients (and with them the
    cached secrets, token keys and queue URLs, which are tied to the client that read them),
    opened personal-data keys, the product catalog, and, outside `local`, the partner
    adapters built from their secrets. In `local` those adapters are sandboxes standing in
    for the bank and the wallet, whose memory is the outside world's, not a container's."""
    from chalicelib import wiring
    from chalicelib.auth import pii_vault, providers
    from chalicelib.adapters import aws
    from chalicelib.core import config
    from chalicelib.loans import catalog

    aws.reset()
    pii_vault.clear_data_key_cache()
    catalog.clear_cache()
    if not config.is_local():
        providers.forget_built()
        wiring.forget_built()


RECORDER = Recorder()
_installed = False


def _wrap(cls: type, name_of: Callable[[Any], str]) -> None:
    original = cls.__call__

    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = RECORDER.enter(name_of(self))
        try:
            return original(self, *args, **kwargs)
        finally:
            RECORDER.leave(token)

    call.__wrapped_by_iam_recorder__ = True  # type: ignore[attr-defined]
    cls.__call__ = call  # type: ignore[method-assign]


def _handler_name(handler: Any) -> str:
    func = getattr(handler, "func", None)
    return getattr(func, "__name__", type(handler).__name__)


def install() -> Recorder:
    """Hook botocore and chalice once per process. Must run before any botocore session is
    created (sessions copy the built-in handlers when they are made)."""
    global _installed
    if _installed:
        return RECORDER
    import botocore.handlers
    from chalice import app as chalice_app

    botocore.handlers.BUILTIN_HANDLERS.append(("before-parameter-build", RECORDER.before_parameter_build))
    _wrap(chalice_app.Chalice, lambda _app: "api_handler")
    _wrap(chalice_app.EventSourceHandler, _handler_name)
    _wrap(chalice_app.ChaliceAuthorizer, lambda auth: auth.name)
    _wrap(chalice_app.LambdaFunction, lambda fn: fn.name)
    _installed = True
    return RECORDER


ENV = "IAM_CALLS_DIR"


def install_from_env() -> None:
    """In a process of the local stack: record into `$IAM_CALLS_DIR` if it is set."""
    folder = os.environ.get(ENV)
    if not folder:
        return
    install()
    RECORDER.on_new_container = RECORDER.on_invocation = lambda: None

    def dump() -> None:
        snapshot = RECORDER.snapshot()
        if snapshot["calls"] or snapshot["invocations"]:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"calls-{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
            with open(path, "w", encoding="utf-8") as out:
                json.dump(snapshot, out)
    atexit.register(dump)


def merge_dumps(snapshot: dict[str, Any], folder: str | None) -> dict[str, Any]:
    """`snapshot` with the calls and invocations other processes wrote to `folder` added."""
    if not folder or not os.path.isdir(folder):
        return snapshot
    calls: Counter[str] = Counter()
    invocations: Counter[str] = Counter(snapshot["invocations"])
    for call in snapshot["calls"]:
        calls[json.dumps({k: v for k, v in call.items() if k != "count"}, sort_keys=True)] += call["count"]
    processes = 0
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as dumped:
            other = json.load(dumped)
        processes += 1
        invocations.update(other["invocations"])
        for call in other["calls"]:
            calls[json.dumps({k: v for k, v in call.items() if k != "count"}, sort_keys=True)] += call["count"]
    return {**snapshot, "invocations": dict(sorted(invocations.items())),
            "calls": [dict(json.loads(key), count=count) for key, count in sorted(calls.items())],
            "other_processes": processes}
