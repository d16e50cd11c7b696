"""The one HTTPS POST the outside-world adapters share; injected so tests stub the network."""
from __future__ import annotations

import urllib.error
import urllib.request
from typing import Callable

MAX_ANSWER_BYTES = 64 * 1024

# (url, body, headers, timeout seconds) -> (status, body)
HttpPost = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]


def urllib_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https only
            return response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as err:
        return err.code, err.read(MAX_ANSWER_BYTES)
