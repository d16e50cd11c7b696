"""The HTTPS calls the outside-world adapters share; injected so tests stub the network."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

MAX_ANSWER_BYTES = 64 * 1024

# (url, body, headers, timeout seconds) -> (status, body)
HttpPost = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]
# (url, query parameters, timeout seconds) -> (status, body)
HttpGet = Callable[[str, dict[str, str], float], tuple[int, bytes]]


def _exchange(url: str, timeout: float, **request: object) -> tuple[int, bytes]:
    # The URL as given, before urllib strips or reinterprets it: never file:, ftp: or plain http.
    if not url.startswith("https://"):
        raise ValueError("partner APIs are reached over https only")
    outbound = urllib.request.Request(url, **request)  # type: ignore[arg-type]
    try:
        with urllib.request.urlopen(outbound, timeout=timeout) as response:  # nosec B310 - https checked above
            return response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as err:
        return err.code, err.read(MAX_ANSWER_BYTES)


def urllib_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    return _exchange(url, timeout, data=body, headers=headers, method="POST")


def urllib_get(url: str, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
    return _exchange(f"{url}?{urllib.parse.urlencode(params)}", timeout, method="GET")
