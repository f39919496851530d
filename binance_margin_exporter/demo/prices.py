"""The simulated ticker: ``GET /api/v3/ticker/price`` (unsigned, weight 4 on /api), in line with
the simulated account's prices.

Routes as on Binance: most assets trade against USDT; AVAX only against BTC (priced via
BTCUSDT); TRY, a fiat currency, is quoted as USDTTRY; XDEL has no pair at all.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

from binance_margin_exporter.demo.cross import BTC_USDT, SimulatedAccount, s8
from binance_margin_exporter.demo.routes import Route

if TYPE_CHECKING:
    from binance_margin_exporter.demo.simulator import Simulator

TICKER_PRICE_PATH = "/api/v3/ticker/price"
ONLY_VIA_BTC = {"AVAX"}
QUOTED_INVERSELY = {"TRY"}
NO_ROUTE = {"XDEL"}


def ticker(account: SimulatedAccount) -> list[dict[str, str]]:
    symbols = [{"symbol": "BTCUSDT", "price": s8(BTC_USDT)}]
    for asset, price_btc in account.prices_btc().items():
        if asset in ("BTC", "USDT") or asset in NO_ROUTE:
            continue
        if asset in ONLY_VIA_BTC:
            symbols.append({"symbol": f"{asset}BTC", "price": s8(price_btc)})
        elif asset in QUOTED_INVERSELY:
            symbols.append({"symbol": f"USDT{asset}", "price": s8(1 / (price_btc * BTC_USDT))})
        else:
            symbols.append({"symbol": f"{asset}USDT", "price": s8(price_btc * BTC_USDT)})
    # symbols nobody holds, as the real ticker lists thousands; a delisted one priced 0
    symbols += [{"symbol": "LTCBTC", "price": "0.00085000"},
                {"symbol": "OLDUSDT", "price": s8(Decimal(0))}]
    return symbols


def routes(sim: Simulator) -> dict[str, Route]:
    account = sim.account
    return {TICKER_PRICE_PATH: Route(4, lambda params: json.dumps(ticker(account)).encode(),
                                     signed=False)}
