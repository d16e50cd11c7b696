"""The committed credit model: it is the one its card names, and it agrees with its source.

The agreement fixture (`models/agreement_fixture.csv.gz`) holds every row of the training data
as the ONNX model sees it and LightGBM's own answer, written by `models/train.py`, so this test
needs neither LightGBM nor the data package.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from chalicelib.risk import features as F
from chalicelib.risk import policy, reasons, scorer

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
RUNTIME = ROOT / "chalicelib" / "risk" / "artifacts"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((MODELS / "model_card.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(str(MODELS / "credit_model.onnx"), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def fixture_rows():
    with gzip.open(MODELS / "agreement_fixture.csv.gz", "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    numeric = np.array([[np.float32(r[n]) if r[n] != "" else np.float32("nan")
                         for n in F.NUMERIC_FEATURES] for r in rows], dtype=np.float32)
    categorical = np.array([[int(r[n]) for n in F.CATEGORICAL_FEATURES] for r in rows], dtype=np.int64)
    probability = np.array([float(r["source_probability"]) for r in rows])
    logit = np.array([float(r["source_logit"]) for r in rows])
    return numeric, categorical, probability, logit


def test_the_runtime_copy_is_byte_identical_to_models():
    for name in ("credit_model.onnx", "model_card.json"):
        assert (RUNTIME / name).read_bytes() == (MODELS / name).read_bytes(), \
            f"{name}: run `make model` (or copy models/{name} to chalicelib/risk/artifacts/)"


def test_the_card_names_the_committed_file(card):
    blob = (MODELS / "credit_model.onnx").read_bytes()
    assert card["artifact"]["sha256"] == hashlib.sha256(blob).hexdigest()
    assert card["artifact"]["bytes"] == len(blob)


def test_onnx_agrees_with_lightgbm_on_every_row_of_the_data(session, fixture_rows, card):
    numeric, categorical, source_p, source_logit = fixture_rows
    assert len(source_p) == card["data"]["rows"] == 4454
    p, logit = session.run(["probability", "logit"], {"numeric": numeric, "categorical": categorical})
    assert np.max(np.abs(p - source_p)) <= TOLERANCE
    assert np.max(np.abs(logit - source_logit)) <= TOLERANCE


def test_contributions_plus_bias_are_the_logit_of_the_probability(session, fixture_rows, card):
    numeric, categorical, source_p, _ = fixture_rows
    p, contrib, bias = session.run(["probability", "contributions", "bias"],
                                   {"numeric": numeric, "categorical": categorical})
    assert contrib.shape == (len(p), len(F.FEATURES))
    assert bias[0] == pytest.approx(card["bias"], abs=1e-12)
    log_odds = np.log(p) - np.log1p(-p)
    assert np.max(np.abs(contrib.sum(axis=1) + bias[0] - log_odds)) <= TOLERANCE
    # and the source model's probability, not only ONNX's own
    assert np.max(np.abs(1 / (1 + np.exp(-(contrib.sum(axis=1) + bias[0]))) - source_p)) <= TOLERANCE


def test_an_unknown_income_scores_no_better_than_any_income(session, card):
    """Unknown income is no income (the features never pass NaN for it, and training took the
    data set's unknown incomes as 0): even a NaN that reached the graph scores like income 0,
    the worst step of the income table."""
    row = np.array([card["self_check"]["numeric"]], dtype=np.float32)
    cats = np.array([card["self_check"]["categorical"]], dtype=np.int64)
    j = F.NUMERIC_FEATURES.index("monthly_income_cny")
    incomes = np.array([np.nan, 0.0, 0.01, 1.0, 500.0, 3000.0, 8000.0, 50000.0], dtype=np.float32)
    rows = np.repeat(row, len(incomes), axis=0)
    rows[:, j] = incomes
    contrib = session.run(["contributions"], {"numeric": rows,
                                              "categorical": np.repeat(cats, len(incomes), axis=0)})[0][:, j]
    assert contrib[0] == contrib[1] == contrib.max()


def test_unknown_category_codes_score_as_missing(session, card):
    row = np.array([card["self_check"]["numeric"]], dtype=np.float32)
    cats = np.array([card["self_check"]["categorical"]], dtype=np.int64)
    home = len(F.NUMERIC_FEATURES) + F.CATEGORICAL_FEATURES.index("home")
    cats_missing = cats.copy()
    cats_missing[0, 0] = -1
    out_of_range = cats.copy()
    out_of_range[0, 0] = 99
    a = session.run(["contributions"], {"numeric": row, "categorical": cats_missing})[0][0, home]
    b = session.run(["contributions"], {"numeric": row, "categorical": out_of_range})[0][0, home]
    assert a == b


def test_card_lists_the_features_the_code_builds(card):
    assert card["inputs"]["numeric"]["columns"] == list(F.NUMERIC_FEATURES)
    assert card["inputs"]["categorical"]["columns"] == list(F.CATEGORICAL_FEATURES)
    assert [f["name"] for f in card["features"]] == list(F.FEATURES)
    assert all(f["unit"] and f["api_mapping"] for f in card["features"])
    assert set(reasons.FEATURE_REASONS) == set(F.FEATURES)


def test_card_records_metrics_with_spread_and_the_data_licence(card):
    m = card["metrics"]["credit_data"]["additive_lgbm"]
    for key in ("auc", "ks", "brier"):
        assert m["cv"][key]["sd"] > 0 and 0 < m["cv"][key]["mean"] < 1
        assert 0 < m["holdout"][key] < 1
    assert m["cv"]["folds"] == 25
    assert "woe_scorecard" in card["metrics"]["credit_data"]
    assert "unconstrained_lgbm" in card["metrics"]["credit_data"]
    assert "german_credit" in card["metrics"]
    assert "licence" in card["data"] and "GPL" in card["data"]["licence"]


def test_the_card_states_issue_15s_targets_and_whether_each_is_met(card):
    m = card["metrics"]
    assert m["targets"] == {"credit_data_cv_auc": 0.835, "credit_data_holdout_auc": 0.85}
    a = m["credit_data"]["additive_lgbm"]
    expected = {f"credit_data CV AUC {a['cv']['auc']['mean']:.4f}": a["cv"]["auc"]["mean"] >= 0.835,
                f"credit_data held-out AUC {a['holdout']['auc']:.4f}": a["holdout"]["auc"] >= 0.85}
    assert m["targets_met"] == expected
    text = (MODELS / "MODEL_CARD.md").read_text(encoding="utf-8")
    for ok in expected.values():
        assert ("**met**" if ok else "**not met**") in text
    assert "## Fairness" in text and "## Monotonicity" in text and "## Known limits" in text


def test_no_personal_characteristic_is_an_input_of_either_model(card):
    challenger = json.loads((MODELS / "challenger" / "model_card.json").read_text(encoding="utf-8"))
    for c in (card, challenger):
        columns = c["inputs"]["numeric"]["columns"] + c["inputs"]["categorical"]["columns"]
        assert not set(columns) & F.PERSONAL_CHARACTERISTICS
        assert not set(c["categorical_encodings"]) & F.PERSONAL_CHARACTERISTICS
        assert not {f["name"] for f in c["features"]} & F.PERSONAL_CHARACTERISTICS
    assert card["personal_characteristics"]["inputs"] == []
    for path in (MODELS / "credit_model.onnx", MODELS / "challenger" / "credit_model.onnx"):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        names = meta["numeric_features"].split(",") + meta["categorical_features"].split(",")
        assert names == list(F.FEATURES)


def test_the_card_reviews_fairness_population_monotonicity_and_drift(card):
    fair = card["fairness"]
    assert [r["group"] for r in fair["by_age_band"]] == ["<25", "25-34", "35-49", "50+"]
    assert {r["group"] for r in fair["by_marital_status"]} >= {"married", "single", "separated"}
    for rows in (fair["by_age_band"], fair["by_marital_status"]):
        assert sum(r["rows"] for r in rows) == card["data"]["rows"]
        assert max(r["adverse_impact_ratio_model_only"] for r in rows if not r["small"]) == 1.0
        for r in rows:
            assert 0 <= r["approval_rate_with_hard_rules"] <= r["approval_rate_model_only"] <= 1
    reached = card["reached_population"]
    assert reached["rows"] == sum(r["pass_hard_rules"] for r in fair["by_age_band"]) < card["data"]["rows"]
    assert reached["reached"]["rows"] + reached["not_reached"]["rows"] == card["data"]["rows"]
    sweep = card["monotonicity"]["sweep"]
    assert sweep["violations"] == 0 and sweep["steps_checked"] > 100_000
    assert set(sweep["fields"]) >= {"monthly_income", "monthly_expenses", "amount", "debt", "assets"}
    assert all(t["monotone"] for t in card["monotonicity"]["step_tables"].values())
    baseline = card["monitoring"]
    assert set(baseline["inputs"]) == set(F.FEATURES)
    for b in [baseline["score"], *baseline["inputs"].values()]:
        assert abs(sum(b["expected"]) - 1) < 1e-4
    assert [r["variant"].startswith("1.1.0") for r in card["tradeoff"]][0]


def test_the_challenger_agrees_with_its_source_on_every_row(fixture_rows):
    numeric, categorical, _, _ = fixture_rows
    with gzip.open(MODELS / "agreement_fixture.csv.gz", "rt", encoding="utf-8") as f:
        source = np.array([float(r["challenger_source_probability"]) for r in csv.DictReader(f)])
    sess = ort.InferenceSession(str(MODELS / "challenger" / "credit_model.onnx"),
                                providers=["CPUExecutionProvider"])
    p = sess.run(["probability"], {"numeric": numeric, "categorical": categorical})[0]
    assert np.max(np.abs(p - source)) <= TOLERANCE


def test_the_challenger_is_registered_as_it_was_trained_and_names_its_file():
    card = json.loads((MODELS / "challenger" / "model_card.json").read_text(encoding="utf-8"))
    blob = (MODELS / "challenger" / "credit_model.onnx").read_bytes()
    assert card["artifact"]["sha256"] == hashlib.sha256(blob).hexdigest()
    for name in ("credit_model.onnx", "model_card.json"):
        assert (RUNTIME / "challenger" / name).read_bytes() == (MODELS / "challenger" / name).read_bytes()
    champion = json.loads((MODELS / "model_card.json").read_text(encoding="utf-8"))
    assert champion["challenger"]["sha256"] == card["artifact"]["sha256"]
    assert len(blob) < 100_000  # the package stays small


def test_policy_grade_bands_are_the_cards_suggestion(card):
    """A retrained model may suggest other bounds: then the policy must be reviewed and its
    version bumped, not silently keep bands made for another model."""
    suggested = [(g["grade"], g["probability_below"]) for g in card["grades"]["suggested_bounds"]]
    assert [(g, u) for g, u in policy.GRADE_BANDS[:-1]] == suggested[:-1]
    assert card["model_version"] == "credit-additive-gbm-2.0.0" and policy.POLICY_VERSION == "policy-1.1.0"


@pytest.mark.parametrize("feature", [f["name"] for f in json.loads(
    (MODELS / "model_card.json").read_text(encoding="utf-8"))["features"] if f["monotone"]])
def test_monotone_features_move_risk_one_way_only(feature, card):
    """Directional reason messages ("… is high compared with your income") are true only if the
    model's step function for that feature never turns back."""
    direction = next(f["monotone"] for f in card["features"] if f["name"] == feature)
    j = F.NUMERIC_FEATURES.index(feature)
    sess = ort.InferenceSession(str(MODELS / "credit_model.onnx"), providers=["CPUExecutionProvider"])
    grid = np.concatenate([np.linspace(-5, 5, 201), np.geomspace(1e-3, 1e7, 400),
                           -np.geomspace(1e-3, 1e7, 400)]).astype(np.float32)
    grid.sort()
    numeric = np.tile(np.array(card["self_check"]["numeric"], dtype=np.float32), (len(grid), 1))
    numeric[:, j] = grid
    cats = np.tile(np.array(card["self_check"]["categorical"], dtype=np.int64), (len(grid), 1))
    contrib = sess.run(["contributions"], {"numeric": numeric, "categorical": cats})[0][:, j]
    steps = np.diff(contrib) * direction
    assert steps.min() >= -1e-12


def test_scorer_reproduces_the_cards_self_check(card):
    scorer.reset()
    try:
        inputs = F.ModelInputs(tuple(card["self_check"]["numeric"]),
                               tuple(card["self_check"]["categorical"]))
        result = scorer.score(inputs)
        assert result.probability == pytest.approx(card["self_check"]["probability"], abs=1e-12)
        assert result.model_sha256 == card["artifact"]["sha256"]
        assert math.isclose(result.bias + sum(result.contributions.values()), result.logit,
                            abs_tol=1e-9)
    finally:
        scorer.reset()


def test_reason_codes_are_unique_and_every_one_has_both_languages():
    all_codes = list(reasons.all_codes())
    assert len(all_codes) == len(set(all_codes))
    assert all(code.replace("_", "").isalpha() and code.isupper() for code in all_codes)
    for code in reasons.RULE_REASONS:
        assert reasons.rule_reason(code, "en")["message"] and reasons.rule_reason(code, "zh")["message"]
    for feature in F.FEATURES:
        en, zh = reasons.feature_reason(feature, "en"), reasons.feature_reason(feature, "zh")
        assert en["code"] == zh["code"] and en["message"] != zh["message"]


# ------------------------------------------------------------------ retired models (replay)

RETIRED = sorted((RUNTIME / "retired").iterdir())


def test_models_that_decided_before_stay_packaged_and_verify():
    from chalicelib.risk.features import ModelInputs

    assert {d.name for d in RETIRED} >= {"80a2ba22d5a70a8a", "2cc8a9991f97c4f1"}, \
        "models 1.0.0 (80a2ba22…) and 1.1.0 (2cc8a999…) made decisions: keep them for replay"
    current = json.loads((RUNTIME / "model_card.json").read_text(encoding="utf-8"))
    for directory in RETIRED:
        old = json.loads((directory / "model_card.json").read_text(encoding="utf-8"))
        sha = hashlib.sha256((directory / "credit_model.onnx").read_bytes()).hexdigest()
        assert sha == old["artifact"]["sha256"] and directory.name == sha[:16]
        assert old["model_version"] != current["model_version"]
        check = old["self_check"]
        replayed = scorer.score_with(sha, ModelInputs(tuple(check["numeric"]), tuple(check["categorical"])))
        assert replayed.probability == pytest.approx(check["probability"], abs=1e-9)
        assert replayed.model_version == old["model_version"] and replayed.model_sha256 == sha


def test_placing_a_new_model_retires_the_one_it_replaces(tmp_path):
    from models.place import place

    first, second, target = tmp_path / "first", tmp_path / "second", tmp_path / "artifacts"
    shutil.copytree(RETIRED[0], first)
    second.mkdir()
    for name in ("credit_model.onnx", "model_card.json"):
        shutil.copyfile(MODELS / name, second / name)
    assert place(first, target) is None                    # nothing there before
    old_sha = hashlib.sha256((first / "credit_model.onnx").read_bytes()).hexdigest()
    assert place(second, target) == old_sha
    kept = target / "retired" / old_sha[:16]
    assert (kept / "credit_model.onnx").read_bytes() == (first / "credit_model.onnx").read_bytes()
    assert (target / "credit_model.onnx").read_bytes() == (second / "credit_model.onnx").read_bytes()
    assert place(second, target) is None                   # the same model again retires nothing
    assert [p.name for p in (target / "retired").iterdir()] == [old_sha[:16]]
