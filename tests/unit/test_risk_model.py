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


def test_missing_values_take_their_own_learned_direction(session, card):
    """A NaN income must not score like income 0 or like any finite income by accident."""
    row = np.array([card["self_check"]["numeric"]], dtype=np.float32)
    cats = np.array([card["self_check"]["categorical"]], dtype=np.int64)
    j = F.NUMERIC_FEATURES.index("monthly_income_cny")
    known = session.run(["contributions"], {"numeric": row, "categorical": cats})[0][0, j]
    row[0, j] = np.nan
    missing = session.run(["contributions"], {"numeric": row, "categorical": cats})[0][0, j]
    assert missing != known
    cats_missing = cats.copy()
    cats_missing[0, 0] = -1
    out_of_range = cats.copy()
    out_of_range[0, 0] = 99
    a = session.run(["contributions"], {"numeric": row, "categorical": cats_missing})[0][0, -3]
    b = session.run(["contributions"], {"numeric": row, "categorical": out_of_range})[0][0, -3]
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


def test_policy_grade_bands_are_the_cards_suggestion(card):
    """A retrained model may suggest other bounds: then the policy must be reviewed and its
    version bumped, not silently keep bands made for another model."""
    suggested = [(g["grade"], g["probability_below"]) for g in card["grades"]["suggested_bounds"]]
    assert [(g, u) for g, u in policy.GRADE_BANDS[:-1]] == suggested[:-1]
    assert card["model_version"] == "credit-additive-gbm-1.1.0" and policy.POLICY_VERSION == "policy-1.0.0"


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

    assert RETIRED, "the model before 1.1.0 (80a2ba22…) made decisions: keep it for replay"
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
