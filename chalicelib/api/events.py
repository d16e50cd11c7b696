"""Queue consumers: each record handled alone, failures reported as partial batch failures."""
from __future__ import annotations

from typing import Any, Callable

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from chalicelib.core.observability import logger


def partial_batch(event: Any, record_handler: Callable[[Any], None]) -> dict[str, Any]:
    """Run `record_handler` on every SQS record of a chalice event; return the failed ids
    (`batchItemFailures`) so only those come back. A processor per call: it holds state.
    Each failure is logged here with its message id and exception (powertools' processor
    only keeps it), so a record that fails for a reason its handler did not foresee shows."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def handled(record: Any) -> None:
        try:
            record_handler(record)
        except Exception as err:
            logger.warning(f"queue record failed: {type(err).__name__}", exc_info=True,
                           extra={"message_id": record.message_id,
                                  "receive_count": record.attributes.approximate_receive_count})
            raise

    return process_partial_response(event=event.to_dict(), record_handler=handled,
                                    processor=processor, context=event.context)
