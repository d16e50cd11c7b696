"""The product catalog: versioned in git (`catalog.json`), validated, seeded into DynamoDB."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

from chalicelib.loans.models import ProductRecord

CATALOG_PATH = Path(__file__).with_name("catalog.json")
REPAYMENT_METHODS = ("equal_installment", "equal_principal", "interest_first")
DEFAULT_REMINDER_DAYS = (-3, -1, 0, 1, 3, 7)  # days from the due date D (the contract's)


def apr_cap() -> Decimal:
    """The legal ceiling on a product's all-in annual rate (24 % unless configured)."""
    return Decimal(os.environ.get("APR_CAP", "0.24"))


class CatalogError(ValueError):
    """A product in the catalog breaks a rule; loading stops rather than serve it."""


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    institution: str
    kind: str
    min_amount: int
    max_amount: int
    term_months: tuple[int, ...]
    repayment_methods: tuple[str, ...]
    apr_min: str
    apr_max: str
    reminder_days: tuple[int, ...] = DEFAULT_REMINDER_DAYS
    upfront_fee_bps: int = 0  # service fee taken from the payout, in basis points of the principal

    def to_api(self) -> dict:
        data = asdict(self)
        del data["reminder_days"]
        del data["upfront_fee_bps"]
        data["term_months"] = list(self.term_months)
        data["repayment_methods"] = list(self.repayment_methods)
        return data


def validate(product: Product) -> Product:
    where = f"product {product.product_id!r}"
    if not (0 < product.min_amount <= product.max_amount):
        raise CatalogError(f"{where}: amounts must satisfy 0 < min_amount <= max_amount (fen)")
    if not product.term_months or any(t < 1 or t > 36 for t in product.term_months):
        raise CatalogError(f"{where}: term_months must be 1..36")
    if not product.repayment_methods or set(product.repayment_methods) - set(REPAYMENT_METHODS):
        raise CatalogError(f"{where}: unknown repayment method in {product.repayment_methods}")
    apr_min, apr_max = Decimal(product.apr_min), Decimal(product.apr_max)
    if not (0 < apr_min <= apr_max):
        raise CatalogError(f"{where}: need 0 < apr_min <= apr_max")
    if apr_max > apr_cap():
        raise CatalogError(f"{where}: APR {apr_max} exceeds the cap {apr_cap()}")
    # The all-in rate, fees included, by the IRR method, at the product's dearest terms.
    from chalicelib.money.apr import all_in_apr
    for term in product.term_months:
        for method in product.repayment_methods:
            fee = product.min_amount * product.upfront_fee_bps // 10_000
            rate = all_in_apr(product.min_amount, apr_max, term, method, upfront_fee=fee)
            if rate > apr_cap():
                raise CatalogError(f"{where}: all-in APR {rate:.6f} ({term} months, {method}, "
                                   f"fees included) exceeds the cap {apr_cap()}")
    return product


def load_catalog(path: Path = CATALOG_PATH) -> tuple[int, list[Product]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    products = []
    for item in raw["products"]:
        item = dict(item)
        item["term_months"] = tuple(item["term_months"])
        item["repayment_methods"] = tuple(item["repayment_methods"])
        if "reminder_days" in item:
            item["reminder_days"] = tuple(item["reminder_days"])
        products.append(validate(Product(**item)))
    ids = [p.product_id for p in products]
    if len(ids) != len(set(ids)):
        raise CatalogError("duplicate product_id in catalog")
    return int(raw["version"]), products


def seed_products(path: Path = CATALOG_PATH) -> int:
    """Write the catalog into the products table (idempotent; same ids overwrite)."""
    version, products = load_catalog(path)
    with ProductRecord.batch_write() as batch:
        for product in products:
            batch.save(ProductRecord(catalog_version=version, reminder_days=list(product.reminder_days),
                                     **product.to_api()))
    return len(products)


_cache: tuple[float, list[Product]] | None = None
CACHE_SECONDS = 60.0


def list_products() -> list[Product]:
    """Products from the table, cached per container for a minute (the catalog rarely moves)."""
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] > CACHE_SECONDS:
        items = [Product(product_id=r.product_id, name=r.name, institution=r.institution,
                         kind=r.kind, min_amount=r.min_amount, max_amount=r.max_amount,
                         term_months=tuple(int(t) for t in r.term_months),
                         repayment_methods=tuple(r.repayment_methods),
                         apr_min=r.apr_min, apr_max=r.apr_max,
                         reminder_days=tuple(int(d) for d in r.reminder_days))
                 for r in ProductRecord.scan()]
        _cache = (now, sorted(items, key=lambda p: p.product_id))
    return _cache[1]


def clear_cache() -> None:
    global _cache
    _cache = None


def get_product(product_id: str) -> Product:
    from chalicelib.core.errors import NotFound
    for product in list_products():
        if product.product_id == product_id:
            return product
    raise NotFound("No such product.", code="PRODUCT_NOT_FOUND")


def reminder_days(product_id: str | None = None) -> tuple[int, ...]:
    """Days from the due date on which a product reminds (the contract's default if unset);
    without a product, every day any product reminds on."""
    if product_id is None:
        days = set(DEFAULT_REMINDER_DAYS)
        for product in list_products():
            days |= set(product.reminder_days)
        return tuple(sorted(days))
    return get_product(product_id).reminder_days
