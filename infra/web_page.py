"""The borrower's page (`web/`) as the local stack serves it at `/app/`.

Deployed, the same files sit in an S3 bucket behind CloudFront, which also routes `/v1/*` to
the API, so the page calls the API on its own origin both ways. Here the API's own port
answers `/app/*` before chalice's routing: static files only, GET and HEAD, with the headers
CloudFront's response headers policy adds (`PAGE_HEADERS`).
"""
from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
PREFIX = "/app"

# The page loads nothing from another origin and runs no inline script or style.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".json": "application/json", ".ico": "image/x-icon"}


def content_type(path: Path) -> str:
    return TYPES.get(path.suffix, mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def cache_control(relative: str) -> str:
    """index.html is asked for every time (it names the others); the rest may be kept an hour."""
    return "no-cache" if relative.endswith(".html") else "public, max-age=3600"


def answer(method: str, raw_path: str, root: Path = WEB_ROOT) -> dict[str, Any] | None:
    """The response for a request under /app, or None when the path is not the page's."""
    path = unquote(urlsplit(raw_path).path)
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return None
    if method not in ("GET", "HEAD"):
        return _plain(405, "Method Not Allowed", {"Allow": "GET, HEAD"})
    if path == PREFIX:  # as CloudFront's function does: the folder's address ends with /
        return _plain(301, "", {"Location": PREFIX + "/"})
    relative = path[len(PREFIX) + 1:] or "index.html"
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        return _plain(404, "Not Found", {})
    body = target.read_bytes()
    headers = {"Content-Type": content_type(target), "Cache-Control": cache_control(relative),
               **PAGE_HEADERS}
    return {"statusCode": 200, "headers": headers, "multiValueHeaders": {},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def _plain(status: int, text: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"statusCode": status, "multiValueHeaders": {}, "body": text,
            "headers": {"Content-Type": "text/plain; charset=utf-8", **PAGE_HEADERS, **headers}}
