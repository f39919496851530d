"""Portfolio Margin Pro, on the api host (``/sapi``):

- ``GET /sapi/v1/portfolio/account`` (signed, weight 5): ``uniMMR``, equities, margins,
  ``accountStatus``, ``accountType`` (``PM_1`` PM Pro; ``PM_3`` PM Pro SPAN).
- ``GET /sapi/v2/portfolio/account`` (signed, weight 5): the same for a SPAN account.

Which one an account needs is known only from an answer: the first fetch asks v1; when it says
``PM_3`` the v2 answer is fetched too and used, and every later fetch asks v2 alone (and goes
back to v1 should v2 ever say otherwise). Every number is optional and read leniently: Binance's
own example sends ``"totalAvailableBalance": "122,559.90199491"``, which drops only its metric.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.portfolio import PortfolioAccount, parse_portfolio_account
from binance_margin_exporter.binance.transport import BinanceClient

# one page of Binance's docs says IP, another UID: counted on the IP, the safer side
PRO_ACCOUNT = Endpoint("/sapi/v1/portfolio/account", 5)
SPAN_ACCOUNT = Endpoint("/sapi/v2/portfolio/account", 5)
PRO_ACCOUNT_PATH = PRO_ACCOUNT.path
SPAN_ACCOUNT_PATH = SPAN_ACCOUNT.path
SPAN_TYPE = "PM_3"
ACCOUNT_TYPES = ("PM_1", "PM_3")


@dataclass(frozen=True, slots=True)
class PortfolioPro:
    account: PortfolioAccount
    account_type: str | None
    invalid: tuple[str, ...] = ()


def parse_portfolio_pro(raw: Any) -> PortfolioPro:
    account = parse_portfolio_account(raw)
    optional = fields.Lenient()
    account_type = optional.string(fields.obj(raw, "portfolio margin pro account"),
                                   "accountType")
    return PortfolioPro(account, account_type or None,
                        tuple(dict.fromkeys((*account.invalid, *optional.noted()))))


class PortfolioProReader:
    """One account's reads: v1 until an answer says SPAN, v2 from then on."""

    def __init__(self, client: BinanceClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self.span = False

    def __call__(self, deadline: float | None = None) -> PortfolioPro:
        with self._lock:
            span = self.span
        path = SPAN_ACCOUNT_PATH if span else PRO_ACCOUNT_PATH
        answer = parse_portfolio_pro(self.client.signed_get(path, deadline=deadline))
        if not span and answer.account_type == SPAN_TYPE:
            span = True
            answer = parse_portfolio_pro(self.client.signed_get(SPAN_ACCOUNT_PATH,
                                                                deadline=deadline))
        with self._lock:  # an answer without accountType keeps the path that gave it
            self.span = span if answer.account_type is None else \
                answer.account_type == SPAN_TYPE
        return answer
