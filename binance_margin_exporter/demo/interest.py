"""The simulated ``GET /sapi/v1/margin/next-hourly-interest-rate`` (signed, weight 100):
a fixed next hourly rate per asset, the same for cross and isolated margin."""

from __future__ import annotations

import json

from binance_margin_exporter.binance.interest import NEXT_HOURLY_RATE
from binance_margin_exporter.demo.routes import RequestError, Route, route_of

NEXT_HOURLY_RATE_PATH = NEXT_HOURLY_RATE.path
RATES = {"BTC": "0.00000571", "ETH": "0.00000578", "USDT": "0.00000955", "BNB": "0.00000410",
         "SOL": "0.00000720"}
DEFAULT_RATE = "0.00000500"


def answer(params: dict[str, str]) -> bytes:
    assets = [a for a in params.get("assets", "").split(",") if a]
    if not assets or params.get("isIsolated") not in ("TRUE", "FALSE"):
        raise RequestError(-1102, "Mandatory parameter 'assets' or 'isIsolated' was not sent, "
                                  "was empty/null, or malformed.")
    if len(assets) > 20:
        raise RequestError(-1100, "Illegal characters found in parameter 'assets'.")
    return json.dumps([{"asset": a, "nextHourlyInterestRate": RATES.get(a, DEFAULT_RATE)}
                       for a in assets]).encode()


def routes() -> dict[str, Route]:
    return dict((route_of(NEXT_HOURLY_RATE, answer),))
