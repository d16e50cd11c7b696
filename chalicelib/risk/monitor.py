"""Live monitoring of the credit model: the weekly drift check and what `GET /v1/ops/model` shows.

Every week (the `model_monitor` schedule) the job reads the automated decisions of the last 7
complete Asia/Shanghai days through the applications' `by_day` index (7 x DAY_SHARDS queries,
never a scan), and for the current model computes:

- the PSI of its scores and of each of its inputs against the training baseline stored in its
  card (`monitoring`, written by models/train.py with the same binning code, `risk.drift`);
- the approval rate of all automated decisions of the window;
- the challenger's agreement: among the decisions the champion's grade decided (no hard rule
  declined first), the share where the challenger's grade gives the same action.

It writes one `ModelMonitorRecord` per model and window (a rerun of the same week rewrites it)
and emits the metrics `ModelScorePSI`, `ModelDriftPSI` (the largest PSI of the week, score or
any input: the alarm in the merge template fires above 0.25), `ModelApprovalRate` and
`ChallengerAgreement`. PSI needs a sample: below MIN_SAMPLE scored decisions the figures are
stored but no PSI metric is emitted, so a quiet week cannot raise a false alarm.
"""
from __future__ import annotations

import json
import struct
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from chalicelib.core.clock import shanghai_date
from chalicelib.core.observability import logger, metrics
from chalicelib.risk import drift
from chalicelib.risk import features as F

WINDOW_DAYS = 7
MIN_SAMPLE = 50


def window(at: datetime) -> tuple[date, date]:
    """The last WINDOW_DAYS complete Asia/Shanghai days before `at`'s date."""
    end = shanghai_date(at) - timedelta(days=1)
    return end - timedelta(days=WINDOW_DAYS - 1), end


def _float32(value: float | None) -> float | None:
    """The value as the model saw it (its numeric input is float32), as the baseline was binned."""
    return None if value is None else struct.unpack("f", struct.pack("f", value))[0]


def decisions_between(start: date, end: date) -> Iterable[dict]:
    """The stored automated decisions of the days start..end (Asia/Shanghai)."""
    from chalicelib.loans.models import DAY_SHARDS, ApplicationRecord
    day = start
    while day <= end:
        for shard in range(DAY_SHARDS):
            for item in ApplicationRecord.by_day.query(f"{day.isoformat()}#{shard}"):
                yield json.loads(item.decision)
        day += timedelta(days=1)


def summarise(decisions: Iterable[dict], card: dict, challenger_version: str | None) -> dict:
    """Pure: the week's figures for the model of `card` (its baseline) from stored decisions."""
    sha = card["artifact"]["sha256"]
    baseline = card.get("monitoring") or {}
    total = approved = 0
    scores: list[float] = []
    numeric: list[list[float | None]] = [[] for _ in F.NUMERIC_FEATURES]
    categorical: list[list[int | None]] = [[] for _ in F.CATEGORICAL_FEATURES]
    compared = agreed = 0
    for d in decisions:
        total += 1
        approved += d.get("status") == "approved"
        inputs = d.get("model_inputs")
        if d.get("model_sha256") == sha and inputs is not None and d.get("probability") is not None:
            scores.append(float(d["probability"]))
            for j, v in enumerate(inputs["numeric"]):
                numeric[j].append(_float32(v))
            for i, v in enumerate(inputs["categorical"]):
                categorical[i].append(v)
            shadow = d.get("challenger")
            if shadow and shadow.get("model_version") == challenger_version and shadow.get("reached_model"):
                compared += 1
                agreed += bool(shadow.get("agrees"))
    out: dict[str, Any] = {
        "decisions": total, "approved": approved, "scored": len(scores),
        "approval_rate": round(approved / total, 4) if total else None,
        "score_psi": None, "input_psi": None, "max_input_psi": None,
        "challenger_compared": compared if challenger_version else None,
        "challenger_agreement": round(agreed / compared, 4) if compared else None,
    }
    if scores and baseline:
        out["score_psi"] = round(drift.baseline_psi(baseline["score"], scores), 4)
        per_input = {name: round(drift.baseline_psi(baseline["inputs"][name], numeric[j]), 4)
                     for j, name in enumerate(F.NUMERIC_FEATURES)}
        per_input.update({name: round(drift.baseline_psi(baseline["inputs"][name], categorical[i]), 4)
                          for i, name in enumerate(F.CATEGORICAL_FEATURES)})
        out["input_psi"] = per_input
        out["max_input_psi"] = max(per_input.values())
    return out


def run_weekly(at: datetime) -> dict:
    """The weekly job for the window before `at`: compute, store, emit metrics."""
    from chalicelib.core.clock import SHANGHAI
    from chalicelib.risk import scorer
    from chalicelib.risk.models import ModelMonitorRecord

    card = scorer.read_card()
    challenger = scorer.read_challenger_card()
    challenger_version = challenger["model_version"] if challenger else None
    start, end = window(at)
    figures = summarise(decisions_between(start, end), card, challenger_version)
    ModelMonitorRecord(
        model_sha256=card["artifact"]["sha256"], window_end=end.isoformat(),
        window_start=start.isoformat(), model_version=card["model_version"],
        computed_at=at.astimezone(SHANGHAI).isoformat(timespec="seconds"),
        decisions=figures["decisions"], approved=figures["approved"], scored=figures["scored"],
        approval_rate=figures["approval_rate"], score_psi=figures["score_psi"],
        max_input_psi=figures["max_input_psi"],
        input_psi=None if figures["input_psi"] is None else json.dumps(figures["input_psi"], sort_keys=True),
        baseline=(card.get("monitoring") or {}).get("population", "none in the model card"),
        challenger_version=challenger_version, challenger_compared=figures["challenger_compared"],
        challenger_agreement=figures["challenger_agreement"]).save()
    if figures["approval_rate"] is not None:
        metrics.add_metric(name="ModelApprovalRate", unit="None", value=figures["approval_rate"])
    if figures["challenger_agreement"] is not None:
        metrics.add_metric(name="ChallengerAgreement", unit="None", value=figures["challenger_agreement"])
    if figures["score_psi"] is not None and figures["scored"] >= MIN_SAMPLE:
        worst = max(figures["score_psi"], figures["max_input_psi"])
        metrics.add_metric(name="ModelScorePSI", unit="None", value=figures["score_psi"])
        metrics.add_metric(name="ModelDriftPSI", unit="None", value=worst)
        if worst > drift.ALARM:
            logger.warning("credit model drift above the alarm threshold",
                           extra={"psi": worst, "window_end": end.isoformat(),
                                  "model_version": card["model_version"]})
    logger.info("model monitoring", extra={"window_start": start.isoformat(),
                                           "window_end": end.isoformat(),
                                           **{k: v for k, v in figures.items() if k != "input_psi"}})
    return {"model_version": card["model_version"], "window": f"{start.isoformat()}/{end.isoformat()}",
            **figures}


def overview() -> dict:
    """`GET /v1/ops/model`: the current model, its latest weekly figures, the challenger."""
    from chalicelib.risk import scorer
    from chalicelib.risk.models import ModelMonitorRecord

    info = scorer.model_info()
    card = scorer.current_card()
    latest = next(iter(ModelMonitorRecord.query(info["model_sha256"], scan_index_forward=False,
                                                limit=1, consistent_read=True)), None)
    drift_view: dict[str, Any] = {
        "psi": None, "window": None,
        "baseline": (card.get("monitoring") or {}).get("population"), "inputs": None,
        "max_input_psi": None, "scored": None, "alarm_psi": drift.ALARM}
    approval_rate = None
    if latest is not None:
        drift_view.update({"psi": latest.score_psi,
                           "window": f"{latest.window_start}/{latest.window_end}",
                           "inputs": json.loads(latest.input_psi) if latest.input_psi else None,
                           "max_input_psi": latest.max_input_psi, "scored": latest.scored})
        approval_rate = latest.approval_rate
    challenger = scorer.challenger_info()
    shadow = None
    if challenger is not None:
        agreement = None
        if latest is not None and latest.challenger_version == challenger["model_version"]:
            agreement = latest.challenger_agreement
        shadow = {"model_version": challenger["model_version"], "agreement": agreement}
    return {"model_version": info["model_version"], "sha256": info["model_sha256"],
            "drift": drift_view, "approval_rate": approval_rate, "challenger": shadow}
