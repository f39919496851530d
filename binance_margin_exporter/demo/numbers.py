"""Numbers as Binance writes them, shared by the simulated products: 8-decimal strings
(``"0.00000100"``), and the demo market's BTC price in USDT."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

EIGHT = Decimal("0.00000001")
BTC_USDT = Decimal("94250")  # the demo market's BTC price: every product values at it


def q8(value: Decimal) -> Decimal:
    """``value`` rounded to 8 decimals, as Binance rounds amounts."""
    return value.quantize(EIGHT, rounding=ROUND_HALF_EVEN)


def s8(value: Decimal) -> str:
    """``value`` as Binance sends an amount: a string with 8 decimals."""
    return f"{q8(value):.8f}"
