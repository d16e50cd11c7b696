"""DynamoDB models of the loans slice."""
from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.core import config
from chalicelib.core.db import BaseMeta, FenAttribute, IntAttribute, register_table


@register_table
class ProductRecord(Model):
    """A loan product as seeded from `catalog.json` (the catalog in git is the source)."""

    class Meta(BaseMeta):
        table_name = config.table_name("products")

    product_id = UnicodeAttribute(hash_key=True)
    catalog_version = IntAttribute()
    name = UnicodeAttribute()
    institution = UnicodeAttribute()
    kind = UnicodeAttribute()
    min_amount = FenAttribute()
    max_amount = FenAttribute()
    term_months = ListAttribute(of=NumberAttribute)
    repayment_methods = ListAttribute(of=UnicodeAttribute)
    apr_min = UnicodeAttribute()
    apr_max = UnicodeAttribute()
