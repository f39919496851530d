"""``--demo``: a simulated Binance on 127.0.0.1 and an account that uses it, no keys needed.

The exporter talks to the simulator through the real client (signatures, clock sync, limits),
so the demo runs the same code path as production.

- :mod:`.simulator` — the HTTP server: signatures, timestamps, weights, faults for the tests.
- one module per Binance product, beside the client's (:mod:`.cross`, :mod:`.isolated`,
  :mod:`.sub_accounts`, :mod:`.portfolio`, :mod:`.portfolio_pro`, :mod:`.futures`,
  :mod:`.positions`, :mod:`.risk_lists`, :mod:`.prices`), each with
  ``routes(simulator)``; the simulator serves those of the product list, and
  :mod:`.interest`'s rates; :mod:`.streams` also serves the risk data streams over WebSocket.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from typing import TYPE_CHECKING

from binance_margin_exporter.config import Options, Settings, host_keys

if TYPE_CHECKING:
    from binance_margin_exporter.demo.simulator import Simulator

log = logging.getLogger(__name__)

DEMO_ACCOUNT = "demo"
DEMO_PM_ACCOUNT = "demo-pm"
DEMO_FUTURES_ACCOUNT = "demo-futures"


def start_demo(settings: Settings) -> tuple[Settings, Simulator]:
    """Start the simulator; return settings pointing at it: ``demo``, a master key with its
    isolated pairs and three sub-accounts (one without margin), ``demo-pm``, a Portfolio
    Margin account with UM and CM positions (its BTCUSDT long drifts towards its liquidation
    price and back every half hour), and ``demo-futures``, a futures account on both markets."""
    # imported here: ``python -m binance_margin_exporter.demo.simulator`` imports this package
    # first, and must find its module not imported yet
    from binance_margin_exporter.demo.cross import SimulatedAccount
    from binance_margin_exporter.demo.simulator import Simulator
    from binance_margin_exporter.products import PRODUCTS
    from binance_margin_exporter.wiring import account_config

    if settings.accounts:
        log.warning("--demo: the %d account(s) of the configuration are ignored",
                    len(settings.accounts))
    simulator = Simulator(SimulatedAccount())
    keys = [(secrets.token_hex(32), secrets.token_hex(32)) for _ in range(3)]
    for api_key, secret in keys:
        simulator.add_hmac_key(api_key, secret)
    simulator.start()
    simulator.streams.watch(simulator)
    log.warning(
        "DEMO MODE: the accounts %r (with its sub-accounts), %r and %r are simulated (a fake "
        "Binance on %s); no real data", DEMO_ACCOUNT, DEMO_PM_ACCOUNT, DEMO_FUTURES_ACCOUNT,
        simulator.base_url,
    )
    (master_key, master_secret), (pm_key, pm_secret), (fut_key, fut_secret) = keys
    demo = dataclasses.replace(
        settings,
        base_url=simulator.base_url,
        options=Options.of({**dict(settings.options.items), **{
            key: simulator.base_url for product in PRODUCTS for key in host_keys(product)},
            "margin_stream_url": simulator.streams.url,
            "papi_stream_url": f"{simulator.streams.url}/pm"}),
        accounts=(
            account_config(DEMO_ACCOUNT, master_key, master_secret, source="demo",
                           sub_accounts="all"),
            account_config(DEMO_PM_ACCOUNT, pm_key, pm_secret, source="demo",
                           type="portfolio_margin"),
            account_config(DEMO_FUTURES_ACCOUNT, fut_key, fut_secret, source="demo",
                           type="futures", markets=("um", "cm")),
        ),
    )
    return demo, simulator
