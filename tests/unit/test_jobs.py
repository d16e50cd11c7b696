"""Batch jobs whose items fail alone (chalicelib/core/jobs.py), without AWS."""
from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.core import jobs, observability
from chalicelib.core.errors import JobIncomplete


@pytest.fixture()
def metric_values(monkeypatch):
    seen: Counter[str] = Counter()
    monkeypatch.setattr(observability.metrics, "add_metric",
                        lambda name, unit, value, **kw: seen.update({name: value}))
    return seen


def test_an_item_that_keeps_failing_is_retried_after_the_others_and_reported(metric_values):
    # Given four items, "b" failing every time and "c" failing on its first try only
    calls: list[str] = []

    def work(item: str) -> str:
        calls.append(item)
        if item == "b" or (item == "c" and calls.count("c") == 1):
            raise RuntimeError(f"{item} failed")
        return item.upper()

    # When they are processed alone
    outcome = jobs.each_alone("test job", ["a", "b", "c", "d"], work, item_id=str, id_field="item",
                              failure_metric="TestItemFailed")

    # Then the others were not held up, "c" got through on the second pass, "b" is reported
    assert calls[:4] == ["a", "b", "c", "d"] and calls[4:] == ["b", "c", "b"]
    assert outcome.done == [("a", "A"), ("d", "D"), ("c", "C")]
    assert outcome.failed == ["b"] and outcome.retried == 1
    assert metric_values["TestItemFailed"] == 1


def test_a_clean_run_counts_zero_failures_so_the_metric_always_has_data(metric_values):
    outcome = jobs.each_alone("test job", [1, 2], lambda n: n * 2, item_id=str, id_field="item",
                              failure_metric="TestItemFailed")
    assert outcome.done == [(1, 2), (2, 4)] and outcome.failed == []
    assert "TestItemFailed" in metric_values and metric_values["TestItemFailed"] == 0


def test_a_dying_container_is_not_contained(metric_values):
    def die(item: int) -> None:
        raise SystemExit("Lambda timed out")

    with pytest.raises(SystemExit):
        jobs.each_alone("test job", [1, 2], die, item_id=str, id_field="item", failure_metric="TestItemFailed")


def test_the_handler_raises_naming_every_failed_item_or_answers_the_result():
    assert jobs.raise_if_incomplete("job", {"done": 3, "failed": []}, "failed") == {"done": 3, "failed": []}
    many = [f"id-{n}" for n in range(25)]
    with pytest.raises(JobIncomplete) as err:
        jobs.raise_if_incomplete("job", {"failed": many}, "failed")
    assert err.value.failed == tuple(many)
    assert "25 item(s) failed" in err.value.message and "id-19" in err.value.message
    assert "id-24" not in err.value.message  # the message stays short; `failed` has them all
