"""The cross account's metric tables (one place for names and HELP texts), and the samples an
account keeps from unchanged inputs (its values, its bars, its assets with their USDT values),
each with its exposition line: made here, reused by :func:`.cross.cross_families` while the
inputs stay the same."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from binance_margin_exporter.binance.cross import MarginAccount, TradeCoeff, UserAsset
from binance_margin_exporter.binance.fields import plus, times
from binance_margin_exporter.binance.prices import Prices
from binance_margin_exporter.collectors.tables import Lines, Table, gauge_lines
from binance_margin_exporter.web.exposition import Lined

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
    ("transfer_enabled", "binance_margin_transfer_enabled",
     "1 if transfers are enabled (transferEnabled, sent by older answers instead of the "
     "in/out pair)."),
)
ASSET_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("free", "binance_margin_asset_free", "Free amount of the asset (userAssets[].free)."),
    ("locked", "binance_margin_asset_locked",
     "Locked amount of the asset (userAssets[].locked)."),
    ("borrowed", "binance_margin_asset_borrowed",
     "Borrowed amount of the asset (userAssets[].borrowed)."),
    ("interest", "binance_margin_asset_interest",
     "Interest owed on the asset (userAssets[].interest)."),
    ("net_asset", "binance_margin_asset_net", "Net amount of the asset (userAssets[].netAsset)."),
)
THRESHOLDS: tuple[tuple[str, str], ...] = (
    ("normal", "normal_bar"),
    ("margin_call", "margin_call_bar"),
    ("force_liquidation", "force_liquidation_bar"),
)
MODES = {"MARGIN_1": "classic", "MARGIN_2": "pro"}
USDT_NAMES = ("binance_margin_asset_net_usdt", "binance_margin_asset_liability_usdt")


ACCOUNT_ATTRS = tuple(attr for attr, _, _ in (*ACCOUNT_GAUGES, *ACCOUNT_FLAGS))


def account_lines(gauges: Table, flags: Table, name: str,
                  account: MarginAccount) -> tuple[Lines, Lines]:
    return gauges.lines([([name], account)]), flags.lines([([name], account)])


def threshold_lines(family: str, name: str, coeff: TradeCoeff) -> tuple[Lined, ...]:
    return gauge_lines([family], ["account", "threshold"],
                       [([name, label], [getattr(coeff, attr)]) for label, attr in THRESHOLDS])[0]


def asset_part(table: Table, name: str, account: MarginAccount,
               shown: Callable[[MarginAccount], list[UserAsset]],
               prices: Prices | None,
               ) -> tuple[Lines, Lines, dict[str, float]]:
    """The samples of the assets shown, their values in USDT, and the prices used."""
    listed = shown(account)
    return (table.lines(([name, asset.asset], asset) for asset in listed),
            *usdt_lines(name, listed, prices))


def usdt_lines(name: str, assets: Sequence[UserAsset], prices: Prices | None,
               ) -> tuple[Lines, dict[str, float]]:
    """Each asset's net and debt in USDT (exact decimal products), and the prices used."""
    priced: dict[str, float] = {}
    rows = []
    for asset in assets:
        price = None if prices is None else prices.usdt(asset.asset)
        if price is not None:
            priced[asset.asset] = price
            rows.append(([name, asset.asset],
                         [times(asset.net_asset, price),
                          times(plus(asset.borrowed, asset.interest), price)]))
    return gauge_lines(USDT_NAMES, ["account", "asset"], rows), priced
