"""Routes and schedules of the risk slice: the model's operations view and its weekly check."""
from __future__ import annotations

from typing import Any

from chalice import Blueprint, Cron

from chalicelib.core.clock import parse_instant
from chalicelib.api.http import route
from chalicelib.core.observability import observed
from chalicelib.risk import models as _models  # noqa: F401 - registers the monitoring table
from chalicelib.risk import monitor
from chalicelib.risk import service as _service  # noqa: F401 - registers the model's health check

bp = Blueprint(__name__)


@route(bp, "/v1/ops/model", "GET", summary="The credit model in production: version, drift, "
       "approval rate, challenger", tag="ops", auth="ops", errors=("503 MODEL_UNAVAILABLE",))
def ops_model(request: Any, principal: str) -> dict[str, Any]:
    return monitor.overview()


# Mondays 02:00 Asia/Shanghai (UTC+8) = Sundays 18:00 UTC: the week Monday-Sunday just ended.
@bp.schedule(Cron(0, 18, "?", "*", "SUN", "*"))
@observed
def model_monitor(event: Any) -> dict[str, Any]:
    """Weekly: PSI of the last 7 days' scores and inputs against the model's training baseline,
    the approval rate and the challenger's agreement (as of the event's time), stored and sent
    as metrics; an alarm fires above PSI 0.25."""
    return monitor.run_weekly(parse_instant(event.time))
