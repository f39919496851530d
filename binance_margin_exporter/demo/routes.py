"""What a simulated product serves: a signed endpoint's weight and its answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Route(NamedTuple):
    weight: int  # IP weight Binance charges for the call
    answer: Callable[[dict[str, str]], bytes]  # query parameters -> JSON body
