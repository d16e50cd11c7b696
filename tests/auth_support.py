"""Helpers for the identity tests: recorded API calls, log capture, a personal-data scan."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import time
from datetime import date
from pathlib import Path
from typing import Any

from tests.journeys import ChaliceApi, _CHECK, _WEIGHTS, last_code

APP_LOGGER = "lending"  # the Powertools logger (and chalice's app.log share this name)


def with_check_digit(body17: str) -> str:
    """Complete 17 digits with their GB 11643 check digit (even over an impossible date)."""
    return body17 + _CHECK[sum(int(d) * w for d, w in zip(body17, _WEIGHTS)) % 11]


def years_ago(today: date, years: int, days: int = 0) -> date:
    from datetime import timedelta
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        born = today.replace(year=today.year - years, day=28)
    return born + timedelta(days=days)


# ------------------------------------------------------------- building tokens by hand (forgeries)

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_claims(sub: str, fam: str, *, jti: str = "j-1", now: float | None = None,
                  **over: Any) -> dict[str, Any]:
    """The claims of a genuine access token, for a token signed by hand."""
    from chalicelib.auth import tokens
    at = int(time.time() if now is None else now)
    return {"iss": tokens.issuer(), "aud": tokens.audience("access"), "sub": sub, "typ": "access",
            "fam": fam, "jti": jti, "iat": at, "nbf": at, "exp": at + 600, **over}


def hs256_token(claims: dict[str, Any], key: bytes, kid: str) -> str:
    """The key-confusion forgery: HMAC-SHA256 keyed with the (public) verification key."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(hmac.new(key, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def tampered(genuine: str, **changes: Any) -> str:
    """A genuine token with its payload changed and its signature kept."""
    head, payload, sig = genuine.split(".")
    claims = {**json.loads(base64.urlsafe_b64decode(payload + "==")), **changes}
    return ".".join([head, b64url(json.dumps(claims).encode()), sig])


def _readable(text: str) -> str:
    """JSON text with \\uXXXX escapes undone (a name escaped is still a leak), plus the raw."""
    try:
        return text + "\n" + json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


class RecordingApi(ChaliceApi):
    """ChaliceApi that keeps every response (status, headers, raw body) for later scans."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.seen: list[str] = []
        self.last_headers: dict[str, str] = {}

    def _call(self, method: str, path: str, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        status, payload, _headers = self.exchange(method, path, raw, headers)
        return status, payload

    def exchange(self, method: str, path: str, raw: bytes,
                 headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        """Any method, any bytes; the answer (headers and body, escapes undone) is recorded."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        response = self.client.http.request(method.upper(), path, headers=all_headers, body=raw)
        text = response.body.decode() if isinstance(response.body, bytes) else str(response.body)
        self.seen.append(json.dumps(dict(response.headers)) + "\n" + _readable(text))
        self.last_headers = dict(response.headers)
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return response.status_code, payload, self.last_headers

    def bearer(self, access_token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token}"}


class LogCapture:
    """Everything the app logger emits, formatted as in Lambda (JSON with extras), at DEBUG.

    The app logger is silenced to ERROR by chalice (`app.debug = False` sets the level of the
    logger named like the app, which Powertools shares), so the capture lowers the level for
    the test's duration: a scan must see every line the code would log."""

    def __init__(self) -> None:
        from chalicelib.core.observability import logger
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logger.registered_formatter)
        self.logger = logging.getLogger(APP_LOGGER)

    def __enter__(self) -> "LogCapture":
        self.level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)

    @property
    def text(self) -> str:
        return "\n".join(_readable(line) for line in self.stream.getvalue().splitlines())


def readable(value: object) -> str:
    """`json.dumps`'s default for binary values: a compressed attribute's text (a loan's
    schedule state), so a scan for personal data reads what it holds; other bytes in base64."""
    import base64
    import zlib
    if isinstance(value, (bytes, bytearray)):
        try:
            return zlib.decompress(value).decode()
        except (zlib.error, UnicodeDecodeError):
            return base64.b64encode(value).decode()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def table_dump() -> str:
    """Every item of every registered table, as raw DynamoDB JSON text."""
    from chalicelib.adapters import aws
    from chalicelib.adapters.db import TABLES
    ddb = aws.client("dynamodb")
    chunks = []
    for model in TABLES:
        for page in ddb.get_paginator("scan").paginate(TableName=model.Meta.table_name):
            chunks.extend(json.dumps(item, ensure_ascii=False, default=readable) for item in page["Items"])
    return "\n".join(chunks)


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and s in text]


def code_for(outbox: Path, phone: str) -> str:
    return last_code(outbox, phone)


def with_wrong_check_digit(id_number: str) -> str:
    """The same ID number with a check digit that does not match."""
    right = id_number[-1]
    return id_number[:-1] + ("0" if right != "0" else "1")
