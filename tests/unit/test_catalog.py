"""The product catalog refuses to load a product that breaks a rule."""
from __future__ import annotations

import json

import pytest

from chalicelib.loans.catalog import CATALOG_PATH, CatalogError, load_catalog


def write(tmp_path, mutate):
    raw = json.loads(CATALOG_PATH.read_text())
    mutate(raw["products"])
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw))
    return path


def test_shipped_catalog_has_three_products_from_two_institutions():
    _, products = load_catalog()
    assert len(products) >= 3
    assert len({p.institution for p in products}) >= 2
    assert all(p.min_amount <= p.max_amount for p in products)


def test_product_above_the_apr_cap_fails_loudly(tmp_path):
    path = write(tmp_path, lambda ps: ps[0].update(apr_max="0.2401"))
    with pytest.raises(CatalogError, match="exceeds the cap"):
        load_catalog(path)


def test_cap_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("APR_CAP", "0.20")
    with pytest.raises(CatalogError, match="exceeds the cap"):
        load_catalog()


@pytest.mark.parametrize("change", [
    {"min_amount": 0}, {"max_amount": 10}, {"term_months": []}, {"repayment_methods": ["balloon"]},
    {"apr_min": "0.30", "apr_max": "0.20"},
])
def test_inconsistent_products_are_refused(tmp_path, change):
    with pytest.raises(CatalogError):
        load_catalog(write(tmp_path, lambda ps: ps[0].update(change)))


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(CatalogError, match="duplicate"):
        load_catalog(write(tmp_path, lambda ps: ps.append(dict(ps[0]))))
