"""From account models to metric families. Never touches HTTP: it calls an :class:`AccountSource`.

Example output for one account (``include_zero_assets: false``)::

    # HELP binance_margin_up 1 if the last fetch of GET /sapi/v1/margin/account succeeded, else 0.
    # TYPE binance_margin_up gauge
    binance_margin_up{account="main"} 1.0
    # HELP binance_margin_level Margin level (marginLevel); 999 means no liability.
    # TYPE binance_margin_level gauge
    binance_margin_level{account="main"} 11.64405625
    ...
    binance_margin_asset_borrowed{account="main",asset="BTC"} 0.1

Each scrape builds fresh families (no state carries over, so a sold asset disappears). An account
is fetched at most once per ``cache_ttl_seconds``; scrapes that arrive while a fetch is under way
wait for it and share its result (singleflight). A failed fetch yields ``up 0``, a counted error
and no account values at all, never old ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.binance import REASONS, MarginAccount, TradeCoeff, UpstreamError, UserAsset
from exporter.exposition import Family, render, to_metric

log = logging.getLogger(__name__)

THRESHOLDS_REFRESH_SECONDS = 300.0
THRESHOLDS_RETRY_SECONDS = 60.0
ERROR_REASONS = (*REASONS, "internal")

# model field -> (metric name, HELP). One table, so names and HELP texts live in one place.
ACCOUNT_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("margin_level", "binance_margin_level",
     "Margin level (marginLevel); 999 means no liability."),
    ("collateral_margin_level", "binance_margin_collateral_level",
     "Collateral margin level (collateralMarginLevel)."),
    ("total_asset_btc", "binance_margin_total_asset_btc",
     "Total assets in BTC (totalAssetOfBtc)."),
    ("total_liability_btc", "binance_margin_total_liability_btc",
     "Total liabilities in BTC (totalLiabilityOfBtc)."),
    ("total_net_asset_btc", "binance_margin_total_net_asset_btc",
     "Total net assets in BTC (totalNetAssetOfBtc)."),
    ("total_collateral_value_usdt", "binance_margin_total_collateral_value_usdt",
     "Total collateral value in USDT (TotalCollateralValueInUSDT)."),
    ("total_open_order_loss_usdt", "binance_margin_total_open_order_loss_usdt",
     "Total open order loss in USDT (totalOpenOrderLossInUSDT)."),
)
ACCOUNT_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("created", "binance_margin_created", "1 if the margin account exists (created)."),
    ("trade_enabled", "binance_margin_trade_enabled", "1 if trading is enabled (tradeEnabled)."),
    ("borrow_enabled", "binance_margin_borrow_enabled",
     "1 if borrowing is enabled (borrowEnabled)."),
    ("transfer_in_enabled", "binance_margin_transfer_in_enabled",
     "1 if transfers into the account are enabled (transferInEnabled)."),
    ("transfer_out_enabled", "binance_margin_transfer_out_enabled",
     "1 if transfers out of the account are enabled (transferOutEnabled)."),
)
# UserAsset field index -> (metric name, HELP)
ASSET_GAUGES: tuple[tuple[int, str, str], ...] = (
    (1, "binance_margin_asset_free", "Free amount of the asset (userAssets[].free)."),
    (2, "binance_margin_asset_locked", "Locked amount of the asset (userAssets[].locked)."),
    (3, "binance_margin_asset_borrowed", "Borrowed amount of the asset (userAssets[].borrowed)."),
    (4, "binance_margin_asset_interest",
     "Interest owed on the asset (userAssets[].interest)."),
    (5, "binance_margin_asset_net", "Net amount of the asset (userAssets[].netAsset)."),
)
THRESHOLDS: tuple[tuple[str, str], ...] = (
    ("normal", "normal_bar"),
    ("margin_call", "margin_call_bar"),
    ("force_liquidation", "force_liquidation_bar"),
)
MODES = {"MARGIN_1": "classic", "MARGIN_2": "pro"}


class AccountSource(Protocol):
    """What the collector needs from a Binance client."""

    last_used_weight: int | None

    def get_account(self) -> MarginAccount: ...

    def get_trade_coeff(self) -> TradeCoeff: ...

    def backoff_until(self) -> float: ...


@dataclass(frozen=True, slots=True)
class FetchResult:
    account: MarginAccount | None
    error: UpstreamError | None
    started: float  # monotonic time the fetch began: the cache age counts from here
    duration: float


class AccountScraper:
    """One account: a fetch on demand, cached for ``ttl`` seconds, shared by concurrent callers."""

    def __init__(
        self,
        name: str,
        source: AccountSource,
        *,
        ttl: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.source = source
        self.ttl = ttl
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._result: FetchResult | None = None
        self._inflight: Future[FetchResult] | None = None
        self.errors = dict.fromkeys(ERROR_REASONS, 0)
        self.last_success: float | None = None
        self.thresholds: TradeCoeff | None = None
        self._thresholds_due = 0.0

    def get(self) -> FetchResult:
        with self._lock:
            result = self._result
            if result is not None and self._monotonic() - result.started < self.ttl:
                return result
            future = self._inflight
            leader = future is None
            if leader:
                future = self._inflight = Future()
        assert future is not None
        if not leader:
            return future.result()
        try:
            result = self._fetch()
        except BaseException as exc:  # KeyboardInterrupt and the like: release the waiters
            with self._lock:
                self._inflight = None
            future.set_exception(exc)
            raise
        with self._lock:
            self._result = result
            self._inflight = None
        future.set_result(result)
        return result

    def _fetch(self) -> FetchResult:
        started = self._monotonic()
        account: MarginAccount | None = None
        error: UpstreamError | None = None
        try:
            account = self.source.get_account()
        except UpstreamError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a bug must cost one scrape, not the exporter
            error = UpstreamError("internal", f"unexpected {type(exc).__name__} while fetching")
            log.error("account %s: %s (please report this)", self.name, error)
        duration = self._monotonic() - started
        with self._lock:
            if error is None:
                self.last_success = self._wall()
            else:
                self.errors[error.reason] = self.errors.get(error.reason, 0) + 1
        if error is not None and error.reason != "internal":
            if error.sent:
                log.warning("account %s: fetch failed (%s): %s", self.name, error.reason, error)
            else:
                log.debug("account %s: %s", self.name, error)
        if account is not None:
            self.refresh_thresholds()
        return FetchResult(account, error, started, duration)

    def refresh_thresholds(self) -> None:
        """Fetch the margin bars if they are due (at start, then every 5 minutes)."""
        now = self._monotonic()
        with self._lock:
            if now < self._thresholds_due:
                return
            self._thresholds_due = now + THRESHOLDS_REFRESH_SECONDS
        try:
            self.thresholds = self.source.get_trade_coeff()
        except UpstreamError as exc:
            # Thresholds are a nicety: their failure never makes the account down.
            self._thresholds_due = now + THRESHOLDS_RETRY_SECONDS
            log.warning("account %s: margin thresholds (tradeCoeff) unavailable: %s",
                        self.name, exc)


class MarginCollector:
    """Builds the families for all accounts; also a ``prometheus_client`` collector."""

    def __init__(
        self,
        scrapers: Sequence[AccountScraper],
        *,
        include_zero_assets: bool = False,
        assets: Sequence[str] | None = None,
        version: str = __version__,
    ) -> None:
        self.scrapers = tuple(scrapers)
        self.include_zero_assets = include_zero_assets
        self.assets = frozenset(assets) if assets else None
        self.version = version
        self._pool = (
            ThreadPoolExecutor(max_workers=min(len(self.scrapers), 128),
                               thread_name_prefix="fetch")
            if len(self.scrapers) > 1 else None
        )

    # -- prometheus_client Collector protocol ---------------------------------------------

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield to_metric(family)

    def describe(self) -> list[Metric]:
        return []  # no fetch at registration time

    # -- the fast path --------------------------------------------------------------------

    def render(self) -> bytes:
        return render(self.families())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def fetch_all(self) -> list[FetchResult]:
        if self._pool is None:
            return [s.get() for s in self.scrapers]
        return list(self._pool.map(AccountScraper.get, self.scrapers))

    def _assets(self, account: MarginAccount) -> Sequence[UserAsset]:
        """The assets to show: non-zero ones by default, or all, or the allow-list's."""
        if self.assets is None and not self.include_zero_assets:
            return account.assets
        zeros = [UserAsset(name, 0.0, 0.0, 0.0, 0.0, 0.0) for name in account.zero_assets
                 if self.assets is None or name in self.assets]
        held = [a for a in account.assets if self.assets is None or a.asset in self.assets]
        return held + zeros

    def families(self) -> list[Family]:
        results = self.fetch_all()
        acc_l, asset_l = ("account",), ("account", "asset")
        up = Family("binance_margin_up", "gauge",
                    "1 if the last fetch of GET /sapi/v1/margin/account succeeded, else 0.", acc_l)
        gauges = [Family(name, "gauge", help_, acc_l) for _, name, help_ in ACCOUNT_GAUGES]
        flags = [Family(name, "gauge", help_, acc_l) for _, name, help_ in ACCOUNT_FLAGS]
        info = Family("binance_margin_account_info", "gauge",
                      "Account type (accountType: MARGIN_1 classic, MARGIN_2 pro); always 1.",
                      ("account", "account_type", "mode"))
        thresholds = Family(
            "binance_margin_level_threshold", "gauge",
            "This account's margin level bars (GET /sapi/v1/margin/tradeCoeff: normalBar, "
            "marginCallBar, forceLiquidationBar).", ("account", "threshold"))
        asset_families = [Family(name, "gauge", help_, asset_l, repeats=True)
                          for _, name, help_ in ASSET_GAUGES]
        duration = Family("binance_margin_scrape_duration_seconds", "gauge",
                          "Duration of the last account fetch from Binance.", acc_l)
        errors = Family("binance_margin_scrape_errors_total", "counter",
                        "Failed account fetches, by reason.", ("account", "reason"))
        last_ok = Family("binance_margin_last_success_timestamp_seconds", "gauge",
                         "Unix time of the last successful account fetch.", acc_l)
        backoff = Family("binance_margin_backoff_until_timestamp_seconds", "gauge",
                         "Unix time until which no request is sent for this account (rate limit, "
                         "ban, weight near the limit, or rejected credentials); 0 when none.",
                         acc_l)
        weight = Family("binance_margin_api_ip_weight_used_1m", "gauge",
                        "IP request weight used this minute, as last reported by Binance "
                        "(X-SAPI-USED-IP-WEIGHT-1M; the limit is 12000).", acc_l)

        for scraper, result in zip(self.scrapers, results, strict=True):
            name = scraper.name
            key = (name,)
            account = result.account
            up.add(key, 0.0 if account is None else 1.0)
            if account is not None:
                for (attr, _, _), family in zip(ACCOUNT_GAUGES, gauges, strict=True):
                    value = getattr(account, attr)
                    if value is not None:
                        family.add(key, value)
                for (attr, _, _), family in zip(ACCOUNT_FLAGS, flags, strict=True):
                    flag = getattr(account, attr)
                    if flag is not None:
                        family.add(key, 1.0 if flag else 0.0)
                if account.account_type is not None:
                    mode = MODES.get(account.account_type, "unknown")
                    info.add((name, account.account_type, mode), 1.0)
                kept = self._assets(account)
                keys = [(name, a[0]) for a in kept]
                for (index, _, _), family in zip(ASSET_GAUGES, asset_families, strict=True):
                    if family.keys:  # a second account: each family gets a list of its own
                        family.keys = family.keys + keys
                    else:  # the first: all five share ``keys``, escaped once by the renderer
                        family.keys = keys
                    family.values.extend([a[index] for a in kept])
            coeff = scraper.thresholds
            if coeff is not None:
                for label, attr in THRESHOLDS:
                    thresholds.add((name, label), getattr(coeff, attr))
            duration.add(key, result.duration)
            for reason in ERROR_REASONS:
                errors.add((name, reason), float(scraper.errors[reason]))
            if scraper.last_success is not None:
                last_ok.add(key, scraper.last_success)
            backoff.add(key, scraper.source.backoff_until())
            used = scraper.source.last_used_weight
            if used is not None:
                weight.add(key, float(used))

        build = Family("binance_margin_exporter_build_info", "gauge",
                       "Version of binance-margin-exporter; always 1.", ("version",),
                       [(self.version,)], [1.0])
        ordered = [up, *gauges, *flags, info, thresholds, *asset_families, duration, errors,
                   last_ok, backoff, weight, build]
        return [f for f in ordered if f.values]
