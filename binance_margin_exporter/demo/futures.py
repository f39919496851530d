"""A simulated futures account: ``GET /fapi/v3/account`` (USDⓈ-M: totals and assets, every
asset listed, most at zero) and ``GET /dapi/v1/account`` (COIN-M: assets only), weight 5 each.

Its margin ratio (maintenance margin / margin balance) is 25 % for um and 12.5 % for cm; tests
raise it with :meth:`SimulatedFutures.set_maint_margin`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance.futures import FUTURES_ACCOUNTS
from binance_margin_exporter.demo.numbers import s8
from binance_margin_exporter.demo.routes import Demo, Host, Route, route_of

UM_MARGIN_BALANCE = Decimal("2000")
CM_MARGIN_BALANCE = Decimal("0.8")


class SimulatedFutures:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.um_maint = Decimal("500")
        self.cm_maint = Decimal("0.1")

    def set_maint_margin(self, um: float, cm: float) -> None:
        self.um_maint, self.cm_maint = Decimal(str(um)), Decimal(str(cm))

    @staticmethod
    def _asset(asset: str, wallet: Decimal, pnl: Decimal, maint: Decimal) -> dict[str, Any]:
        margin = wallet + pnl
        return {"asset": asset, "walletBalance": s8(wallet), "unrealizedProfit": s8(pnl),
                "marginBalance": s8(margin), "maintMargin": s8(maint),
                "initialMargin": s8(maint * 2), "positionInitialMargin": s8(maint * 2),
                "openOrderInitialMargin": "0.00000000", "crossWalletBalance": s8(wallet),
                "crossUnPnl": s8(pnl), "availableBalance": s8(max(margin - maint * 2,
                                                                  Decimal(0))),
                "maxWithdrawAmount": s8(max(margin - maint * 2, Decimal(0))),
                "updateTime": 0}

    def um(self, params: dict[str, str]) -> bytes:
        pnl = Decimal("-40.5")
        usdt = self._asset("USDT", UM_MARGIN_BALANCE - pnl, pnl, self.um_maint)
        zeros = [self._asset(a, Decimal(0), Decimal(0), Decimal(0))
                 for a in ("BTC", "BNB", "FDUSD")]
        body = {
            "totalInitialMargin": usdt["initialMargin"],
            "totalMaintMargin": usdt["maintMargin"],
            "totalWalletBalance": usdt["walletBalance"],
            "totalUnrealizedProfit": usdt["unrealizedProfit"],
            "totalMarginBalance": usdt["marginBalance"],
            "totalPositionInitialMargin": usdt["positionInitialMargin"],
            "totalOpenOrderInitialMargin": "0.00000000",
            "totalCrossWalletBalance": usdt["walletBalance"],
            "totalCrossUnPnl": usdt["unrealizedProfit"],
            "availableBalance": usdt["availableBalance"],
            "maxWithdrawAmount": usdt["maxWithdrawAmount"],
            "assets": [usdt, *zeros], "positions": []}
        return json.dumps(body).encode()

    def cm(self, params: dict[str, str]) -> bytes:
        pnl = Decimal("0.00005866")
        btc = self._asset("BTC", CM_MARGIN_BALANCE - pnl, pnl, self.cm_maint)
        eth = self._asset("ETH", Decimal(0), Decimal(0), Decimal(0))
        body = {"assets": [btc, eth], "positions": [], "canDeposit": True, "canTrade": True,
                "canWithdraw": True, "feeTier": 0, "updateTime": int(self._wall() * 1000)}
        return json.dumps(body).encode()


def routes(host: Host) -> dict[str, Route]:
    futures = host.state("futures", SimulatedFutures)
    return dict((route_of(FUTURES_ACCOUNTS["um"], futures.um),
                 route_of(FUTURES_ACCOUNTS["cm"], futures.cm)))


def demo(host: Host) -> Demo:
    """``--demo``'s futures account, on both markets."""
    return Demo(accounts={"demo-futures": {"type": "futures", "markets": ("um", "cm")}})
