"""The WOE logistic scorecard (the challenger) as exact lookup tables, like the champion.

A scorecard is additive too: log-odds = intercept + sum over kept features of
coefficient_j x WOE_j(bin of x_j). scorecardpy's bins are right-open, `[a, b)`, so x falls in
the bin after break b when `x >= b`. The ONNX graph of `models.additive` counts thresholds t
with `x > t`; for a float32 x (every input is float32), `x >= b` is `x > t` with t the largest
float32 strictly below b. A missing value takes the WOE of the "missing" bin, or 0 (no
evidence either way) when training had none, as the training code's `fillna(0)` does; so does
a category code outside a bin. Features the scorecard dropped (information value < 0.02) get
a table of zeros.

`tables_from_scorecard` is checked against scorecardpy + scikit-learn on every row by the
caller (models/train.py), as the champion's export is against LightGBM.
"""
from __future__ import annotations

import math

import numpy as np

from models.additive import ShapeTables


def _below_float32(b: float) -> float:
    """The largest float32 strictly below b, as a double: for a float32 x, x >= b <=> x > it."""
    f = np.float32(b)
    if float(f) >= b:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _numeric_table(bins, coefficient: float) -> tuple[np.ndarray, np.ndarray]:
    regular = bins[~bins["is_special_values"].astype(bool)]
    breaks = [float(b) for b in regular["breaks"]]
    woes = [float(w) for w in regular["woe"]]
    order = np.argsort(breaks)
    breaks = [breaks[i] for i in order]
    woes = [woes[i] for i in order]
    finite = [b for b in breaks if math.isfinite(b)]
    if len(finite) != len(breaks) - 1 or math.isfinite(breaks[-1]):
        raise ValueError(f"{bins['variable'].iloc[0]}: unexpected breaks {breaks}")
    missing = bins[bins["bin"] == "missing"]
    nan_value = float(missing["woe"].iloc[0]) if len(missing) else 0.0
    thresholds = np.array([_below_float32(b) for b in finite], dtype=np.float64)
    values = np.array([coefficient * w for w in woes] + [coefficient * nan_value], dtype=np.float64)
    return thresholds, values


def _categorical_table(bins, labels: tuple[str, ...], coefficient: float) -> np.ndarray:
    by_label: dict[str, float] = {}
    missing = 0.0
    for b, w in zip(bins["bin"], bins["woe"]):
        if b == "missing":
            missing = float(w)
            continue
        for label in str(b).split("%,%"):
            by_label[label] = float(w)
    return np.array([coefficient * by_label.get(label, 0.0) for label in labels]
                    + [coefficient * missing], dtype=np.float64)


def tables_from_scorecard(bins: dict, kept: list[str], coefficients: np.ndarray, intercept: float,
                          numeric_names: list[str], categories: dict[str, tuple[str, ...]],
                          X_centre: np.ndarray) -> ShapeTables:
    """The fitted scorecard as ShapeTables (contributions centred on `X_centre`'s mean)."""
    from models.additive import contributions

    coef = dict(zip(kept, (float(c) for c in coefficients)))
    thresholds, numeric_values, categorical_values = [], [], []
    for name in numeric_names:
        if name in coef:
            t, v = _numeric_table(bins[name], coef[name])
        else:
            t, v = np.array([], dtype=np.float64), np.zeros(2)
        thresholds.append(t)
        numeric_values.append(v)
    for name, labels in categories.items():
        categorical_values.append(_categorical_table(bins[name], labels, coef[name]) if name in coef
                                  else np.zeros(len(labels) + 1))
    tables = ShapeTables(list(numeric_names), list(categories), thresholds, numeric_values,
                         [len(v) for v in categories.values()], categorical_values, 0.0,
                         zero_band=False)
    means = contributions(tables, X_centre).mean(axis=0)
    for j in range(len(numeric_names)):
        tables.numeric_values[j] = tables.numeric_values[j] - means[j]
    for i in range(len(categories)):
        tables.categorical_values[i] = tables.categorical_values[i] - means[len(numeric_names) + i]
    tables.bias = float(intercept) + float(means.sum())
    return tables
