"""``--demo``: a simulated Binance on 127.0.0.1 and an account that uses it, no keys needed.

The exporter talks to the simulator through the real client (signatures, clock sync, limits),
so the demo runs the same code path as production.

- :mod:`.simulator` — the HTTP server: signatures, timestamps, weights, faults for the tests.
- one module per Binance product, beside the client's: :mod:`.cross`.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from typing import TYPE_CHECKING

from binance_margin_exporter.config import AccountConfig, Settings

if TYPE_CHECKING:
    from binance_margin_exporter.demo.simulator import Simulator

log = logging.getLogger(__name__)

DEMO_ACCOUNT = "demo"


def start_demo(settings: Settings) -> tuple[Settings, Simulator]:
    """Start the simulator; return settings pointing one account named ``demo`` at it."""
    # imported here: ``python -m binance_margin_exporter.demo.simulator`` imports this package
    # first, and must find its module not imported yet
    from binance_margin_exporter.demo.cross import SimulatedAccount
    from binance_margin_exporter.demo.simulator import Simulator

    if settings.accounts:
        log.warning("--demo: the %d account(s) of the configuration are ignored",
                    len(settings.accounts))
    api_key = secrets.token_hex(32)
    secret = secrets.token_hex(32)
    simulator = Simulator(SimulatedAccount())
    simulator.add_hmac_key(api_key, secret)
    simulator.start()
    log.warning(
        "DEMO MODE: the account %r is simulated (a fake Binance on %s); no real data",
        DEMO_ACCOUNT, simulator.base_url,
    )
    demo = dataclasses.replace(
        settings,
        base_url=simulator.base_url,
        accounts=(AccountConfig(DEMO_ACCOUNT, api_key, secret, source="demo"),),
    )
    return demo, simulator
