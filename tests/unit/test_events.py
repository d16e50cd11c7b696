"""A queue consumer's record that fails is reported alone and logged with its message id and
its exception, whatever the exception: powertools' batch processor keeps it quiet otherwise
(a NameError in a consumer once failed every record of close of business without a line)."""
from __future__ import annotations

import json
import logging

from chalice.app import SQSEvent

from chalicelib.api.events import partial_batch
from infra.lambda_events import LambdaContext, sqs_event, sqs_record


def test_a_failing_record_is_reported_alone_and_logged_with_its_id_and_exception(caplog):
    messages = [{"MessageId": f"m-{n}", "ReceiptHandle": "r", "Body": json.dumps({"n": n}), "Attributes": {}}
                for n in range(3)]
    event = SQSEvent(sqs_event([sqs_record(m, "arn:aws:sqs:us-east-1:1:q") for m in messages]),
                     LambdaContext("consumer", 30))

    def handler(record):  # type: ignore[no-untyped-def]
        if json.loads(record.body)["n"] == 1:
            raise NameError("name 'date' is not defined")

    with caplog.at_level(logging.WARNING, logger="lending"):
        answer = partial_batch(event, handler)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    failed = [r for r in caplog.records if r.name == "lending" and getattr(r, "message_id", None) == "m-1"]
    assert failed and "NameError" in failed[0].getMessage() + str(failed[0].exc_info)
