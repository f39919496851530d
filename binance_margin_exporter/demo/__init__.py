"""``--demo``: a simulated Binance on 127.0.0.1 and accounts that use it, no keys needed.

The exporter talks to the simulator through the real client (signatures, clock sync, limits),
so the demo runs the same code path as production.

- :mod:`.simulator` — the HTTP server: signatures, timestamps, weights, faults for the tests;
  :mod:`.handler` its HTTP side, :mod:`.checks` the key and signature checks, :mod:`.faults`
  what tests inject, :mod:`.routes` what a simulated product is, :mod:`.numbers` amounts as
  Binance writes them.
- one module per Binance product, beside the client's, each building its state and its
  ``routes(host)`` (and, for ``--demo``, its optional ``demo(host)``: the demo accounts'
  settings it needs, options such as a stream host): :mod:`.cross`, :mod:`.isolated`,
  :mod:`.sub_accounts`, :mod:`.portfolio`, :mod:`.portfolio_pro`, :mod:`.futures`,
  :mod:`.positions`, :mod:`.risk_lists`, :mod:`.loans`, :mod:`.ledger`, :mod:`.streams`,
  :mod:`.prices` (a test holds this list to the product list); :mod:`.interest`'s rates are
  served by the products that read them.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from binance_margin_exporter.config import Options, Settings, host_keys
from binance_margin_exporter.demo.routes import Demo

if TYPE_CHECKING:
    from binance_margin_exporter.demo.simulator import Simulator

log = logging.getLogger(__name__)


def start_demo(settings: Settings) -> tuple[Settings, Simulator]:
    """Start the simulator of the product list; return settings pointing at it, with the
    accounts its products' ``demo(host)`` ask for (today: ``demo``, a master key with its
    isolated pairs and three sub-accounts, one without margin; ``demo-pm``, a Portfolio
    Margin account whose BTCUSDT long drifts towards its liquidation price and back every half
    hour; ``demo-futures``, a futures account on both markets; ``demo``'s crypto loans: a
    flexible one whose LTV drifts over its margin-call bar and back every half hour)."""
    # imported here: products.py imports the product modules of this package
    from binance_margin_exporter.demo.simulator import Simulator
    from binance_margin_exporter.products import PRODUCTS, SIMULATED
    from binance_margin_exporter.wiring import account_config

    if settings.accounts:
        log.warning("--demo: the %d account(s) of the configuration are ignored",
                    len(settings.accounts))
    simulator = Simulator(SIMULATED)
    simulator.start()
    accounts, options = demo_of(simulator, SIMULATED)
    configs = []
    for name, account in accounts.items():
        api_key, secret = secrets.token_hex(32), secrets.token_hex(32)
        simulator.add_hmac_key(api_key, secret)
        configs.append(account_config(name, api_key, secret, source="demo", **account))
    log.warning("DEMO MODE: the accounts %s are simulated (a fake Binance on %s); no real data",
                ", ".join(repr(name) for name in accounts), simulator.base_url)
    demo = dataclasses.replace(
        settings,
        base_url=simulator.base_url,
        options=Options.of({**dict(settings.options.items), **{
            key: simulator.base_url for product in PRODUCTS for key in host_keys(product)},
            **options}),
        accounts=tuple(configs),
    )
    return demo, simulator


def demo_of(simulator: Simulator, products: Iterable[Any]) -> tuple[
        dict[str, dict[str, Any]], dict[str, Any]]:
    """What the products' ``demo(host)`` ask for: the demo accounts' settings by name, in the
    order the products first name them (one account's settings merged across products), and
    the exporter options."""
    accounts: dict[str, dict[str, Any]] = {}
    options: dict[str, Any] = {}
    for product in products:
        demo = getattr(product, "demo", None)  # optional: most products need nothing
        if demo is None:
            continue
        wanted: Demo = demo(simulator)
        for name, account in wanted.accounts.items():
            accounts.setdefault(name, {}).update(account)
        options.update(wanted.options)
    return accounts, options
