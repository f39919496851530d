"""Market prices: ``GET /api/v3/ticker/price?symbolStatus=TRADING`` without ``symbol`` (unsigned,
public; weight 4 on the ``/api`` limit of 6,000 a minute): the last price of every symbol that
trades. Without the filter Binance also lists halted and delisted pairs at their last price, and
a halted ``ASSETUSDT`` would win over a live route.

:meth:`Prices.usdt` values an asset in USDT: USDT is 1; else the ``ASSETUSDT`` pair; else
``1 / USDTASSET`` (fiat such as TRY is quoted that way); else ``ASSETBTC x BTCUSDT``; else
there is no price (``None``, never 0). A price of 0 (delisted symbols) counts as no price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient

TICKER_PRICE = Endpoint("/api/v3/ticker/price", 4)  # every symbol (no ``symbol``)
TICKER_PRICE_PATH = TICKER_PRICE.path
TRADING_ONLY = "symbolStatus=TRADING"


@dataclass(frozen=True)
class Prices:
    by_symbol: Mapping[str, float]

    def usdt(self, asset: str) -> float | None:
        """The asset's price in USDT, or None when no route leads to one."""
        if asset == "USDT":
            return 1.0
        direct = self.by_symbol.get(f"{asset}USDT")
        if direct:
            return direct
        inverse = self.by_symbol.get(f"USDT{asset}")
        if inverse:
            return float(1 / fields.decimal(inverse))
        in_btc, btc = self.by_symbol.get(f"{asset}BTC"), self.by_symbol.get("BTCUSDT")
        if in_btc and btc:
            return fields.times(in_btc, btc)
        return None


def parse_prices(raw: Any) -> Prices:
    """``[{"symbol": "LTCBTC", "price": "4.00000200"}, ...]`` as :class:`Prices`."""
    by_symbol: dict[str, float] = {}
    for i, entry in enumerate(fields.array(raw, "prices")):
        entry = fields.obj(entry, f"prices[{i}]")
        symbol = fields.string(entry, "symbol", f"prices[{i}].")
        price = fields.number(entry, "price", f"prices[{i}].")
        if price > 0:
            by_symbol.setdefault(symbol, price)
    return Prices(by_symbol)


def fetch_prices(client: BinanceClient, deadline: float | None = None) -> Prices:
    return parse_prices(client.get(TICKER_PRICE_PATH, query=TRADING_ONLY, deadline=deadline))
