"""The cost of borrowing: ``GET /sapi/v1/margin/next-hourly-interest-rate`` (signed, weight 100
(IP)): the next hourly interest rate of up to 20 assets a call, for cross (``isIsolated=FALSE``)
or isolated margin (``TRUE``). Binance changes the rates hourly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient

NEXT_HOURLY_RATE = Endpoint("/sapi/v1/margin/next-hourly-interest-rate", 100)
NEXT_HOURLY_RATE_PATH = NEXT_HOURLY_RATE.path
ASSETS_PER_CALL = 20


def parse_rates(raw: Any) -> dict[str, float]:
    """``[{"asset": "BTC", "nextHourlyInterestRate": "0.00000571"}, ...]`` -> asset: rate."""
    rates: dict[str, float] = {}
    for i, entry in enumerate(fields.array(raw, "rates")):
        entry = fields.obj(entry, f"rates[{i}]")
        at = f"rates[{i}]."
        rates.setdefault(fields.string(entry, "asset", at),
                         fields.number(entry, "nextHourlyInterestRate", at))
    return rates


def fetch_next_hourly_rates(client: BinanceClient, assets: Sequence[str], *, isolated: bool,
                            deadline: float | None = None) -> dict[str, float]:
    """The rates of ``assets`` (one call per 20), by asset."""
    rates: dict[str, float] = {}
    names = sorted(set(assets))
    for start in range(0, len(names), ASSETS_PER_CALL):
        chunk = ",".join(names[start:start + ASSETS_PER_CALL])
        # pairs, not a string: the client percent-encodes them (asset names can be non-ASCII)
        params = [("assets", chunk), ("isIsolated", "TRUE" if isolated else "FALSE")]
        rates.update(parse_rates(client.signed_get(NEXT_HOURLY_RATE_PATH, params,
                                                   deadline=deadline)))
    return rates
