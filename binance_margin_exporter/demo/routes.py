"""What a simulated product serves: an endpoint's weight, its answer, and whether it is signed."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Route(NamedTuple):
    weight: int  # IP weight Binance charges for the call
    answer: Callable[[dict[str, str]], bytes]  # query parameters -> JSON body
    signed: bool = True  # USER_DATA: key, signature and timestamp are checked


class RequestError(Exception):
    """A Binance error answer (HTTP 400 and ``{"code", "msg"}``) for a bad request."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
