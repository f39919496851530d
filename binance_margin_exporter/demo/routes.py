"""What a simulated product is to the simulator, and what it serves: an endpoint's weight, its
answer, and what it checks of the caller (Binance's security types: USER_DATA signed,
MARKET_DATA a key, NONE nothing).

A product's ``demo/<name>.py`` is a :class:`Simulated`: ``routes(host)`` builds its state (or
takes the one a test gave the :class:`Host`, by the state's name) and returns its endpoints.
The simulator serves the routes of the modules its caller lists (the product list's), and
knows no product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from binance_margin_exporter.binance.endpoints import Endpoint

T = TypeVar("T")

API_KEY = "X-MBX-APIKEY"  # an answer finds the caller's API key among its params by this name


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


class Host(Protocol):
    """What a simulated product asks of the simulator that serves it."""

    def state(self, name: str, build: Callable[[], T]) -> T:
        """The product state of this ``name`` (a test's, given to the simulator), or
        ``build()``'s, kept under that name for the next caller."""
        ...


class Simulated(Protocol):
    """A product's ``demo/<name>.py``, as the simulator reads it."""

    def routes(self, host: Host) -> Mapping[str, Route]:
        """Path (or "METHOD path" for what is not a GET) -> route."""
        ...


@runtime_checkable
class Background(Protocol):
    """A product state that serves something of its own beside HTTP (a WebSocket server):
    started and stopped with the simulator."""

    def start(self, host: str) -> None: ...

    def stop(self) -> None: ...


class Demo(NamedTuple):
    """What ``--demo`` takes from a product (its module's optional ``demo(host)``): settings of
    the demo's accounts by account name (merged across products), and exporter options."""

    accounts: Mapping[str, Mapping[str, Any]] = {}
    options: Mapping[str, Any] = {}
