"""HTTP routes of the loans slice."""
from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.core.http import route
from chalicelib.loans import catalog

bp = Blueprint(__name__)


@route(bp, "/v1/products", "GET", summary="Loan products with their APR range", tag="loans")
def list_products(request: Any) -> dict[str, Any]:
    return {"items": [p.to_api() for p in catalog.list_products()]}
