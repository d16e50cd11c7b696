"""Place the trained model where the Lambda package sees it, retiring the one it replaces.

    python -m models.place          # `make model` runs it after models.train

Copies models/credit_model.onnx and models/model_card.json into chalicelib/risk/artifacts/.
If a different, intact model was there, it first moves to artifacts/retired/<sha256[:16]>/, so
decisions it made can still be replayed with it (chalicelib.risk.scorer.score_with). The
challenger (models/challenger/) is registered by copying it to artifacts/challenger/; it never
decides, so the one it replaces is not kept. Standard library only.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("credit_model.onnx", "model_card.json")
CHALLENGER = "challenger"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def place(source: Path, target: Path) -> str | None:
    """Copy the model from source into target; returns the SHA-256 of the model it retired."""
    new = _sha(source / FILES[0])
    retired = None
    old_model, old_card = target / FILES[0], target / FILES[1]
    if old_model.exists() and old_card.exists():
        old = _sha(old_model)
        intact = json.loads(old_card.read_text(encoding="utf-8"))["artifact"]["sha256"] == old
        if old != new and intact:
            keep = target / "retired" / old[:16]
            keep.mkdir(parents=True, exist_ok=True)
            for name in FILES:
                shutil.copyfile(target / name, keep / name)
            retired = old
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(source / name, target / name)
    return retired


def place_challenger(source: Path, target: Path) -> bool:
    """Register the challenger in source/challenger (if any) as target/challenger."""
    if not (source / CHALLENGER / FILES[0]).exists():
        return False
    (target / CHALLENGER).mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(source / CHALLENGER / name, target / CHALLENGER / name)
    return True


def main() -> int:
    retired = place(ROOT / "models", ROOT / "chalicelib" / "risk" / "artifacts")
    if place_challenger(ROOT / "models", ROOT / "chalicelib" / "risk" / "artifacts"):
        print("registered the challenger in chalicelib/risk/artifacts/challenger/")
    print("placed the model in chalicelib/risk/artifacts/"
          + (f"; retired {retired[:16]} (kept for replaying its decisions)" if retired else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
