from datetime import datetime, timezone
from decimal import Decimal

import pytest

from chalicelib.core.clock import shanghai_date
from chalicelib.money.fen import format_rate, parse_rate, to_fen


@pytest.mark.parametrize("exact, fen", [("0.5", 1), ("1.49999", 1), ("2.5", 3), ("-0.5", -1), ("0", 0)])
def test_half_up_to_the_fen(exact, fen):
    assert to_fen(Decimal(exact)) == fen


def test_floats_are_refused():
    with pytest.raises(TypeError):
        to_fen(0.5)  # type: ignore[arg-type]


def test_rates_parse_and_format_as_decimal_strings():
    assert parse_rate("0.1825") == Decimal("0.1825")
    assert format_rate(Decimal("0.18")) == "0.1800"
    with pytest.raises(ValueError):
        parse_rate("-0.1")


def test_business_date_is_the_shanghai_date():
    assert str(shanghai_date(datetime(2027, 1, 9, 16, 5, tzinfo=timezone.utc))) == "2027-01-10"
