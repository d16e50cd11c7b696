"""Batch jobs whose items fail alone: one bad loan or intent never stops the others.

How "retried" works, in three layers, each safe only because every item's work is idempotent
(per installment and day, per repayment id) and commits whole or not at all:

1. Within the run: an item that raises is tried again after the rest of the batch, up to
   `passes` times in all. A fault that passes (throttling beyond botocore's retries, a
   transaction conflict) has usually passed by then, and no other item waited for it.
2. The invocation: items still failing are logged with their id, counted in a metric, and the
   job's handler raises `JobIncomplete` once all other items are done. EventBridge invokes the
   function asynchronously, so Lambda retries the same event (twice by default, a minute or
   more apart); the event carries the business date, and a rerun redoes only what failed,
   because what succeeded is already written and is found done.
3. The next scheduled run: close of business catches up every day not yet posted and the
   reconciler reads every unsettled intent, so an item that fails for hours is finished by
   a later run once the fault is gone, with nothing done twice.

Only `Exception`s are contained: a `BaseException` (the container dying, a timeout) ends the
invocation, as it would in Lambda.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, TypeVar

from chalicelib.core.errors import JobIncomplete
from chalicelib.core.observability import logger, metrics

T = TypeVar("T")
R = TypeVar("R")

PASSES = 3


@dataclass
class Outcome(Generic[T, R]):
    done: list[tuple[T, R]] = field(default_factory=list)
    failed: list[T] = field(default_factory=list)
    retried: int = 0  # failed attempts that a later pass got through


def each_alone(job: str, items: Iterable[T], work: Callable[[T], R], *, item_id: Callable[[T], str],
               id_field: str, failure_metric: str, passes: int = PASSES) -> Outcome[T, R]:
    """Run `work` on every item; an item that raises is logged with its id (`id_field` in the
    log line) and tried again after the others, up to `passes` times. Counts the items that
    never went through in `failure_metric` (0 on a clean run, so the metric always has data)."""
    outcome: Outcome[T, R] = Outcome()
    pending = list(items)
    for attempt in range(1, passes + 1):
        failing = []
        for item in pending:
            try:
                outcome.done.append((item, work(item)))
            except Exception:  # noqa: BLE001 - contained: logged, counted, retried
                logger.exception(f"{job}: item failed", extra={id_field: item_id(item), "attempt": attempt,
                                                              "of": passes})
                failing.append(item)
        outcome.retried += len(pending) - len(failing) if attempt > 1 else 0
        pending = failing
        if not pending:
            break
    outcome.failed = pending
    for item in pending:
        logger.error(f"{job}: item still failing; the invocation will report failure",
                     extra={id_field: item_id(item), "attempts": passes})
    metrics.add_metric(name=failure_metric, unit="Count", value=len(pending))
    return outcome


def raise_if_incomplete(job: str, result: dict[str, Any], failed_key: str) -> dict[str, Any]:
    """In a job's handler: answer `result`, or raise `JobIncomplete` naming what failed (the
    first 20 ids), so Lambda counts an error and retries the event."""
    failed = result.get(failed_key) or []
    if failed:
        shown = ", ".join(str(f) for f in failed[:20]) + (" ..." if len(failed) > 20 else "")
        raise JobIncomplete(f"{job}: {len(failed)} item(s) failed after retries: {shown}",
                            failed=tuple(str(f) for f in failed))
    return result
