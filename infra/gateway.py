"""The local stack's HTTP front: chalice local, made to answer as API Gateway does.

Where a client can tell the difference, chalice local differs from the deployed API:
- an unknown path is answered 403 `{"message": "Missing Authentication Token"}` (or, when the
  request has an Authorization header, a SigV4 complaint that echoes the caller's token), where
  the deployed API answers the gateway response of `infra/template.py` (404 NOT_FOUND in the
  contract's error body);
- `sourceIp` is always 127.0.0.1 (`LambdaEventConverter.LOCAL_SOURCE_IP`), so per-address
  limits (sign-in codes: 30 per address per 10 minutes) are shared by every local client;
- `OPTIONS` on a route without CORS answers 200, where API Gateway has no such method (the
  deployed API sends it to the function, which answers 405 with `Allow`);
- `HEAD` writes the body, and methods http.server has no `do_X` for get a 501 HTML page.

`GatewayHandler` replaces chalice's request handler; everything else is chalice local's.
"""
from __future__ import annotations

import uuid
from typing import Any

from chalice.local import ChaliceRequestHandler, LocalGateway

from chalicelib.api.http import allowed_methods, cors_enabled
from infra import web_page


def gateway_answer(kind: str) -> tuple[int, dict[str, str], bytes]:
    """The deployed API's own answer of this kind (a gateway response of infra/template.py)."""
    from infra.template import GATEWAY_RESPONSE_HEADERS, GATEWAY_RESPONSES, gateway_body
    for name, status, code, message in GATEWAY_RESPONSES:
        if name == kind:
            return int(status or 400), {"Content-Type": "application/json", **GATEWAY_RESPONSE_HEADERS}, \
                gateway_body(code, message).encode()
    raise KeyError(kind)


class ApiGateway(LocalGateway):
    """chalice's LocalGateway with API Gateway's routing answers and the client's address."""

    def __init__(self, app_object: Any, config: Any, source_ip: str) -> None:
        super().__init__(app_object, config)
        self.source_ip = source_ip

    def _generate_lambda_event(self, method: str, path: str, headers: Any, body: Any) -> dict:
        event = super()._generate_lambda_event(method, path, headers, body)
        context = event["requestContext"]
        context["identity"]["sourceIp"] = self.source_ip  # API Gateway: the TCP peer's address
        context["requestId"] = str(uuid.uuid4())
        context["stage"] = "local"
        return event

    def handle_request(self, method: str, path: str, headers: Any, body: Any) -> dict:
        page = web_page.answer(method, path)  # the borrower's page, CloudFront's part when deployed
        if page is not None:
            return page
        try:
            resource = self.event_converter._route_matcher.match_route(path).route
        except ValueError:
            status, answer_headers, answer = gateway_answer("MISSING_AUTHENTICATION_TOKEN")
            return {"statusCode": status, "headers": answer_headers, "multiValueHeaders": {},
                    "body": answer.decode()}
        if method == "OPTIONS" and cors_enabled(resource):
            # The CORS preflight, answered by the gateway itself (a mock integration when
            # deployed: chalice's preflight plus the `Allow` infra/template.py adds).
            event = self._generate_lambda_event(method, path, headers, body)
            answer = self._autogen_options_headers(event)
            answer["Allow"] = ", ".join(allowed_methods(resource))
            return {"statusCode": 200, "headers": answer, "multiValueHeaders": {}, "body": None}
        # Everything else goes to the function, which answers 405 (with `Allow`) for a method
        # the resource does not have, as it does behind API Gateway's ANY method.
        context = self._generate_lambda_context()
        event = self._generate_lambda_event(method, path, headers, body)
        event, context = self._authorizer.authorize(path, event, context)
        return self._app_object(event, context)


class GatewayHandler(ChaliceRequestHandler):
    """One connection: every request on it comes from the same client address."""

    # chalice writes the headers and the body in two sends; with Nagle's algorithm and the
    # client's delayed ACK every keep-alive response then waits 40 ms for nothing.
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any,
                 config: Any) -> None:
        self.local_gateway = ApiGateway(app_object, config, source_ip=client_address[0])
        # BaseHTTPRequestHandler handles the connection's requests inside __init__.
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Every answer's `Date` header on the service's clock, as API Gateway's is on AWS's
        (where the service's clock is the wall clock): the local stack's clock runs ahead of
        the wall after `make jobs AT=`, and the borrower's page takes its now from this header."""
        if timestamp is None:
            from chalicelib import wiring
            timestamp = wiring.clock().now().timestamp()
        return super().date_time_string(timestamp)

    def _send_http_response_with_body(self, code: int, headers: Any, body: Any) -> None:
        if self.command != "HEAD":
            return super()._send_http_response_with_body(code, headers, body)
        # HEAD: the headers GET would send, Content-Length included, and no body.
        if not isinstance(body, bytes):
            body = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)

    # http.server answers a method without a do_X with a 501 HTML page; API Gateway takes any
    # method to the resource, so the function answers it (405 with `Allow`).
    do_TRACE = do_QUERY = do_CONNECT = do_PROPFIND = ChaliceRequestHandler._generic_handle
