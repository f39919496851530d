"""A simulated Portfolio Margin Pro account: ``GET /sapi/v1/portfolio/account`` and, for a
SPAN account (``PM_3``), ``GET /sapi/v2/portfolio/account`` (weight 5 each). It answers as
Binance's own example does, thousands comma in ``totalAvailableBalance`` included; tests make
it a SPAN account with ``sim.portfolio_pro.account_type = "PM_3"``.
"""

from __future__ import annotations

import json

from binance_margin_exporter.binance.portfolio_pro import PRO_ACCOUNT, SPAN_ACCOUNT
from binance_margin_exporter.demo.routes import Host, Route, route_of


class SimulatedPortfolioPro:
    def __init__(self) -> None:
        self.account_type = "PM_1"

    def account(self, params: dict[str, str]) -> bytes:
        return json.dumps({
            "uniMMR": "5167.92171923", "accountEquity": "122607.35137903",
            "actualEquity": "142607.35137903", "accountMaintMargin": "23.72469206",
            "accountInitialMargin": "47.44938412",
            "totalAvailableBalance": "122,559.90199491", "accountStatus": "NORMAL",
            "accountType": self.account_type}).encode()


def routes(host: Host) -> dict[str, Route]:
    pro = host.state("portfolio_pro", SimulatedPortfolioPro)
    return dict((route_of(PRO_ACCOUNT, pro.account), route_of(SPAN_ACCOUNT, pro.account)))
