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


def _run_cloudfront_function(code: str, event: dict) -> dict:
    """A CloudFront Function's handler run under node (cloudfront-js-2.0 is a subset of it)."""
    import json
    import shutil
    import subprocess
    node = shutil.which("node")
    assert node, "node is needed to run the CloudFront functions (Debian's nodejs)"
    script = code + f"\nprocess.stdout.write(JSON.stringify(handler({json.dumps(event)})));"
    return json.loads(subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout)


def _viewer_request(uri: str, ip: str = "203.0.113.9", headers: dict | None = None) -> dict:
    return {"viewer": {"ip": ip}, "request": {"method": "GET", "uri": uri, "headers": headers or {}}}


def test_the_index_function_sends_the_folder_to_its_page_as_the_local_stack_does():
    from infra.web import INDEX_FUNCTION
    redirect = _run_cloudfront_function(INDEX_FUNCTION, _viewer_request("/app"))
    assert redirect["statusCode"] == 302 and redirect["headers"]["location"]["value"] == "/app/"
    assert web_page.answer("GET", "/app")["headers"]["Location"] == "/app/"
    assert _run_cloudfront_function(INDEX_FUNCTION, _viewer_request("/app/"))["uri"] == "/app/index.html"
    assert _run_cloudfront_function(INDEX_FUNCTION, _viewer_request("/app/app.js"))["uri"] == "/app/app.js"


def test_the_api_behaviours_pass_the_viewers_own_address_whatever_the_client_sent():
    from infra.web import VIEWER_ADDRESS_FUNCTION
    forged = {"x-viewer-address": {"value": "198.51.100.1"}}
    request = _run_cloudfront_function(VIEWER_ADDRESS_FUNCTION, _viewer_request("/v1/auth/sms-codes",
                                                                                headers=forged))
    assert request["headers"]["x-viewer-address"] == {"value": "203.0.113.9"}


def test_the_api_origin_carries_the_origin_secret_and_every_api_path_the_viewer_function(merge_template):
    config = merge_template["WebDistribution"]["Properties"]["DistributionConfig"]
    api = next(origin for origin in config["Origins"] if origin["Id"] == "api")
    assert api["OriginCustomHeaders"] == [{"HeaderName": "X-Origin-Verify", "HeaderValue": {
        "Fn::Sub": "{{resolve:secretsmanager:${OriginSecret}:SecretString:key}}"}}]
    assert merge_template["OriginSecret"]["Properties"]["GenerateSecretString"]["GenerateStringKey"] == "key"
    for behaviour in config["CacheBehaviors"]:
        [function] = behaviour["FunctionAssociations"]
        assert function == {"EventType": "viewer-request", "FunctionARN": {
            "Fn::GetAtt": ["WebViewerAddressFunction", "FunctionMetadata.FunctionARN"]}}
