"""The one HTTPS POST the outside-world adapters share; injected so tests stub the network."""
from __future__ import annotations

import urllib.error
import urllib.request
from typing import Callable

MAX_ANSWER_BYTES = 64 * 1024

# (url, body, headers, timeout seconds) -> (status, body)
HttpPost = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]


def urllib_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    if not url.startswith("https://"):  # never file:, ftp: or plain http
        raise ValueError("partner APIs are reached over https only")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310 - https checked above
            return response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as err:
        return err.code, err.read(MAX_ANSWER_BYTES)
