"""Outbound messages to people (SMS, push): a port with a real SNS adapter and a local sandbox.

Every address is masked before it is logged or written to the sandbox outbox. Every SMS starts
with the same signature (签名, which Chinese carriers require on every message), added here by
the senders, so no text anywhere in the app writes or forgets it.
"""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from typing import Callable, Protocol

from chalicelib.adapters import aws
from chalicelib.core.clock import SHANGHAI
from chalicelib.core.pii import mask_phone


# The app's registered SMS signature: one constant, on every SMS (codes, reminders, notices).
SMS_SIGNATURE = "【安心借】"


def signed(channel: str, text: str) -> str:
    """The text as it goes out: an SMS gets the signature in front (once)."""
    if channel != "sms" or text.startswith(SMS_SIGNATURE):
        return text
    return SMS_SIGNATURE + text


class MessageSender(Protocol):
    def send(self, channel: str, to: str, text: str) -> None: ...


class OutboxSender:
    """Local sandbox: appends `{"channel", "to", "text", "at"}` lines to var/outbox.jsonl."""

    _lock = threading.Lock()

    def __init__(self, path: str, now: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self.now = now or (lambda: datetime.now(timezone.utc))  # the local stack's clock

    def send(self, channel: str, to: str, text: str) -> None:
        text = signed(channel, text)
        line = {"channel": channel, "to": mask_phone(to) if channel == "sms" else to,
                "text": text, "at": self.now().astimezone(SHANGHAI).isoformat()}
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


class SnsSender:
    """Production: SMS through SNS (transactional), push through an SNS platform endpoint."""

    def send(self, channel: str, to: str, text: str) -> None:
        text = signed(channel, text)
        sns = aws.client("sns")
        if channel == "sms":
            sns.publish(PhoneNumber=to if to.startswith("+") else f"+86{to}", Message=text,
                        MessageAttributes={"AWS.SNS.SMS.SMSType": {
                            "DataType": "String", "StringValue": "Transactional"}})
        else:
            sns.publish(TargetArn=to, Message=text)
