"""The borrower's page (`web/`) as the local stack serves it at `/app/`.

Deployed, the same files sit in an S3 bucket behind CloudFront, which also routes `/v1/*` to
the API, so the page calls the API on its own origin both ways. Here the API's own port
answers `/app/*` before chalice's routing: static files only, GET and HEAD, with the headers
CloudFront's response headers policy adds (`PAGE_HEADERS`).
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from infra.publish_web import SOURCE, cache_control, content_type
from infra.web import CONTENT_SECURITY_POLICY

PREFIX = "/app"

# What CloudFront's response headers policy (infra/web.py) adds to every answer.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def answer(method: str, raw_path: str, root: Path = SOURCE) -> dict[str, Any] | None:
    """The response for a request under /app, or None when it is not one of the page's files."""
    path = unquote(urlsplit(raw_path).path)
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return None
    if method not in ("GET", "HEAD"):
        return _plain(405, "Method Not Allowed", {"Allow": "GET, HEAD"})
    if path == PREFIX:  # as CloudFront's function does: the folder's address ends with /
        return _plain(302, "", {"Location": PREFIX + "/"})
    relative = path[len(PREFIX) + 1:] or "index.html"
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        return None  # the API's own 404 NOT_FOUND, as for any unknown path
    body = target.read_bytes()
    headers = {"Content-Type": content_type(target), "Cache-Control": cache_control(target),
               **PAGE_HEADERS}
    return {"statusCode": 200, "headers": headers, "multiValueHeaders": {},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def _plain(status: int, text: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"statusCode": status, "multiValueHeaders": {}, "body": text,
            "headers": {"Content-Type": "text/plain; charset=utf-8", **PAGE_HEADERS, **headers}}
