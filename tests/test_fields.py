"""The one parse path for numbers: nothing infinite, NaN or out of range gets through."""

from __future__ import annotations

import math

import pytest

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.errors import UpstreamError


@pytest.mark.parametrize("value", [10**500, -(10**500), "1" + "0" * 500, "1e400", "-1e400",
                                   1e101, "-1e101", "1e-101", 1e-320, math.inf, math.nan,
                                   "NaN", "Infinity"])
def test_numbers_out_of_range_are_invalid_responses(value):
    with pytest.raises(UpstreamError) as info:
        fields.to_number(value, "x.marginLevel")
    assert info.value.reason == "invalid_response"
    assert str(info.value).startswith("x.marginLevel: ")


@pytest.mark.parametrize(("value", "number"), [("1e100", 1e100), ("-1e100", -1e100),
                                               (1e-100, 1e-100), ("-1E-100", -1e-100),
                                               ("0E-200", 0.0), (10**20, 1e20)])
def test_the_bounds_themselves_and_zero_are_numbers(value, number):
    assert fields.to_number(value, "x") == number


@pytest.mark.parametrize("compute", [lambda: fields.times(1e305, 1e10),
                                     lambda: fields.times(-1e200, 1e200),
                                     lambda: fields.plus(1.7e308, 1.7e308)])
def test_a_product_or_sum_beyond_a_float_is_an_invalid_response(compute):
    with pytest.raises(UpstreamError) as info:
        compute()
    assert info.value.reason == "invalid_response" and "out of range" in str(info.value)


def test_products_and_sums_of_parsed_numbers_are_exact_and_finite():
    assert fields.times(2144.83333328, 95) == 203759.1666616
    assert fields.plus(0.1, 0.2) == 0.3
    assert fields.times(1e100, 1e100, 1e100) == 1e300  # three factors at the bound still fit


TRICKY = ["0", "-0", "-0.00000000", "0E-8", "1", "-1", "1.", ".5", "-.5", "1e5", "1E+5", "1e-5",
          "00012.50", "1.5e+99", "1e100", "1e101", "1e-100", "1e-101", "0E-200", "-1e100",
          "+1", " 1", "1 ", "\t1", "1\n", "1_0", "1_000.5", "inf", "-inf", "+inf", "Infinity",
          "nan", "NaN", "-nan", "\u0661", "1\u00a0", "\u0663.5", "12\u0660", "0x10", "1e", "e1",
          ".", "-", "", "--1", "1..2", "1e5.5", "1e+", "1e999", "2e-400", "1" * 400]


@pytest.mark.parametrize("value", [*TRICKY, 1, -0.0, 1.5, True, None, [], 10**500, math.nan])
def test_the_quick_path_decides_exactly_as_the_strict_path(value):
    """to_number tries float() first; what it accepts or refuses, and the error's words, are
    those of every check spelt out (_checked), and a zero is never "-0"."""
    def outcome(read):
        try:
            return read()
        except UpstreamError as exc:
            return str(exc)

    quick = outcome(lambda: fields.to_number(value, "userAssets[0].", "free"))
    assert quick == outcome(lambda: fields._checked(value, "userAssets[0].free"))
    if isinstance(quick, float) and quick == 0:
        assert repr(quick) == "0.0"
