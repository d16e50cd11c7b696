"""Health, products and the OpenAPI document through chalice's test client, on moto."""
from __future__ import annotations

import re

from app import app


def test_health_is_ok(client):
    response = client.http.get("/health")
    assert response.status_code == 200
    assert response.json_body["status"] == "ok"


def test_products_are_served_from_the_seeded_table(client, aws_stack):
    response = client.http.get("/v1/products")
    assert response.status_code == 200
    items = response.json_body["items"]
    assert len(items) == aws_stack["products"] >= 3
    for item in items:
        assert set(item) == {"product_id", "name", "institution", "kind", "min_amount", "max_amount",
                             "term_months", "repayment_methods", "apr_min", "apr_max"}
        assert isinstance(item["min_amount"], int) and isinstance(item["max_amount"], int)
        assert re.fullmatch(r"0\.\d{4}", item["apr_max"])


def test_products_come_from_dynamodb_not_the_file(client):
    from chalicelib.loans import catalog
    from chalicelib.loans.models import ProductRecord
    ProductRecord.get("cash-advance").delete()
    catalog.clear_cache()
    ids = [p["product_id"] for p in client.http.get("/v1/products").json_body["items"]]
    assert "cash-advance" not in ids


def test_wrong_method_gets_the_contract_error_body(client):
    response = client.http.post("/v1/products", body=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 405
    assert response.json_body["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_request_id_is_echoed_for_correlation(client):
    response = client.http.get("/health", headers={"X-Request-Id": "req-123"})
    assert response.headers["X-Request-Id"] == "req-123"


def test_openapi_document_matches_the_routes(client):
    doc = client.http.get("/openapi.json").json_body
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {(path, method) for path, methods in app.routes.items() for method in methods}
    # HEAD beside every GET is implicit (HTTP's, answered as GET without the body)
    implicit_head = {(path, "HEAD") for path, method in documented if method == "GET"}
    assert documented | implicit_head == served
