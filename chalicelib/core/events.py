"""Queue consumers: each record handled alone, failures reported as partial batch failures."""
from __future__ import annotations

from typing import Any, Callable

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response


def partial_batch(event: Any, record_handler: Callable[[Any], None]) -> dict[str, Any]:
    """Run `record_handler` on every SQS record of a chalice event; return the failed ids
    (`batchItemFailures`) so only those come back. A processor per call: it holds state."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event.to_dict(), record_handler=record_handler,
                                    processor=processor, context=event.context)
