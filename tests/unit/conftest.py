"""Fixtures the credit model's unit tests share."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chalicelib.risk import scorer

ARTIFACTS = Path(__file__).resolve().parents[2] / "chalicelib" / "risk" / "artifacts"


@pytest.fixture()
def packaged_model(monkeypatch):
    """The scorer on the packaged artifacts (no RISK_MODEL_DIR), loaded afresh."""
    monkeypatch.delenv("RISK_MODEL_DIR", raising=False)
    scorer.reset()
    yield
    scorer.reset()


@pytest.fixture()
def model_dir(tmp_path, monkeypatch):
    """A private copy of the artifacts that a test may break; the scorer is pointed at it."""
    target = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS, target)
    monkeypatch.setenv("RISK_MODEL_DIR", str(target))
    scorer.reset()
    yield target
    scorer.reset()
