"""The simulated cross margin account: ``GET /sapi/v1/margin/account`` and ``tradeCoeff``.

A :class:`SimulatedAccount` has a few hundred assets, a dozen of them held or borrowed, prices
that drift, and a margin level that now and then crosses the margin-call bar, all consistent
(``netAsset = free + locked - borrowed - interest``, margin level = assets / liabilities).
Every number is a JSON string with 8 decimals, as Binance sends them.
"""

from __future__ import annotations

import json
import math
import random
import string
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance import cross
from binance_margin_exporter.demo import interest
from binance_margin_exporter.demo.numbers import BTC_USDT, q8, s8
from binance_margin_exporter.demo.routes import Demo, Host, Route, route_of

# The simulator's own copies of the paths: a wrong path in the client must not hide behind a
# shared constant.
ACCOUNT_PATH = cross.ACCOUNT.path
TRADE_COEFF_PATH = cross.TRADE_COEFF.path
STATE = "account"  # the simulator's ``account``: a test may give its own

# Assets a Binance margin account lists; the rest of the few hundred are made-up tickers.
KNOWN_ASSETS = (
    "BTC ETH USDT BNB SOL XRP ADA DOGE TRX DOT LINK MATIC LTC BCH AVAX UNI ATOM XLM ETC FIL "
    "APT ARB OP NEAR ICP VET HBAR ALGO QNT AAVE GRT EGLD SAND MANA AXS THETA FTM EOS XTZ CHZ "
    "FDUSD USDC TUSD DAI PEPE SHIB WIF BONK INJ SUI SEI TIA RUNE KAVA CRV MKR SNX COMP YFI ZEC"
).split()

# (asset, price in BTC, free, locked) of the assets the demo account holds
HOLDINGS = (
    ("BTC", "1", "0.85", "0.05"),
    ("ETH", "0.0385", "12.5", "0"),
    ("USDT", "0.0000106", "15000", "2500"),
    ("BNB", "0.0095", "40", "0"),
    ("SOL", "0.0022", "300", "25"),
    ("XRP", "0.0000081", "20000", "0"),
    ("ADA", "0.0000068", "35000", "0"),
    ("DOGE", "0.0000021", "150000", "0"),
    ("LINK", "0.00022", "800", "0"),
    ("DOT", "0.000075", "1500", "0"),
    ("FDUSD", "0.0000106", "5000", "0"),
    ("AVAX", "0.00038", "400", "0"),
    ("TRY", "0.000000308", "50000", "0"),  # fiat: the ticker quotes it as USDTTRY
    ("XDEL", "0.00000001", "1000", "0"),  # delisted: no ticker route to USDT at all
)
# asset -> share of the liability: what the demo account borrows
BORROWS = {"USDT": Decimal("0.55"), "ETH": Decimal("0.25"), "BNB": Decimal("0.12"),
           "SOL": Decimal("0.08")}


def asset_names(count: int, seed: int = 7) -> list[str]:
    """The demo's holdings first, then well-known tickers, then made-up ones."""
    held = [h[0] for h in HOLDINGS]
    names = [*held, *(a for a in KNOWN_ASSETS if a not in held)][:count]
    rng = random.Random(seed)
    seen = set(names)
    while len(names) < count:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 6)))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


class SimulatedAccount:
    """A cross margin account whose numbers move plausibly and always add up."""

    def __init__(
        self,
        n_assets: int = 300,
        n_active: int = len(HOLDINGS),
        *,
        seed: int = 7,
        drift: bool = True,
        account_type: str = "MARGIN_1",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.account_type = account_type
        self.drift = drift
        self._wall = wall
        self._started = int(wall())
        self._lock = threading.Lock()
        self._cache: tuple[Any, bytes] | None = None
        self.target_level: Decimal | None = None if drift else Decimal("2.5")
        self.coeff = {"normalBar": "1.5", "marginCallBar": "1.3", "forceLiquidationBar": "1.1"}
        names = asset_names(max(n_assets, len(HOLDINGS)), seed)
        rng = random.Random(seed)
        held = {a: (Decimal(p), Decimal(f), Decimal(lk)) for a, p, f, lk in HOLDINGS}
        self.assets: list[tuple[str, Decimal, Decimal, Decimal]] = []  # name, price, free, locked
        for i, name in enumerate(names):
            if name in held and i < n_active:
                self.assets.append((name, *held[name]))
            elif i < n_active:  # more active assets than the demo's holdings (benchmarks)
                price = Decimal(str(round(rng.uniform(1e-6, 1e-3), 10)))
                self.assets.append((name, price, q8(Decimal(rng.uniform(1, 1000))), Decimal(0)))
            else:
                self.assets.append((name, Decimal(1), Decimal(0), Decimal(0)))
        self._phases = [rng.uniform(0, 2 * math.pi) for _ in self.assets]
        self.borrows = {a: w for a, w in BORROWS.items() if a in dict.fromkeys(names[:n_active])}
        if not self.borrows and n_active:
            self.borrows = {self.assets[0][0]: Decimal(1)}

    def set_margin_level(self, level: float | None) -> None:
        """Hold the margin level at ``level`` (None: back to the drifting default)."""
        with self._lock:
            self.target_level = None if level is None else Decimal(str(level))
            self._cache = None

    def _tick(self) -> int:
        return int(self._wall()) if self.drift else 0

    def _level_now(self, t: float) -> Decimal:
        if self.target_level is not None:
            return self.target_level
        # between about 1.25 and 3.15 over half an hour: for about 3 minutes of it under the
        # 1.3 bar, where the demo's risk stream sends MARGIN_CALL
        return Decimal(str(round(2.2 + 0.95 * math.sin(2 * math.pi * t / 1800), 6)))

    def _prices(self, t: float) -> list[Decimal]:
        """Each asset's price in BTC at ``t`` seconds: within 3 % of its base price."""
        prices = []
        for (_name, price, _f, _l), phase in zip(self.assets, self._phases, strict=True):
            factor = Decimal(str(round(1 + 0.03 * math.sin(2 * math.pi * t / 600 + phase), 6)))
            prices.append(price if not self.drift else price * factor)
        return prices

    def prices_btc(self) -> dict[str, Decimal]:
        """The current price in BTC of every asset the account holds (for the ticker)."""
        t = self._tick() - self._started if self.drift else 0.0
        return {name: price for (name, _p, free, locked), price
                in zip(self.assets, self._prices(t), strict=True) if free or locked}

    def _start_liability(self) -> Decimal:
        """The liability in BTC at the start (base prices, the start's level)."""
        total = sum(((f + lk) * p for (_n, p, f, lk) in self.assets), Decimal(0))
        return total / self._level_now(0.0) if self.borrows else Decimal(0)

    def snapshot(self) -> dict[str, Any]:
        tick = self._tick()
        t = tick - self._started if self.drift else 0.0
        prices = self._prices(t)
        total_asset = sum(
            ((f + lk) * p for (_n, _p, f, lk), p in zip(self.assets, prices, strict=True)),
            Decimal(0),
        )
        level = self._level_now(t)
        liability_btc = total_asset / level if self.borrows else Decimal(0)
        # interest: 0.02 % a day, as on a typical USDT loan, starting with an hour's worth, on
        # the loan as it was at the start: it only grows, as real interest does, while the
        # debt itself follows the drifting level
        days = (Decimal(int(t // 60)) + 60) / 1440 if self.drift else Decimal("0.5")
        start_liability = self._start_liability()
        user_assets = []
        for (name, base_price, free, locked), price in zip(self.assets, prices, strict=True):
            share = self.borrows.get(name)
            borrowed = interest = Decimal(0)
            if share is not None and price > 0:
                debt = liability_btc * share / price  # borrowed + interest, in the asset
                principal = start_liability * share / base_price
                interest = q8(principal * Decimal("0.0002") * days)
                borrowed = q8(debt) - interest
            net = free + locked - borrowed - interest
            user_assets.append((name, free, locked, borrowed, interest, net, price))
        asset_btc = q8(sum(((f + lk) * p for _n, f, lk, _b, _i, _ne, p in user_assets),
                           Decimal(0)))
        liab_btc = q8(sum(((b + i) * p for _n, _f, _l, b, i, _ne, p in user_assets), Decimal(0)))
        margin_level = q8(asset_btc / liab_btc) if liab_btc > 0 else Decimal(999)
        return {
            "created": True,
            "borrowEnabled": True,
            "marginLevel": s8(margin_level),
            "collateralMarginLevel": s8(margin_level * Decimal("0.97")),
            "totalAssetOfBtc": s8(asset_btc),
            "totalLiabilityOfBtc": s8(liab_btc),
            "totalNetAssetOfBtc": s8(asset_btc - liab_btc),
            "TotalCollateralValueInUSDT": s8(asset_btc * BTC_USDT * Decimal("0.95")),
            "totalOpenOrderLossInUSDT": "0.00000000",
            "tradeEnabled": True,
            "transferInEnabled": True,
            "transferOutEnabled": True,
            "accountType": self.account_type,
            "userAssets": [
                {"asset": n, "borrowed": s8(b), "free": s8(f), "interest": s8(i),
                 "locked": s8(lk), "netAsset": s8(ne)}
                for n, f, lk, b, i, ne, _p in user_assets
            ],
        }

    def body(self) -> bytes:
        with self._lock:
            tick = (self._tick(), self.target_level)
            if self._cache is None or self._cache[0] != tick:
                self._cache = (tick, json.dumps(self.snapshot(), separators=(",", ":")).encode())
            return self._cache[1]


def state(host: Host) -> SimulatedAccount:
    """The simulated cross margin account (the isolated pairs, the prices and the streams read
    it too)."""
    return host.state(STATE, SimulatedAccount)


def routes(host: Host) -> dict[str, Route]:
    """The signed endpoints this product serves: path -> (weight, answer)."""
    account = state(host)
    return {
        **dict((
            route_of(cross.ACCOUNT, lambda params: account.body()),
            route_of(cross.TRADE_COEFF, lambda params: json.dumps(account.coeff).encode()),
        )),
        **interest.routes(),
    }


def demo(host: Host) -> Demo:
    """``--demo``'s cross margin account, read with its own (master) key."""
    return Demo(accounts={"demo": {}})
