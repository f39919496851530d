"""The simulated ticker: ``GET /api/v3/ticker/price`` (unsigned, weight 4 on /api), in line with
the simulated account's prices.

Routes as on Binance: most assets trade against USDT; AVAX only against BTC (priced via
BTCUSDT): its USDT pair is halted, and an unfiltered ticker still lists it at its last, stale
price, as Binance's does; TRY, a fiat currency, is quoted as USDTTRY; XDEL has no pair at all.
``symbolStatus=TRADING`` leaves out the pairs that do not trade (``HALT``, ``BREAK``).
"""

from __future__ import annotations

import json
from decimal import Decimal

from binance_margin_exporter.binance.prices import TICKER_PRICE
from binance_margin_exporter.demo import cross
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.numbers import BTC_USDT, s8
from binance_margin_exporter.demo.routes import Host, Route, route_of

TICKER_PRICE_PATH = TICKER_PRICE.path
ONLY_VIA_BTC = {"AVAX"}
QUOTED_INVERSELY = {"TRY"}
NO_ROUTE = {"XDEL"}


STALE_SHARE = Decimal("0.5")  # a halted pair's last price, against today's


def ticker(account: SimulatedAccount) -> list[tuple[dict[str, str], str]]:
    """Every symbol with its status (``TRADING``, ``HALT``, ``BREAK``)."""
    symbols = [({"symbol": "BTCUSDT", "price": s8(BTC_USDT)}, "TRADING")]
    for asset, price_btc in account.prices_btc().items():
        if asset in ("BTC", "USDT") or asset in NO_ROUTE:
            continue
        if asset in ONLY_VIA_BTC:
            symbols.append(({"symbol": f"{asset}BTC", "price": s8(price_btc)}, "TRADING"))
            symbols.append(({"symbol": f"{asset}USDT",
                             "price": s8(price_btc * BTC_USDT * STALE_SHARE)}, "HALT"))
        elif asset in QUOTED_INVERSELY:
            symbols.append(({"symbol": f"USDT{asset}",
                             "price": s8(1 / (price_btc * BTC_USDT))}, "TRADING"))
        else:
            symbols.append(({"symbol": f"{asset}USDT", "price": s8(price_btc * BTC_USDT)},
                            "TRADING"))
    # symbols nobody holds, as the real ticker lists thousands; a delisted one priced 0
    symbols += [({"symbol": "LTCBTC", "price": "0.00085000"}, "TRADING"),
                ({"symbol": "OLDUSDT", "price": s8(Decimal(0))}, "BREAK")]
    return symbols


def answer(account: SimulatedAccount, params: dict[str, str]) -> bytes:
    wanted = params.get("symbolStatus")
    return json.dumps([entry for entry, status in ticker(account)
                       if wanted is None or status == wanted]).encode()


def routes(host: Host) -> dict[str, Route]:
    """The ticker, in line with the cross margin account's prices."""
    account = cross.state(host)
    return dict((route_of(TICKER_PRICE, lambda params: answer(account, params),
                          signed=False),))
