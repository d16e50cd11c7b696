"""The scorer: API fields to model inputs, and no scoring at all with a wrong model."""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.risk import features as F
from chalicelib.risk import scorer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "chalicelib" / "risk" / "artifacts"

APPLICANT = {"monthly_income": 800000, "monthly_expenses": 300000, "assets": 20000000, "debt": 0,
             "job_type": "fixed", "job_seniority_years": 6, "home": "owner",
             "marital_status": "married"}
VERSION = json.loads((ARTIFACTS / "model_card.json").read_text())["model_version"]


def rewrite_card(directory: Path, **artifact) -> None:
    card = json.loads((directory / "model_card.json").read_text())
    card["artifact"].update(artifact)
    (directory / "model_card.json").write_text(json.dumps(card))


def sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------ API -> features

def test_fen_become_cny_and_ratios_follow():
    row = F.features_from_application(APPLICANT, amount=5000000, term_months=12,
                                      has_records=False).as_dict()
    assert row["monthly_income_cny"] == 8000.0
    assert row["monthly_expenses_cny"] == 3000.0
    assert row["assets_cny"] == 200000.0 and row["debt_cny"] == 0.0
    assert row["amount_cny"] == 50000.0 and row["term_months"] == 12.0
    assert row["installment_to_income"] == pytest.approx(50000 / 12 / 8000)
    assert row["amount_to_income"] == 6.25
    assert row["free_income_cny"] == pytest.approx(8000 - 3000 - 50000 / 12)
    assert row["net_assets_cny"] == 200000.0
    assert row["has_records"] == 0.0
    assert (row["home"], row["job_type"]) == (0, 0)


def test_every_documented_category_has_its_code_and_unknown_values_are_refused():
    for feature, labels in F.CATEGORIES.items():
        for code, label in enumerate(labels):
            assert F.category_code(feature, label) == code
    with pytest.raises(ValueError):
        F.features_from_application({**APPLICANT, "home": "castle"}, 100000, 12, False)


def test_zero_income_gives_the_largest_income_ratios_never_missing_ones():
    """Income 0 used to make the ratios missing, and the model's missing slot scored better than
    1 CNY of income (issue 15): now a ratio divides by at least 1 CNY."""
    applicant = {**APPLICANT, "debt": 500000}
    none = F.features_from_application({**applicant, "monthly_income": 0}, 100000, 12, False).as_dict()
    one = F.features_from_application({**applicant, "monthly_income": 100}, 100000, 12, False).as_dict()
    some = F.features_from_application({**applicant, "monthly_income": 500000}, 100000, 12, False).as_dict()
    for name in ("installment_to_income", "expenses_to_income", "amount_to_income", "debt_to_income"):
        assert none[name] is not None and none[name] == one[name] > some[name]
    assert none["monthly_income_cny"] == 0.0 and none["free_income_cny"] < one["free_income_cny"]


def test_an_unknown_income_counts_as_no_income():
    known = dict(job_seniority_years=3.0, term_months=12, has_records=False,
                 monthly_expenses_cny=2000.0, assets_cny=0.0, debt_cny=0.0, amount_cny=10000.0,
                 home="rent", job_type="fixed")
    assert F.model_inputs(monthly_income_cny=None, **known) == F.model_inputs(monthly_income_cny=0.0, **known)


def test_no_personal_characteristic_is_a_model_input():
    assert not F.PERSONAL_CHARACTERISTICS & set(F.FEATURES)
    married = F.features_from_application({**APPLICANT, "marital_status": "married"}, 100000, 12, False)
    separated = F.features_from_application({**APPLICANT, "marital_status": "separated"}, 100000, 12, False)
    without = F.features_from_application({k: v for k, v in APPLICANT.items() if k != "marital_status"},
                                          100000, 12, False)
    assert married == separated == without


@pytest.mark.parametrize("bad", [{"monthly_income": 1.5}, {"assets": -1}, {"debt": "100"},
                                 {"monthly_expenses": True}, {"job_seniority_years": -2}])
def test_money_must_be_non_negative_integer_fen(bad):
    with pytest.raises(ValueError):
        F.features_from_application({**APPLICANT, **bad}, 100000, 12, False)


def test_features_survive_a_json_round_trip_exactly():
    row = F.features_from_application({**APPLICANT, "monthly_income": 0}, 123457, 7, True)
    again = F.ModelInputs.from_dict(json.loads(json.dumps(row.as_dict())))
    assert again.categorical == row.categorical
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(again.numeric, row.numeric))


# ----------------------------------------------------------------------------- scoring

def test_scores_an_application_with_contributions_that_add_up(model_dir):
    inputs, result = scorer.score_application(APPLICANT, 5000000, 12, False)
    assert 0 < result.probability < 1
    assert set(result.contributions) == set(F.FEATURES)
    logit = math.log(result.probability / (1 - result.probability))
    assert result.bias + sum(result.contributions.values()) == pytest.approx(logit, abs=1e-9)
    assert result.model_version == VERSION
    ok, detail = scorer.model_status()
    assert ok and detail.startswith(f"{VERSION} sha256:")


def test_a_past_overdue_record_raises_the_risk(model_dir):
    _, clean = scorer.score_application(APPLICANT, 5000000, 12, False)
    _, records = scorer.score_application(APPLICANT, 5000000, 12, True)
    assert records.probability > clean.probability
    assert records.contributions["has_records"] > 0 > clean.contributions["has_records"]


def test_missing_model_file_is_unavailable(model_dir):
    (model_dir / "credit_model.onnx").unlink()
    with pytest.raises(scorer.ModelUnavailable):
        scorer.score_application(APPLICANT, 5000000, 12, False)
    ok, detail = scorer.model_status()
    assert not ok and "missing" in detail


def test_missing_card_is_unavailable(model_dir):
    (model_dir / "model_card.json").unlink()
    with pytest.raises(scorer.ModelUnavailable):
        scorer.score(F.features_from_application(APPLICANT, 5000000, 12, False))


def test_truncated_model_is_unavailable_even_if_the_card_is_made_to_match(model_dir):
    path = model_dir / "credit_model.onnx"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(scorer.ModelUnavailable, match="SHA-256"):
        scorer.score_application(APPLICANT, 5000000, 12, False)
    rewrite_card(model_dir, sha256=sha(path))
    scorer.reset()
    with pytest.raises(scorer.ModelUnavailable):
        scorer.score_application(APPLICANT, 5000000, 12, False)


def test_swapped_model_is_unavailable_even_if_the_card_is_made_to_match(model_dir):
    """Another valid ONNX graph (here: the same graph with a different bias) is refused by the
    hash, and, if someone also rewrites the hash, by the card's self-check."""
    card = json.loads((model_dir / "model_card.json").read_text())
    path = model_dir / "credit_model.onnx"
    blob = path.read_bytes()
    old = struct.pack("<d", card["bias"])
    assert blob.count(old) == 1
    path.write_bytes(blob.replace(old, struct.pack("<d", card["bias"] + 1.0)))
    with pytest.raises(scorer.ModelUnavailable, match="SHA-256"):
        scorer.score_application(APPLICANT, 5000000, 12, False)
    rewrite_card(model_dir, sha256=sha(path))
    scorer.reset()
    with pytest.raises(scorer.ModelUnavailable, match="self-check"):
        scorer.score_application(APPLICANT, 5000000, 12, False)
    assert scorer.model_status()[0] is False


def test_a_card_for_other_features_is_refused(model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    card["inputs"]["numeric"]["columns"] = list(reversed(card["inputs"]["numeric"]["columns"]))
    (model_dir / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(scorer.ModelUnavailable, match="features"):
        scorer.score_application(APPLICANT, 5000000, 12, False)


def test_importing_the_scorer_does_not_import_onnxruntime():
    code = ("import sys; sys.path.insert(0, %r); import chalicelib.risk.scorer, chalicelib.risk.policy;"
            "print('onnxruntime' in sys.modules, 'numpy' in sys.modules)" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
