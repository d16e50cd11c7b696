"""Outbound calls to partners (WeChat, real-name vendor, bank, wallet) go over https only.

The adapters check their base URL when built; the transport that opens the connection (both
the GET and the POST go through it) checks again, so a `file:`, `ftp:` or plain `http:` URL can
never be opened (bandit B310, whose `# nosec` at the one `urlopen` call rests on this)."""
from __future__ import annotations

import pytest

from chalicelib.adapters.transport import urllib_get, urllib_post


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://api.example.com/v1/transfers",
                                 "ftp://example.com/x", "HTTPS://example.com", " https://example.com",
                                 "/v1/transfers"])
def test_the_transports_open_nothing_but_https(url):
    with pytest.raises(ValueError, match="https"):
        urllib_post(url, b"{}", {}, 0.01)
    with pytest.raises(ValueError, match="https"):
        urllib_get(url, {}, 0.01)
