"""Model-risk review of a trained credit model (issue 15), on the data set's own rows.

- The policy's hard rules applied to each row of credit_data, as the API would apply them to
  that applicant (`passes_hard_rules`): only those rows ever reach the model in production.
- Fairness by age band and marital status (neither is a model input): approval rate, bad rate,
  AUC, and the adverse-impact ratio against the best group, with and without the hard rules.
- The figures on the population that reaches the model.
- The monitoring baseline: bin edges and development-split shares of the score and of every
  input, binned by `chalicelib.risk.drift` (the weekly job uses the same code).
- The data set's rows as API applications (fen, enums), the bases of the monotonicity sweep.

"Approved" here is the model's grade action (probability < the approve bound, grades A-C); with
the hard rules, an applicant is approved when the rules pass and the model approves.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from chalicelib.risk import drift
from chalicelib.risk import features as F
from chalicelib.risk import policy

AGE_BANDS = (("<25", 18, 24), ("25-34", 25, 34), ("35-49", 35, 49), ("50+", 50, 200))
APPROVE_BELOW = max(upper for grade, upper in policy.GRADE_BANDS
                    if policy.GRADE_ACTION[grade] == policy.APPROVED)
REVIEW_BELOW = max(upper for grade, upper in policy.GRADE_BANDS
                   if policy.GRADE_ACTION[grade] == policy.REVIEW)
SMALL_GROUP = 50  # fewer rows than this: the figures are shown but flagged as noisy


def age_band(age: float) -> str:
    for name, low, high in AGE_BANDS:
        if low <= age <= high:
            return name
    return "other"


def passes_hard_rules(source: pd.DataFrame, cny_per_unit: float) -> np.ndarray:
    """The policy's rules that a data-set row can fail, as for a first application with no
    loans: age 18-65, amount at most a third of a year's income (4 months; unknown income is
    no income), at most 200,000 CNY in all."""
    income_fen = source["Income"].fillna(0).to_numpy() * cny_per_unit * 100
    amount_fen = source["Amount"].to_numpy() * cny_per_unit * 100
    age = source["Age"].to_numpy()
    return ((age >= policy.MIN_AGE) & (age <= policy.MAX_AGE)
            & (amount_fen * 3 <= income_fen * 12)
            & (amount_fen <= policy.TOTAL_DEBT_CAP_FEN))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return round(float(roc_auc_score(y, p)), 4) if 0 < y.sum() < len(y) else None


def _ks(y: np.ndarray, p: np.ndarray) -> float | None:
    if not 0 < y.sum() < len(y):
        return None
    fpr, tpr, _ = roc_curve(y, p)
    return round(float(np.max(tpr - fpr)), 4)


def group_table(groups: np.ndarray, order: list[str], y: np.ndarray, p: np.ndarray,
                rules: np.ndarray) -> list[dict]:
    """Per group: rows, bad rate, AUC; approval without rules (model alone) and with them."""
    approve = p < APPROVE_BELOW
    rows = []
    for g in order:
        m = groups == g
        if not m.any():
            continue
        reached = m & rules
        rows.append({
            "group": g, "rows": int(m.sum()), "bad_rate": round(float(y[m].mean()), 4),
            "auc": _auc(y[m], p[m]),
            "approval_rate_model_only": round(float(approve[m].mean()), 4),
            "bad_rate_of_approved_model_only": (round(float(y[m & approve].mean()), 4)
                                                if (m & approve).any() else None),
            "pass_hard_rules": int(reached.sum()),
            "approval_rate_with_hard_rules": round(float((approve & rules)[m].mean()), 4),
            "auc_reached": _auc(y[reached], p[reached]) if reached.sum() >= 2 else None,
            "bad_rate_reached": round(float(y[reached].mean()), 4) if reached.any() else None,
            "small": bool(m.sum() < SMALL_GROUP)})
    for key in ("approval_rate_model_only", "approval_rate_with_hard_rules"):
        best = max(r[key] for r in rows if not r["small"])
        for r in rows:
            r[key.replace("approval_rate", "adverse_impact_ratio")] = \
                round(r[key] / best, 4) if best > 0 else None
    return rows


def fairness(source: pd.DataFrame, y: np.ndarray, p: np.ndarray, rules: np.ndarray) -> dict:
    ages = np.array([age_band(a) for a in source["Age"].to_numpy()])
    marital = np.array([m if isinstance(m, str) else "unknown" for m in source["Marital"]])
    by_age = group_table(ages, [b for b, _, _ in AGE_BANDS], y, p, rules)
    by_marital = group_table(marital, ["married", "single", "separated", "divorced", "widow",
                                       "unknown"], y, p, rules)

    def minimum(rows: list[dict], key: str) -> dict:
        big = [r for r in rows if not r["small"] and r[key] is not None]
        worst = min(big, key=lambda r: r[key])
        return {"group": worst["group"], "ratio": worst[key]}

    return {
        "by_age_band": by_age, "by_marital_status": by_marital,
        "lowest_adverse_impact_ratio": {
            f"{name}_{key}": minimum(rows, f"adverse_impact_ratio_{key}")
            for name, rows in (("age", by_age), ("marital", by_marital))
            for key in ("model_only", "with_hard_rules")},
        "rule_of_thumb": 0.8,
        "small_group_rows": SMALL_GROUP,
    }


def population(y: np.ndarray, p: np.ndarray) -> dict:
    approve = p < APPROVE_BELOW
    review = (p >= APPROVE_BELOW) & (p < REVIEW_BELOW)
    return {"rows": int(len(y)), "bad_rate": round(float(y.mean()), 4), "auc": _auc(y, p),
            "ks": _ks(y, p), "brier": round(float(brier_score_loss(y, p)), 4),
            "approve": round(float(approve.mean()), 4), "review": round(float(review.mean()), 4),
            "decline": round(float((~approve & ~review).mean()), 4),
            "bad_rate_of_approved": round(float(y[approve].mean()), 4) if approve.any() else None}


def monitoring_baseline(probabilities: np.ndarray, X: np.ndarray, rows: int) -> dict:
    """Bins and shares of the development split, for the weekly PSI (chalicelib.risk.monitor)."""
    n_num = len(F.NUMERIC_FEATURES)
    score_edges = drift.quantile_edges([float(v) for v in probabilities], 10)
    inputs = {}
    for j, name in enumerate(F.NUMERIC_FEATURES):
        values = [None if math.isnan(v) else float(np.float32(v)) for v in X[:, j]]
        edges = drift.quantile_edges([v for v in values if v is not None], 10)
        inputs[name] = {"kind": "numeric", "edges": edges,
                        "expected": [round(e, 6) for e in drift.numeric_shares(edges, values)]}
    for i, name in enumerate(F.CATEGORICAL_FEATURES):
        codes = len(F.CATEGORIES[name])
        values = [None if math.isnan(v) else int(v) for v in X[:, n_num + i]]
        inputs[name] = {"kind": "categorical", "codes": codes,
                        "expected": [round(e, 6) for e in drift.categorical_shares(codes, values)]}
    return {"population": f"development split of credit_data ({rows} rows), scored by this model",
            "bins": "numeric: value v in bin #(edges <= v), then a bin for missing; "
                    "categorical: one bin per code, then missing",
            "alarm_psi": drift.ALARM,
            "score": {"kind": "numeric", "edges": score_edges,
                      "expected": [round(e, 6) for e in
                                   drift.numeric_shares(score_edges, [float(v) for v in probabilities])]},
            "inputs": inputs}


def api_bases(source: pd.DataFrame, cny_per_unit: float) -> list[dict]:
    """Every row as the API would receive it (fen, enums; unknown money as 0, unknown home or
    job as the catch-all value), for the monotonicity sweep."""
    fen = cny_per_unit * 100

    def money(v) -> int:
        return 0 if v is None or (isinstance(v, float) and math.isnan(v)) else int(round(v * fen))

    homes, jobs = F.CATEGORIES["home"], F.CATEGORIES["job_type"]
    out = []
    for r in source.itertuples(index=False):
        out.append({"applicant": {"monthly_income": money(r.Income), "monthly_expenses": money(r.Expenses),
                                  "assets": money(r.Assets), "debt": money(r.Debt),
                                  "job_type": r.Job if r.Job in jobs else "others",
                                  "job_seniority_years": int(r.Seniority),
                                  "home": r.Home if r.Home in homes else "other"},
                    "amount": money(r.Amount), "term_months": int(r.Time),
                    "has_records": r.Records == "yes"})
    return out
