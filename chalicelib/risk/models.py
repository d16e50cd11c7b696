"""DynamoDB model of the risk slice: the weekly monitoring of the credit model."""
from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.core import config
from chalicelib.adapters.db import BaseMeta, IntAttribute, register_table


@register_table
class ModelMonitorRecord(Model):
    """One week of one model in production: the PSI of its scores and of each input against
    its training baseline, its approval rate, and the challenger's agreement. Written by the
    weekly `model_monitor` job (one item per model and window end; a rerun rewrites it), read
    by `GET /v1/ops/model` (the latest item of the current model: one query)."""

    class Meta(BaseMeta):
        table_name = config.table_name("model-monitoring")

    model_sha256 = UnicodeAttribute(hash_key=True)
    window_end = UnicodeAttribute(range_key=True)      # last Asia/Shanghai date of the window
    window_start = UnicodeAttribute()
    model_version = UnicodeAttribute()
    computed_at = UnicodeAttribute()
    decisions = IntAttribute()                         # automated decisions in the window
    approved = IntAttribute()
    scored = IntAttribute()                            # of them scored by this model
    approval_rate = NumberAttribute(null=True)
    score_psi = NumberAttribute(null=True)
    max_input_psi = NumberAttribute(null=True)
    input_psi = UnicodeAttribute(null=True)            # JSON {feature: psi}
    baseline = UnicodeAttribute()
    challenger_version = UnicodeAttribute(null=True)
    challenger_compared = IntAttribute(null=True)      # decisions the champion's grade decided
    challenger_agreement = NumberAttribute(null=True)
