"""The simulated risk lists: ``GET /sapi/v1/margin/delist-schedule`` (USER_DATA: signed, weight
100) and ``GET /sapi/v1/margin/restricted-asset`` (MARKET_DATA: the key, no signature needed,
weight 1), as Binance serves them.

The schedule delists DOT (which the demo account holds) and the isolated pair BNBUSDT (which
it holds too) about 5 days after the simulator starts, on the hour, so the delisting alert
fires in the demo; XDEL and XDELUSDT follow 40 days later. The restricted lists are Binance's
documented example, with ADA and BNB held by the demo account, and one non-ASCII name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from binance_margin_exporter.binance.risk_lists import DELIST_SCHEDULE, RESTRICTED_ASSET
from binance_margin_exporter.demo.routes import Host, Route, route_of

DELIST_SCHEDULE_PATH = DELIST_SCHEDULE.path
RESTRICTED_ASSET_PATH = RESTRICTED_ASSET.path
DAY_SECONDS = 86400


class SimulatedRiskLists:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        soon = (int(wall()) // 3600 * 3600 + 5 * DAY_SECONDS) * 1000  # ms, as Binance sends
        self.schedule: list[dict[str, Any]] = [
            {"delistTime": soon, "crossMarginAssets": ["DOT"],
             "isolatedMarginSymbols": ["BNBUSDT"]},
            {"delistTime": soon + 40 * DAY_SECONDS * 1000, "crossMarginAssets": ["XDEL"],
             "isolatedMarginSymbols": ["XDELUSDT"]},
        ]
        self.restricted: dict[str, list[str]] = {
            "openLongRestrictedAsset": ["ADA", "CHZ", "币安人生"],
            "maxCollateralExceededAsset": ["ACH", "BNB"],
        }


def routes(host: Host) -> dict[str, Route]:
    lists = host.state("risk_lists", SimulatedRiskLists)
    return dict((
        route_of(DELIST_SCHEDULE, lambda params: json.dumps(lists.schedule).encode()),
        route_of(RESTRICTED_ASSET,
                 lambda params: json.dumps(lists.restricted, ensure_ascii=False).encode(),
                 signed=False, keyed=True),
    ))
