"""Population stability (PSI) of scores and inputs against the model's training baseline.

Pure Python (stdlib only), used twice so the two can never bin differently: by
`models/train.py`, which stores each baseline (bin edges and the development split's share in
each bin) in the model card under `monitoring`, and by the weekly monitoring job
(`chalicelib.risk.monitor`), which bins the week's scores and inputs with the same edges.

A numeric baseline has edges e_1 < ... < e_k: value v falls in bin #(edges <= v), so there are
k + 1 bins, then one bin for missing (None/NaN). A categorical baseline has one bin per code
and one for missing (-1 or any other code). PSI = sum over bins of (a - e) ln(a / e), with each
share floored at FLOOR so that an empty bin counts as rare rather than infinitely surprising.
Rule of thumb (and the alarm): below 0.1 stable, 0.1-0.25 watch, above 0.25 shifted.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Iterable, Sequence

FLOOR = 1e-4
ALARM = 0.25


def _missing(value: float | int | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def numeric_bin(edges: Sequence[float], value: float | None) -> int:
    if _missing(value):
        return len(edges) + 1
    return bisect_right(edges, value)


def categorical_bin(codes: int, value: int | None) -> int:
    if value is None or not isinstance(value, int) or not 0 <= value < codes:
        return codes
    return value


def numeric_shares(edges: Sequence[float], values: Iterable[float | None]) -> list[float]:
    counts = [0] * (len(edges) + 2)
    for v in values:
        counts[numeric_bin(edges, v)] += 1
    return _shares(counts)


def categorical_shares(codes: int, values: Iterable[int | None]) -> list[float]:
    counts = [0] * (codes + 1)
    for v in values:
        counts[categorical_bin(codes, v)] += 1
    return _shares(counts)


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    if len(expected) != len(actual):
        raise ValueError("baseline and sample have different bins")
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, FLOOR), max(a, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def quantile_edges(values: Sequence[float], bins: int = 10) -> list[float]:
    """Up to bins - 1 distinct cut points at the quantiles of the known values (for training)."""
    known = sorted(v for v in values if not _missing(v))
    if not known:
        return []
    edges: list[float] = []
    for q in range(1, bins):
        cut = known[min(len(known) - 1, (q * len(known)) // bins)]
        if cut > known[0] and (not edges or cut > edges[-1]):
            edges.append(cut)
    return edges


def baseline_psi(baseline: dict, values: Sequence) -> float:
    """PSI of `values` against one stored baseline (`{"kind", "edges" | "codes", "expected"}`)."""
    if baseline["kind"] == "categorical":
        actual = categorical_shares(baseline["codes"], values)
    else:
        actual = numeric_shares(baseline["edges"], values)
    return psi(baseline["expected"], actual)
