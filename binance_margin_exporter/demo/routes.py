"""What a simulated product serves: an endpoint's weight, its answer, and what it checks of the
caller (Binance's security types: USER_DATA signed, MARKET_DATA a key, NONE nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from binance_margin_exporter.binance.endpoints import Endpoint


class Route(NamedTuple):
    weight: int  # IP weight Binance charges for the call
    answer: Callable[[dict[str, str]], bytes]  # query parameters -> JSON body
    signed: bool = True  # USER_DATA: key, signature and timestamp are checked
    keyed: bool = False  # MARKET_DATA (with signed=False): the key is checked, and the
    # signature and timestamp only if sent


def route_of(endpoint: Endpoint, answer: Callable[[dict[str, str]], bytes], *, signed: bool = True,
          keyed: bool = False) -> tuple[str, Route]:
    """A declared endpoint's route: its key (see ``Endpoint.route``) and what it costs the IP
    (an endpoint limited by account, UID, costs the IP nothing)."""
    return endpoint.route, Route(endpoint.ip_weight, answer, signed, keyed)


class RequestError(Exception):
    """A Binance error answer (HTTP 400 and ``{"code", "msg"}``) for a bad request."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
