"""What a Binance endpoint is to the weight accounting: its path, its request weight, the limit
it counts on (the IP's or the account's, ``UID``), and the host it lives on (by the top-level
setting of that host's base URL).

Each ``binance/`` module declares its endpoints once, as constants of this type; the requests,
:mod:`.limits`, the simulator's weight accounting (``demo/``) and the weight plan
(``--config.plan``, from each product's ``weight_per_minute``) all read those constants. No
other module spells a weight.
"""

from __future__ import annotations

from dataclasses import dataclass

IP = "IP"  # counts on the IP's budget of the host (what the exporter's gates watch)
UID = "UID"  # counts on the account's own limit (180,000 a minute on /sapi): not the IP's
HOST_SETTINGS = ("base_url", "papi_base_url", "fapi_base_url", "dapi_base_url")
DECLARED: list[Endpoint] = []  # every endpoint declared so far (by the modules imported)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint and method of Binance's REST API."""

    path: str
    weight: int  # Binance's request weight of one call
    budget: str = IP  # IP or UID
    host_setting: str = "base_url"  # the setting of its host's base URL
    method: str = "GET"

    def __post_init__(self) -> None:
        if self.budget not in (IP, UID) or self.host_setting not in HOST_SETTINGS or \
                self.weight < 0:
            raise ValueError(f"{self.method} {self.path}: an endpoint needs a weight >= 0, "
                             f"IP or UID, and a host setting of {HOST_SETTINGS}")
        DECLARED.append(self)

    @property
    def ip_weight(self) -> int:
        """What one call costs the IP's budget (0 for an endpoint limited by account)."""
        return self.weight if self.budget == IP else 0

    @property
    def route(self) -> str:
        """The simulator's key: the path of a GET, else "METHOD path"."""
        return self.path if self.method == "GET" else f"{self.method} {self.path}"


# the server's clock: every host keeps time with base_url's (papi has no clock endpoint)
TIME = Endpoint("/api/v3/time", 1)
