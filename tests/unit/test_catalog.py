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


def test_an_upfront_fee_counts_in_the_all_in_rate(tmp_path):
    # 18 % APR plus a 3 % fee on a 3-month loan is far above 24 % all-in
    path = write(tmp_path, lambda ps: ps[1].update(apr_max="0.1800", upfront_fee_bps=300))
    with pytest.raises(CatalogError, match="fees included"):
        load_catalog(path)


def test_without_fees_the_all_in_rate_does_not_exceed_the_apr():
    from decimal import Decimal

    from chalicelib.money.apr import all_in_apr
    for method in ("equal_installment", "equal_principal", "interest_first"):
        for term in (1, 3, 12):
            rate = all_in_apr(1_000_000, Decimal("0.24"), term, method)
            assert Decimal("0.235") < rate <= Decimal("0.24")


def test_irr_of_a_known_cash_flow():
    from decimal import Decimal

    from chalicelib.money.apr import irr_annual
    # 10,000 out, 10,100 back after 73 days: 1 % over 73 days; daily compounding gives
    # 365 * (1.01^(1/73) - 1) = 4.97550...%
    rate = irr_annual([(0, -10_000), (73, 10_100)])
    assert abs(rate - Decimal("0.0497550451")) < Decimal("1e-9")
