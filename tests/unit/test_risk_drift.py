"""PSI and the weekly window, pure: the same binning for the training baseline and the live week."""
from __future__ import annotations

import math
import random
from datetime import date, datetime

import pytest

from chalicelib.risk import drift, monitor
from chalicelib.risk import features as F


def test_psi_of_a_sample_against_its_own_distribution_is_zero_and_grows_with_a_shift():
    rng = random.Random(1)
    base = [rng.gauss(0, 1) for _ in range(20000)]
    edges = drift.quantile_edges(base, 10)
    expected = drift.numeric_shares(edges, base)
    same = drift.psi(expected, drift.numeric_shares(edges, [rng.gauss(0, 1) for _ in range(20000)]))
    small = drift.psi(expected, drift.numeric_shares(edges, [rng.gauss(0.25, 1) for _ in range(20000)]))
    large = drift.psi(expected, drift.numeric_shares(edges, [rng.gauss(1.0, 1) for _ in range(20000)]))
    assert same < 0.01 < small < 0.1 < drift.ALARM < large


def test_psi_matches_its_definition_by_hand():
    expected, actual = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    by_hand = (0.2 - 0.5) * math.log(0.2 / 0.5) + 0 + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert drift.psi(expected, actual) == pytest.approx(by_hand)
    assert drift.psi([1.0, 0.0], [0.0, 1.0]) < float("inf")   # empty bins are floored, not infinite


def test_bins_are_right_closed_with_a_slot_for_missing_and_unknown_codes():
    edges = [1.0, 2.0]
    assert [drift.numeric_bin(edges, v) for v in (0.5, 1.0, 1.5, 2.0, 9.0, None, float("nan"))] == \
        [0, 1, 1, 2, 2, 3, 3]
    assert [drift.categorical_bin(3, v) for v in (0, 2, 3, -1, None)] == [0, 2, 3, 3, 3]


@pytest.mark.parametrize("at, start, end", [
    ("2027-01-10T18:00:00+00:00", date(2027, 1, 4), date(2027, 1, 10)),   # Monday 02:00 Shanghai
    ("2027-01-11T15:59:00+00:00", date(2027, 1, 4), date(2027, 1, 10)),   # still Monday there
    ("2027-01-11T16:00:00+00:00", date(2027, 1, 5), date(2027, 1, 11)),   # Tuesday there
])
def test_the_window_is_the_last_seven_complete_shanghai_days(at, start, end):
    assert monitor.window(datetime.fromisoformat(at)) == (start, end)


def card_with_baseline() -> dict:
    inputs = {n: {"kind": "numeric", "edges": [10.0], "expected": [0.5, 0.5, 0.0]}
              for n in F.NUMERIC_FEATURES}
    inputs.update({n: {"kind": "categorical", "codes": len(F.CATEGORIES[n]),
                       "expected": [1 / len(F.CATEGORIES[n])] * len(F.CATEGORIES[n]) + [0.0]}
                   for n in F.CATEGORICAL_FEATURES})
    return {"artifact": {"sha256": "a" * 64}, "model_version": "m",
            "monitoring": {"score": {"kind": "numeric", "edges": [0.2], "expected": [0.5, 0.5, 0.0]},
                           "inputs": inputs}}


def decision(status: str, p: float | None, sha: str = "a" * 64, shadow: dict | None = None) -> dict:
    inputs = None if p is None else {"numeric": [5.0] * len(F.NUMERIC_FEATURES),
                                     "categorical": [0] * len(F.CATEGORICAL_FEATURES)}
    return {"status": status, "probability": p, "model_sha256": sha if p is not None else None,
            "model_inputs": inputs, "challenger": shadow}


def test_summary_counts_every_decision_but_scores_only_this_models():
    shadow = {"model_version": "c", "reached_model": True}
    decisions = [decision("approved", 0.1, shadow={**shadow, "agrees": True}),
                 decision("approved", 0.1, shadow={**shadow, "agrees": False}),
                 decision("declined", 0.9, shadow={**shadow, "agrees": True, "reached_model": False}),
                 decision("declined", None),                          # a hard rule, no score
                 decision("review", 0.4, sha="b" * 64, shadow={**shadow, "agrees": True})]  # old model
    out = monitor.summarise(decisions, card_with_baseline(), "c")
    assert (out["decisions"], out["approved"], out["scored"]) == (5, 2, 3)
    assert out["approval_rate"] == 0.4
    assert (out["challenger_compared"], out["challenger_agreement"]) == (2, 0.5)
    # scores 0.1, 0.1, 0.9 against a 50/50 baseline around 0.2
    assert out["score_psi"] == pytest.approx(round(drift.psi([0.5, 0.5, 0.0], [2 / 3, 1 / 3, 0.0]), 4))
    # every input sits in the first bin, against a 50/50 baseline
    assert out["input_psi"]["amount_cny"] == pytest.approx(round(drift.psi([0.5, 0.5, 0], [1, 0, 0]), 4))
    assert out["max_input_psi"] >= out["input_psi"]["home"]


def test_a_challenger_of_another_version_is_not_counted():
    decisions = [decision("approved", 0.1, shadow={"model_version": "old", "reached_model": True,
                                                   "agrees": False})]
    out = monitor.summarise(decisions, card_with_baseline(), "c")
    assert out["challenger_compared"] == 0 and out["challenger_agreement"] is None


def test_an_empty_week_has_no_rates():
    out = monitor.summarise([], card_with_baseline(), None)
    assert out["approval_rate"] is None and out["score_psi"] is None
    assert out["challenger_compared"] is None


def test_inputs_are_binned_as_the_model_saw_them_float32():
    assert monitor._float32(0.1) != 0.1 and abs(monitor._float32(0.1) - 0.1) < 1e-8
    assert monitor._float32(None) is None
