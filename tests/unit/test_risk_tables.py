"""The challenger's lookup tables in plain Python (risk.tables): the same probabilities as
onnxruntime, used only when they agree, and onnxruntime again when they do not."""
from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from chalicelib.risk import scorer
from chalicelib.risk import tables as T
from chalicelib.risk.features import ModelInputs

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "chalicelib" / "risk" / "artifacts"
CHALLENGER = ARTIFACTS / "challenger" / "credit_model.onnx"


def fixture_rows() -> list[tuple[list[float], list[int]]]:
    """The 4,454 rows of credit_data as model inputs (models/agreement_fixture.csv.gz)."""
    with gzip.open(ROOT / "models" / "agreement_fixture.csv.gz", "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    numeric = [k for k in rows[0] if k not in {"home", "job_type"} and "probability" not in k
               and "logit" not in k]
    return [([float(r[k]) if r[k] != "" else math.nan for k in numeric],
             [int(r["home"]), int(r["job_type"])]) for r in rows]


def onnxruntime(path: Path, rows) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probability"], {
        "numeric": np.array([r[0] for r in rows], dtype=np.float32),
        "categorical": np.array([r[1] for r in rows], dtype=np.int64)})[0]


def test_the_graph_read_is_the_one_onnxruntime_runs():
    graph = T.read_graph(CHALLENGER.read_bytes())
    assert graph.ops in (T.OPS_WITH_ZERO_BAND, T.OPS_WITHOUT)
    dims, flat = graph.tensors["thresholds"]
    assert len(flat) == math.prod(dims) and dims[1] == 14


@pytest.mark.parametrize("artifact", ["challenger/credit_model.onnx", "credit_model.onnx"])
def test_the_tables_give_onnxruntimes_probability_on_every_row_of_the_data(artifact):
    path = ARTIFACTS / artifact
    tables = T.from_onnx(path.read_bytes())
    rows = fixture_rows()
    expected = onnxruntime(path, rows)
    gaps = [abs(tables.probability(n, c) - float(p)) for (n, c), p in zip(rows, expected)]
    assert len(gaps) == 4454 and max(gaps) <= T.PROBE_TOLERANCE


def test_the_probe_rows_reach_every_bin_and_slot_of_every_feature():
    tables = T.from_onnx(CHALLENGER.read_bytes())
    base = fixture_rows()[0]
    rows = T.probe_rows(tables, *base)
    for j, cuts in enumerate(tables.thresholds):
        reached = set()
        for numeric, _ in rows:
            x = float(np.float32(numeric[j]))
            reached.add(len(cuts) + 1 if math.isnan(x) else sum(x > c for c in cuts))
        assert reached == set(range(len(cuts) + 2)), j
    for i, values in enumerate(tables.categorical):
        codes = {c[i] for _, c in rows}
        assert set(range(len(values) - 1)) < codes and -1 in codes and len(values) in codes


def test_the_shadow_score_comes_from_the_tables_and_equals_onnxruntimes(model_dir):
    loaded = scorer._get_challenger()
    assert loaded.tables is not None
    rows = fixture_rows()[:300]
    expected = onnxruntime(model_dir / "challenger" / "credit_model.onnx", rows)
    for (n, c), p in zip(rows, expected):
        assert abs(scorer.shadow_score(ModelInputs(tuple(n), tuple(c))).probability - p) <= T.PROBE_TOLERANCE


def test_tables_that_disagree_with_onnxruntime_are_not_used(model_dir, monkeypatch):
    """A reader bug (one bin's value wrong) is caught at load: the challenger is then scored by
    onnxruntime, and its shadow scores stay right."""
    real = T.from_onnx

    def one_bin_off(blob):
        tables = real(blob)
        tables.numeric[7][2] += 0.01
        return tables

    monkeypatch.setattr(T, "from_onnx", one_bin_off)
    loaded = scorer._get_challenger()
    assert loaded.tables is None
    rows = fixture_rows()[:50]
    expected = onnxruntime(model_dir / "challenger" / "credit_model.onnx", rows)
    for (n, c), p in zip(rows, expected):
        assert scorer.shadow_score(ModelInputs(tuple(n), tuple(c))).probability == pytest.approx(p, abs=1e-15)


def test_another_graph_is_left_to_onnxruntime():
    blob = CHALLENGER.read_bytes()
    graph = T.read_graph(blob)
    # the same file with one operator renamed ("Sigmoid" -> "Sigmoie"): not to_onnx's graph
    assert T.from_onnx(blob.replace(b"Sigmoid", b"Sigmoie")) is None
    assert "Sigmoid" in graph.ops
    assert T.from_onnx(b"\x00not a model") is None
