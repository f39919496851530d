"""A simulated Binance that speaks the real protocol: the upstream of ``--demo`` and of the tests.

It serves ``GET /api/v3/time`` and the routes of the product modules its caller lists (the
product list's, ``products.SIMULATED``; each ``demo/<product>.py`` builds and owns its state
and its routes) on 127.0.0.1, and checks what Binance checks: the ``X-MBX-APIKEY`` header,
the signature (HMAC-SHA256 hex, or base64 Ed25519 / RSA with the registered public key),
``timestamp`` against ``recvWindow``, and the IP weight per minute (429, then 418 for a client
that keeps going).

One simulator may serve every host (the demo, most tests), or one of Binance's hosts alone
(``serves``: the path prefixes that host answers, as ``("/papi/",)`` for papi.binance.com; any
other path is a 404 there, ``/api/v3/time`` too): tests run a simulator per host, each with its
own weight counters, bans and faults, as Binance keeps them.

This module holds :class:`Simulator` (the products' states by name, its controls, the weight
accounting); ``python -m binance_margin_exporter.demo`` runs it alone; the HTTP side is
:mod:`.handler`, the key and signature checks :mod:`.checks`, and the faults tests inject
(through :meth:`Simulator.set_fault`; ``--demo`` never does) :mod:`.faults`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from binance_margin_exporter.binance import limits
from binance_margin_exporter.binance.endpoints import TIME
from binance_margin_exporter.demo.checks import check_keyed, check_signed
from binance_margin_exporter.demo.faults import Fault
from binance_margin_exporter.demo.handler import TIME_PATH, SimulatorServer
from binance_margin_exporter.demo.routes import Background, Route, Simulated

__all__ = ["TIME_PATH", "Fault", "Simulator"]  # tests and scripts import these from here

T = TypeVar("T")

# the weight counter a path counts on (Binance's hosts each count their own), and its limit
# a minute: the budgets binance/limits.py declares
budget_of = limits.budget_of


class Simulator:
    """The fake Binance over real HTTP on 127.0.0.1."""

    def __init__(self, products: Iterable[Simulated], *, host: str = "127.0.0.1",
                 port: int = 0, enforce_weight_limit: bool = True,
                 serves: tuple[str, ...] | None = None, **states: Any) -> None:
        """``products``: the simulated products' modules (the product list's, from
        :mod:`binance_margin_exporter.products`: ``SIMULATED``); ``states``: a test's own
        state of a product, by the name its module keeps it under (``account=``,
        ``subs=``); ``serves``: the path prefixes of the one host it stands for (None: every
        host)."""
        self.serves = serves
        # each product's state, by its name: built by its module unless given here
        self.states: dict[str, Any] = dict(states)
        # what the products serve (by path for a GET, else by "METHOD path")
        self.routes: dict[str, Route] = {}
        for product in products:
            self.routes.update(product.routes(self))
        self.enforce_weight_limit = enforce_weight_limit
        self.clock_skew_ms = 0  # server time = real time + skew
        self.weight_bonus = 0  # weight used by "others" on this IP, added to the header
        # the same for any budget ("api": a busy spot bot on the IP), by budget_of's names
        self.budget_bonus: Counter[str] = Counter()
        self.latency = 0.0  # seconds added to every signed request
        # Retry-After on the simulator's own 429 and 418 (False: the end only in the message)
        self.states_retry_after = True
        self.counts: Counter[str] = Counter()
        self.signatures: deque[str] = deque(maxlen=5000)  # recent ones, to check none leaks
        self._keys: dict[str, tuple[str, Any]] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        # Binance counts per IP: (client address, budget, minute) -> weight used
        self._weight: dict[tuple[str, str, int], int] = {}
        # and all the weight it counted since it started, by (client address, budget)
        self.spent: Counter[tuple[str, str]] = Counter()
        self._violations: Counter[str] = Counter()  # by client address
        self._banned_until: dict[str, float] = {}  # by client address
        self.sources: Counter[tuple[str, str]] = Counter()  # requests by (client address, path)
        self.source_bonus: Counter[str] = Counter()  # like weight_bonus, for one address
        self._server = SimulatorServer((host, port), self)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- the products' states ----------------------------------------------------------------

    def state(self, name: str, build: Callable[[], T]) -> T:
        """The product state kept under ``name`` (given, or ``build()``'s)."""
        if name not in self.states:
            self.states[name] = build()
        state: T = self.states[name]
        return state

    def __getattr__(self, name: str) -> Any:
        """A product's state by its name, for the tests: ``sim.account``, ``sim.streams``."""
        states = self.__dict__.get("states", {})
        if name in states:
            return states[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute or product state "
                             f"{name!r}")

    # -- control -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_hmac_key(self, api_key: str, secret: str) -> None:
        self._keys[api_key] = ("hmac", secret.encode())

    def add_public_key(self, api_key: str, pem: bytes) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        self._keys[api_key] = ("public", load_pem_public_key(pem))

    def set_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self._faults = [] if fault is None else [fault]

    def clear_faults(self) -> None:
        self.set_fault(None)

    def _background(self) -> list[Background]:
        return [state for state in self.states.values() if isinstance(state, Background)]

    def start(self) -> Simulator:
        for state in self._background():
            state.start(self._server.server_address[0])
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for state in self._background():
            state.stop()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol ------------------------------------------------------------------------

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path in fault.paths:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def answers(self, path: str) -> bool:
        """Is ``path`` this host's? (Every path is, for a simulator of every host.)"""
        return self.serves is None or path.startswith(self.serves)

    def weight_of(self, path: str) -> int:
        route = self.routes.get(path)
        return TIME.weight if route is None else route.weight

    def _spend(self, path: str, source: str = "127.0.0.1",
               route: str | None = None) -> tuple[int, int | None]:
        """Count the request's weight against its client address (Binance counts per IP;
        ``route``: its key in :attr:`routes`, if not the path); return (used weight,
        seconds to wait if over: negative for a ban)."""
        route = route or path
        now = self.server_ms()
        minute = now // 60000
        budget = budget_of(path)
        sapi = budget == "sapi"
        # "others" on this IP use /sapi weight (and whatever budget_bonus says)
        bonus = (self.weight_bonus + self.source_bonus[source] if sapi else 0) + \
            self.budget_bonus[budget]
        limit = limits.BUDGETS[budget].limit
        if not self.enforce_weight_limit:  # benchmarks: no accounting, each request alone
            return self.weight_of(route) + bonus, None
        with self._lock:
            banned_until = self._banned_until.get(source, 0.0)
            if time.time() < banned_until:
                self._violations[source] += 1
                return limit, -int(banned_until - time.time()) - 1
            weight = self.weight_of(route)
            self.spent[(source, budget)] += weight
            used = self._weight.get((source, budget, minute), 0) + weight
            self._weight = {k: v for k, v in self._weight.items() if k[2] == minute}
            self._weight[(source, budget, minute)] = used
            used += bonus
            if used > limit:
                self._violations[source] += 1
                if self._violations[source] > 3:
                    self._banned_until[source] = time.time() + 120
                    return used, -120
                return used, (60000 - now % 60000) // 1000 + 1
            self._violations[source] = 0
        return used, None

    def _check_keyed(self, query: str, headers: Any) -> tuple[int, int, str] | None:
        """MARKET_DATA: see :func:`.checks.check_keyed`."""
        return check_keyed(self._keys, self.server_ms, query, headers)

    def _check_signed(self, query: str, headers: Any) -> tuple[int, int, str] | None:
        """None if the request is properly signed and timely, else (status, code, msg)."""
        return check_signed(self._keys, self.server_ms, query, headers)


if __name__ == "__main__":  # the old spelling, kept one release: python -m ...demo
    import runpy
    import sys

    print("python -m binance_margin_exporter.demo.simulator is deprecated: use "
          "python -m binance_margin_exporter.demo", file=sys.stderr)
    runpy.run_module("binance_margin_exporter.demo", run_name="__main__", alter_sys=True)
