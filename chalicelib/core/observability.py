"""Powertools logger, metrics and tracer, shared by every function of the app."""
from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "lending")

# A request or batch that recorded no metric is normal; Powertools would warn on every flush.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Lending"), service=SERVICE)
tracer = Tracer(service=SERVICE)



def observed(handler):  # type: ignore[no-untyped-def]
    """Wrap a queue or scheduled handler: correlation id, tracing subsegment, metric flush.

    A decorator rather than app middleware: in Lambda, chalice imports a blueprint's event
    handler by its module path (`chalicelib.repay.routes.notification_consumer`), so app.py
    and its middleware are never loaded in those functions.
    """
    import functools

    @functools.wraps(handler)
    def wrapper(event):  # type: ignore[no-untyped-def]
        context = getattr(event, "context", None)
        correlation_id = getattr(context, "aws_request_id", None)
        if correlation_id:
            logger.set_correlation_id(correlation_id)
        try:
            with tracer.provider.in_subsegment(f"## {handler.__name__}"):
                return handler(event)
        finally:
            metrics.flush_metrics()

    return wrapper
