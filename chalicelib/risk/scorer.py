"""Scoring with the credit model: one onnxruntime session per process, verified before use.

The artifact (`artifacts/credit_model.onnx`) and its card (`artifacts/model_card.json`) are
byte-identical copies of `models/` (placed by `make model`; a test checks it), because the
deploy package ships only app.py, chalicelib/ and vendor/.

At load the scorer refuses (ModelUnavailable) a model whose SHA-256 is not the card's, a card
whose features or encodings differ from `features.py`, or a model that does not reproduce the
card's self-check probability. onnxruntime and numpy are imported on first use only, so
functions that never score do not pay for them at cold start.

Models that decided before the current one stay in `artifacts/retired/<sha256[:16]>/` (placed
by `make model`), verified the same way, so that every stored decision can be replayed with the
model that made it (`score_with`); they never decide anything new. A retired model may take
an earlier input layout (`features.SCHEMAS`): its stored rows are replayed as they were.

A challenger registered in `artifacts/challenger/` (by `make model`; `RISK_CHALLENGER=off`
unregisters it) takes the same inputs and is verified the same way; `shadow_score` scores an
application with it next to the champion. It never decides: a missing or broken challenger
only means no shadow score.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from chalicelib.core.errors import DependencyDown
from chalicelib.core.observability import logger
from chalicelib.risk import features as F
from chalicelib.risk.features import ModelInputs, features_from_application

__all__ = ["ModelUnavailable", "Score", "features_from_application", "score", "score_application",
           "score_with", "shadow_score", "challenger_info", "model_status", "model_info", "reset"]

DEFAULT_DIR = Path(__file__).resolve().parent / "artifacts"
RETIRED = "retired"
CHALLENGER = "challenger"
_HEX64 = re.compile(r"[0-9a-f]{64}")
MODEL_FILE = "credit_model.onnx"
CARD_FILE = "model_card.json"
SELF_CHECK_TOLERANCE = 1e-9


class ModelUnavailable(DependencyDown):
    """The credit model is missing, corrupt or not the one its card names: approve no one."""
    code = "MODEL_UNAVAILABLE"


@dataclass(frozen=True)
class Score:
    probability: float                 # of default
    logit: float                       # = bias + sum(contributions)
    bias: float
    contributions: dict[str, float]    # feature -> exact log-odds contribution
    model_version: str
    model_sha256: str


@dataclass(frozen=True)
class _Loaded:
    session: Any
    card: dict
    sha256: str
    directory: str
    features: tuple[str, ...]          # the contribution columns, in input order
    tables: Any = None                 # the challenger's own tables, when they agree (risk.tables)


_lock = threading.Lock()
_loaded: _Loaded | None = None
_retired: dict[str, _Loaded] = {}
_retired_lock = threading.Lock()  # loading an old model for a replay never holds up a decision
_challenger_lock = threading.Lock()
_challenger: _Loaded | ModelUnavailable | None = None
_challenger_known = False          # looked for it already (it may be absent: then None)


def artifact_dir() -> Path:
    """`RISK_MODEL_DIR` overrides the packaged artifacts (tests, an operator's hotfix)."""
    return Path(os.environ.get("RISK_MODEL_DIR") or DEFAULT_DIR)


def reset() -> None:
    """Forget the loaded sessions (tests; a new artifact directory)."""
    global _loaded, _challenger, _challenger_known
    with _lock:
        _loaded = None
    with _retired_lock:
        _retired.clear()
    with _challenger_lock:
        _challenger, _challenger_known = None, False


def _check_card(card: dict, schemas=F.SCHEMAS[:1]) -> tuple[str, ...]:
    """The card's feature columns, if they are one of `schemas` (by default only the layout
    this code builds; a retired model may have an earlier one)."""
    inputs = card.get("inputs", {})
    numeric = inputs.get("numeric", {}).get("columns")
    categorical = inputs.get("categorical", {}).get("columns")
    for schema_numeric, categories in schemas:
        if numeric != list(schema_numeric):
            continue
        if categorical != list(categories):
            raise ModelUnavailable("The model card's categorical features differ from this code's.")
        expected = {f: {label: i for i, label in enumerate(labels)} for f, labels in categories.items()}
        if card.get("categorical_encodings") != expected:
            raise ModelUnavailable("The model card's category encodings differ from this code's.")
        return tuple(schema_numeric) + tuple(categories)
    raise ModelUnavailable("The model card's numeric features differ from this code's.")


def _new_session(blob: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])


def _run(session: Any, inputs: ModelInputs) -> tuple[float, float, list[float], float]:
    import numpy as np

    probability, logit, contributions, bias = session.run(
        ["probability", "logit", "contributions", "bias"],
        {"numeric": np.array([inputs.numeric], dtype=np.float32),
         "categorical": np.array([inputs.categorical], dtype=np.int64)})
    return float(probability[0]), float(logit[0]), contributions[0].tolist(), float(bias[0])


def _load(directory: Path, schemas=F.SCHEMAS[:1], *, with_tables: bool = False) -> _Loaded:
    """The verified model of `directory`; `with_tables`: also its lookup tables, read from the
    same verified bytes (`_checked_tables`), for the challenger."""
    try:
        card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
        blob = (directory / MODEL_FILE).read_bytes()
    except FileNotFoundError as err:
        raise ModelUnavailable(f"Credit model file missing: {Path(err.filename).name}.") from None
    except (OSError, ValueError) as err:
        raise ModelUnavailable(f"Credit model card unreadable: {type(err).__name__}.") from None
    if not isinstance(card, dict) or "artifact" not in card:
        raise ModelUnavailable("Credit model card malformed.")
    sha = hashlib.sha256(blob).hexdigest()
    if sha != card["artifact"].get("sha256"):
        raise ModelUnavailable("Credit model file does not match its card (SHA-256).")
    features = _check_card(card, schemas)
    try:
        session = _new_session(blob)
        check = card["self_check"]
        probability, _, _, _ = _run(session, ModelInputs(tuple(check["numeric"]),
                                                         tuple(check["categorical"])))
    except ModelUnavailable:
        raise
    except Exception as err:  # onnxruntime raises its own types for a corrupt graph
        raise ModelUnavailable(f"Credit model failed to load: {type(err).__name__}.") from None
    if not abs(probability - float(check["probability"])) <= SELF_CHECK_TOLERANCE:
        raise ModelUnavailable("Credit model failed its self-check.")
    tables = _checked_tables(blob, session, check) if with_tables else None
    return _Loaded(session, card, sha, str(directory), features, tables)


def _get() -> _Loaded:
    global _loaded
    loaded = _loaded
    if loaded is not None:
        return loaded
    with _lock:
        if _loaded is None:
            _loaded = _load(artifact_dir())
        return _loaded


def _get_retired(sha256: str) -> _Loaded:
    """A retired model by its full SHA-256; its card and self-check must hold as for the current.
    Retired models live in the package (not under RISK_MODEL_DIR) and must take the features
    this code builds: a model with other features cannot be replayed by it."""
    with _retired_lock:
        loaded = _retired.get(sha256)
        if loaded is None:
            if not _HEX64.fullmatch(sha256):  # it names a directory: nothing but a hash
                raise ModelUnavailable("A credit model is named by its SHA-256 (64 hex digits).")
            directory = DEFAULT_DIR / RETIRED / sha256[:16]
            if not directory.is_dir():
                raise ModelUnavailable(f"No retired credit model with SHA-256 {sha256[:16]}.")
            loaded = _load(directory, F.SCHEMAS)
            if loaded.sha256 != sha256:
                raise ModelUnavailable(f"Retired credit model {sha256[:16]} is another model.")
            _retired[sha256] = loaded
        return loaded


def score(inputs: ModelInputs) -> Score:
    """Probability of default and exact per-feature contributions for one row."""
    return _score(_get(), inputs)


def score_with(sha256: str, inputs: ModelInputs) -> Score:
    """Score with the model of this SHA-256, current or retired (replaying a stored decision)."""
    try:
        current: _Loaded | None = _get()
    except ModelUnavailable:
        current = None  # a retired model can still replay its own decisions
    if current is not None and current.sha256 == sha256:
        return _score(current, inputs)
    return _score(_get_retired(sha256), inputs)


def _score(loaded: _Loaded, inputs: ModelInputs) -> Score:
    try:
        probability, logit, contributions, bias = _run(loaded.session, inputs)
    except Exception as err:
        raise ModelUnavailable(f"Credit model failed to score: {type(err).__name__}.") from None
    if not (0.0 <= probability <= 1.0) or math.isnan(logit):
        raise ModelUnavailable("Credit model returned an invalid probability.")
    return Score(probability=probability, logit=logit, bias=bias,
                 contributions=dict(zip(loaded.features, contributions)),
                 model_version=loaded.card["model_version"], model_sha256=loaded.sha256)


def score_application(applicant: Mapping[str, Any], amount: int, term_months: int,
                      has_records: bool) -> tuple[ModelInputs, Score]:
    inputs = features_from_application(applicant, amount, term_months, has_records)
    return inputs, score(inputs)


def _get_challenger() -> _Loaded | None:
    """The registered challenger, loaded once per container; None when none is registered.
    A broken one raises ModelUnavailable (remembered until `reset`, so it costs nothing after)."""
    global _challenger, _challenger_known
    if not _challenger_known:
        with _challenger_lock:
            if not _challenger_known:
                directory = artifact_dir() / CHALLENGER
                if os.environ.get("RISK_CHALLENGER", "on").lower() == "off" or not directory.is_dir():
                    _challenger = None
                else:
                    try:
                        _challenger = _load(directory, with_tables=True)
                    except ModelUnavailable as err:
                        _challenger = err
                _challenger_known = True
    if isinstance(_challenger, ModelUnavailable):
        raise _challenger
    return _challenger


def _checked_tables(blob: bytes, session: Any, check: dict) -> Any:
    """The model's lookup tables (risk.tables) when they agree with onnxruntime on every probe
    row; None (onnxruntime scores it) when not, or when its graph is another."""
    import numpy as np

    from chalicelib.risk import tables as T
    fast = T.from_onnx(blob)
    if fast is None:
        logger.info("challenger scored by onnxruntime: its graph is not one of lookup tables")
        return None
    rows = T.probe_rows(fast, check["numeric"], check["categorical"])
    try:
        expected = session.run(["probability"], {
            "numeric": np.array([r[0] for r in rows], dtype=np.float32),
            "categorical": np.array([r[1] for r in rows], dtype=np.int64)})[0]
    except Exception as err:  # noqa: BLE001 - a graph that cannot take a batch: no fast path
        logger.warning("challenger's tables not checked", extra={"why": type(err).__name__})
        return None
    worst = max(abs(fast.probability(n, c) - float(p)) for (n, c), p in zip(rows, expected))
    if not worst <= T.PROBE_TOLERANCE:
        logger.warning("challenger's tables disagree with onnxruntime: scored by onnxruntime",
                       extra={"max_gap": worst, "rows": len(rows)})
        return None
    return fast


@dataclass(frozen=True)
class ShadowScore:
    probability: float                 # of default, by the challenger
    model_version: str
    model_sha256: str


def shadow_score(inputs: ModelInputs) -> ShadowScore | None:
    """The challenger's probability for the same inputs (None: no challenger registered).
    Raises ModelUnavailable when the registered one is broken; the caller must not let that
    decide. Only the probability is fetched: no reason is ever given from it, and it runs on
    every application (issue 15: < 0.2 ms p99): by its own lookup tables when they passed
    their check at load (risk.tables), else by onnxruntime."""
    import numpy as np

    loaded = _get_challenger()
    if loaded is None:
        return None
    try:
        probability = loaded.tables.probability(inputs.numeric, inputs.categorical) \
            if loaded.tables is not None else float(loaded.session.run(
            ["probability"], {"numeric": np.array([inputs.numeric], dtype=np.float32),
                              "categorical": np.array([inputs.categorical], dtype=np.int64)})[0][0])
    except Exception as err:
        raise ModelUnavailable(f"Challenger failed to score: {type(err).__name__}.") from None
    if not 0.0 <= probability <= 1.0:
        raise ModelUnavailable("Challenger returned an invalid probability.")
    return ShadowScore(probability, loaded.card["model_version"], loaded.sha256)


def challenger_info() -> dict | None:
    """Version and hash of the registered challenger, or None (absent, switched off, broken)."""
    try:
        loaded = _get_challenger()
    except ModelUnavailable:
        return None
    return None if loaded is None else {"model_version": loaded.card["model_version"],
                                        "model_sha256": loaded.sha256}


def read_card() -> dict:
    """The current model's card as a file, without loading the model (the monitoring job, which
    never scores, needs its hash and baseline only; decisions record the verified hash)."""
    try:
        return json.loads((artifact_dir() / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelUnavailable(f"Credit model card unreadable: {type(err).__name__}.") from None


def read_challenger_card() -> dict | None:
    """The registered challenger's card as a file (None when none is registered)."""
    path = artifact_dir() / CHALLENGER / CARD_FILE
    if os.environ.get("RISK_CHALLENGER", "on").lower() == "off" or not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def current_card() -> dict:
    """The current model's card as loaded and verified (loads the model if needed)."""
    return _get().card


def model_info() -> dict:
    """Version and hash of the loaded model (loads it if needed)."""
    loaded = _get()
    return {"model_version": loaded.card["model_version"], "model_sha256": loaded.sha256}


def model_status() -> tuple[bool, str]:
    """For /health: (True, "credit-additive-gbm-1.1.0 sha256:…") or (False, why not)."""
    try:
        loaded = _get()
    except ModelUnavailable as err:
        return False, err.message
    return True, f"{loaded.card['model_version']} sha256:{loaded.sha256[:12]}"
