"""The local stack's /app/: the page's files, with what CloudFront answers when deployed."""
from __future__ import annotations

import base64

import pytest

from infra import web_page


def _body(answer: dict) -> bytes:
    return base64.b64decode(answer["body"]) if answer.get("isBase64Encoded") else answer["body"].encode()


def test_the_page_and_its_files_are_served_with_their_types_and_headers():
    index = web_page.answer("GET", "/app/?code=dev-someone")  # a WeChat OAuth redirect's address
    assert index["statusCode"] == 200
    assert index["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert index["headers"]["Cache-Control"] == "no-cache"
    assert b'<script src="app.js" defer></script>' in _body(index)
    script = web_page.answer("GET", "/app/app.js")
    assert script["headers"]["Content-Type"].startswith("text/javascript")
    assert script["headers"]["Cache-Control"].startswith("public, max-age=")
    assert web_page.answer("HEAD", "/app/app.css")["statusCode"] == 200


def test_the_local_headers_are_the_ones_cloudfront_adds(merge_template):
    policy = merge_template["WebSecurityHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]
    security = policy["SecurityHeadersConfig"]
    headers = web_page.answer("GET", "/app/")["headers"]
    assert headers["Content-Security-Policy"] == security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert headers["X-Frame-Options"] == security["FrameOptions"]["FrameOption"]
    assert headers["Referrer-Policy"] == security["ReferrerPolicy"]["ReferrerPolicy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/app/../app.py", "/app/%2e%2e/app.py", "/app/..%2fapp.py",
                                  "/app/nothing.js", "/app/%2e%2e/.chalice/config.json"])
def test_nothing_outside_web_is_reachable(path):
    assert web_page.answer("GET", path) is None  # left to the API: 404 NOT_FOUND


def test_other_paths_go_to_the_api_and_the_page_is_read_only():
    assert web_page.answer("GET", "/v1/products") is None
    assert web_page.answer("GET", "/application") is None  # a prefix of the name is not the page
    assert web_page.answer("GET", "/app")["headers"]["Location"] == "/app/"
    refused = web_page.answer("POST", "/app/index.html")
    assert refused["statusCode"] == 405 and refused["headers"]["Allow"] == "GET, HEAD"


@pytest.fixture(scope="module")
def merge_template():
    from infra import template
    return template.build("local")["Resources"]
