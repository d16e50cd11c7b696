"""Routes and event handlers of the repay slice."""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from chalice import Blueprint

from chalicelib.core import config
from chalicelib.core.observability import observed
from chalicelib.core.resources import queue_spec
from chalicelib.repay import notifications

bp = Blueprint(__name__)
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _handle_notification(record: Any) -> None:
    notifications.deliver(notifications.NotificationMessage.model_validate(json.loads(record.body)))


@bp.on_sqs_message(queue=config.queue_name("notifications"),
                   batch_size=queue_spec("notifications").batch_size)
@observed
def notification_consumer(event: Any) -> dict[str, Any]:
    """Sends each queued notification once; failed records are reported, not the whole batch."""
    return process_partial_response(event=event.to_dict(), record_handler=_handle_notification,
                                    processor=_processor, context=event.context)
