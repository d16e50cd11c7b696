"""The notifications consumer: once per notification id, partial batch failures reported."""
from __future__ import annotations

import json

from chalicelib.adapters.messaging import SMS_SIGNATURE
from chalicelib.repay.models import NotificationRecord
from infra.lambda_events import sqs_event


def record(message_id: str, body: dict | str) -> dict:
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lending-local-notifications",
            "awsRegion": "us-east-1"}


def message(n: int, **changes) -> dict:
    body = {"notification_id": f"n-{n}", "user_id": "u-1", "kind": "due_soon", "channel": "sms",
            "to": "13812348000", "text": f"还款提醒 {n}", "loan_id": "loan-1"}
    body.update(changes)
    return body


def outbox_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_message_delivered_many_times_is_sent_once(client, outbox):
    records = [record(f"m-{i}", message(1)) for i in range(5)]
    result = client.lambda_.invoke("notification_consumer", sqs_event(records))
    assert result.payload == {"batchItemFailures": []}
    again = client.lambda_.invoke("notification_consumer", sqs_event([record("m-9", message(1))]))
    assert again.payload == {"batchItemFailures": []}
    sent = outbox_lines(outbox)
    assert len(sent) == 1
    assert sent[0]["to"] == "138****8000"  # masked even in the sandbox outbox
    assert NotificationRecord.get("u-1", "n-1").status == "sent"


def test_only_the_bad_record_is_reported_failed(client, outbox):
    records = [record("good-1", message(1)), record("bad", "{not json"),
               record("bad-kind", message(3, kind="spam")), record("good-2", message(2))]
    result = client.lambda_.invoke("notification_consumer", sqs_event(records))
    failed = {f["itemIdentifier"] for f in result.payload["batchItemFailures"]}
    assert failed == {"bad", "bad-kind"}
    # every SMS goes out with the app's one signature in front
    assert sorted(line["text"] for line in outbox_lines(outbox)) == [f"{SMS_SIGNATURE}还款提醒 1",
                                                                     f"{SMS_SIGNATURE}还款提醒 2"]


def test_a_notification_leased_by_another_consumer_is_retried_not_sent(client, outbox, clock):
    now = int(clock.now().timestamp())
    NotificationRecord(user_id="u-1", notification_id="n-7", kind="due_soon", channel="sms",
                       text="x", created_at="2027-01-01T00:00:00+00:00", status="sending",
                       lease_until=now + 60).save()
    result = client.lambda_.invoke("notification_consumer", sqs_event([record("m", message(7))]))
    assert result.payload == {"batchItemFailures": [{"itemIdentifier": "m"}]}
    assert outbox_lines(outbox) == []


def test_an_expired_lease_is_taken_over_and_sent(client, outbox):
    NotificationRecord(user_id="u-1", notification_id="n-8", kind="due_soon", channel="sms",
                       text="x", created_at="2027-01-01T00:00:00+00:00", status="sending",
                       lease_until=0).save()
    result = client.lambda_.invoke("notification_consumer", sqs_event([record("m", message(8))]))
    assert result.payload == {"batchItemFailures": []}
    assert len(outbox_lines(outbox)) == 1


def test_no_sms_at_night_it_waits_for_the_morning_by_the_clock(client, outbox, clock):
    """Local stage: the SMS is parked until 08:00 by the service's clock; a drain before then
    returns and leaves it parked, a drain once the clock has passed 08:00 delivers it."""
    from datetime import datetime, timezone

    from app import app
    from chalicelib.adapters import testclock
    from chalicelib.repay import notifications
    from infra.pump import QueuePump
    clock.set(datetime(2027, 1, 10, 14, 30, tzinfo=timezone.utc))  # 22:30 in Beijing
    result = client.lambda_.invoke("notification_consumer", sqs_event([record("m", message(11))]))
    assert result.payload == {"batchItemFailures": []}
    assert outbox_lines(outbox) == []
    held = testclock.parked("notifications")
    assert [json.loads(h["body"])["deliver_after"] for h in held] == ["2027-01-11T08:00:00+08:00"]
    # push notifications are not held back
    pushed = client.lambda_.invoke("notification_consumer", sqs_event([record("p", message(12, channel="push", to="dev-1"))]))
    assert pushed.payload == {"batchItemFailures": []}
    assert len(outbox_lines(outbox)) == 1

    pump = QueuePump(app, retry_delay=0)
    clock.set(datetime(2027, 1, 10, 23, 59, tzinfo=timezone.utc))  # 07:59: not yet
    pump.drain(timeout_seconds=30)
    assert len(outbox_lines(outbox)) == 1 and len(testclock.parked("notifications")) == 1
    clock.set(datetime(2027, 1, 11, 0, 1, tzinfo=timezone.utc))  # 08:01
    pump.drain(timeout_seconds=30)
    assert [line["text"] for line in outbox_lines(outbox)] == ["还款提醒 12", SMS_SIGNATURE + "还款提醒 11"]  # push, SMS
    assert outbox_lines(outbox)[1]["at"].startswith("2027-01-11T08:01:00")
    assert testclock.parked("notifications") == []
    sent = {n["notification_id"]: n for n in notifications.inbox("u-1")}
    assert sent["n-11"]["created_at"] == "2027-01-11T08:01:00+08:00"


def test_deployed_an_sms_at_night_is_delayed_on_the_queue_and_deferred_again_until_morning(
        client, outbox, clock, monkeypatch):
    """Deployed stages keep the SQS delay (15 minutes at most): the message carries its time
    and comes back to be deferred again until then."""
    from datetime import datetime, timezone

    from chalicelib.adapters import aws, deferral
    from chalicelib.core import config
    monkeypatch.setattr(deferral, "parks_locally", lambda: False)
    # The URL read here, not through aws.queue_url: its cache would spare the consumer its own
    # GetQueueUrl, which a fresh container makes (and the IAM coverage check must see).
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=config.queue_name("notifications"))["QueueUrl"]
    sent_with: list[dict] = []
    real_send = sqs.send_message

    def recording_send(**kwargs):
        sent_with.append(kwargs)
        return real_send(**kwargs)

    monkeypatch.setattr(sqs, "send_message", recording_send)
    clock.set(datetime(2027, 1, 10, 14, 30, tzinfo=timezone.utc))  # 22:30 in Beijing
    result = client.lambda_.invoke("notification_consumer", sqs_event([record("m", message(11))]))
    assert result.payload == {"batchItemFailures": []}
    assert [m["DelaySeconds"] for m in sent_with] == [900]
    body = json.loads(sent_with[0]["MessageBody"])
    assert body["deliver_after"] == "2027-01-11T08:00:00+08:00"
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    # 15 minutes later it is back, and deferred again: 07:55 leaves 5 minutes
    clock.set(datetime(2027, 1, 10, 23, 55, tzinfo=timezone.utc))
    again = client.lambda_.invoke("notification_consumer", sqs_event([record("m2", body)]))
    assert again.payload == {"batchItemFailures": []}
    assert sent_with[1]["DelaySeconds"] == 300 and outbox_lines(outbox) == []
    clock.set(datetime(2027, 1, 11, 0, 0, 5, tzinfo=timezone.utc))  # 08:00:05
    last = client.lambda_.invoke("notification_consumer", sqs_event([record("m3", body)]))
    assert last.payload == {"batchItemFailures": []}
    assert [line["text"] for line in outbox_lines(outbox)] == [SMS_SIGNATURE + "还款提醒 11"]
    assert len(sent_with) == 2


def test_quiet_hours_window():
    from datetime import datetime, timezone

    from chalicelib.repay.notifications import quiet_until
    assert quiet_until(datetime(2027, 1, 10, 2, 0, tzinfo=timezone.utc)) is None  # 10:00
    resume = quiet_until(datetime(2027, 1, 10, 13, 0, tzinfo=timezone.utc))  # 21:00
    assert resume.isoformat() == "2027-01-11T08:00:00+08:00"
    early = quiet_until(datetime(2027, 1, 10, 23, 0, tzinfo=timezone.utc))  # 07:00 next day
    assert early.isoformat() == "2027-01-11T08:00:00+08:00"


def test_the_inbox_reads_one_page_of_the_users_own_notifications_newest_first(aws_stack, monkeypatch):
    from chalicelib.repay import notifications
    monkeypatch.setattr(notifications, "INBOX_PAGE", 3)
    for n, (user, minute) in enumerate([("u-1", 5), ("u-1", 1), ("u-2", 9), ("u-1", 7), ("u-1", 3)]):
        NotificationRecord(user_id=user, notification_id=f"n-{n}", kind="due_soon", channel="push",
                           text=f"t{n}", created_at=f"2027-01-10T10:{minute:02d}:00+08:00",
                           status="sent", lease_until=0).save()
    assert [item["notification_id"] for item in notifications.inbox("u-1")] == ["n-3", "n-0", "n-4"]
