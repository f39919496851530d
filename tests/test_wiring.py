"""wiring.py and products.py: every product is built from the list and the accounts' settings;
a reload keeps what it can."""

from __future__ import annotations

import textwrap

import pytest
from prometheus_client.core import GaugeMetricFamily

from binance_margin_exporter.collectors.product import Build, Product
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.config import ConfigError, Setting
from binance_margin_exporter.config.schema import flag
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.wiring import account_config, build_exporter, load, warm_up
from tests.support.exporters import built_exporter, scrape_built


class Widgets(Product):
    """A product that exists only in this test: one entry, nothing else touched."""

    name = "widgets"
    types = ("cross",)
    settings = (Setting("widget_colour_blue", flag, False, "Paint the widgets blue."),)
    account_settings = (Setting("widgets", flag, False, "Count the account's widgets."),)

    def __init__(self) -> None:
        self.warmed: list[str] = []

    def reads(self, account, settings):
        return account.type in self.types and account.option("widgets")

    def part(self, account, client, build: Build):
        return (account.name, client)

    def collector(self, parts, build: Build):
        blue = build.settings.option("widget_colour_blue")

        class Collector:
            def start(self, scrape: Scrape):
                family = GaugeMetricFamily("binance_margin_widgets", "Widgets.",
                                           labels=["account", "blue"])
                for name, _ in parts:
                    family.add_metric([name, str(blue).lower()], 1.0)
                return lambda: [family]

        return Collector() if parts else None

    def warm_up(self, part):
        self.warmed.append(part[0])


def write(tmp_path, text: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


PLAIN = """
    usdt_values: false
    interest_rates: false
    risk_lists: false
    streams: false
    accounts:
      - {name: a, api_key: k, api_secret: s, ledger: false, isolated: false}
      - {name: b, api_key: k, api_secret: s, ledger: false}
"""
CONFIG = PLAIN.replace("isolated: false}", "isolated: false, widgets: true}") + \
    "    widget_colour_blue: true\n"


def test_a_product_is_one_entry_in_the_list(tmp_path):
    widgets = Widgets()
    products = (*PRODUCTS, widgets)
    settings = load(write(tmp_path, CONFIG), {}, products=products)
    with built_exporter(settings, products=products) as built:
        assert set(built.accounts[settings.accounts[0]].parts) == {"cross", "widgets"}
        assert set(built.accounts[settings.accounts[1]].parts) == {"cross", "isolated"}
        values = scrape_built(built, 0.6)
        assert values[("binance_margin_widgets", (("account", "a"), ("blue", "true")))] == 1.0
        assert not [k for k in values if k[0] == "binance_margin_widgets" and
                    dict(k[1])["account"] == "b"]
        warm_up(built)
        assert widgets.warmed == ["a"]
    # without the entry, its keys are unknown: the list is where settings come from
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, CONFIG), {})
    assert str(info.value).startswith("widget_colour_blue: unknown key")


def test_a_reload_keeps_unchanged_accounts_and_hosts(tmp_path):
    settings = load(write(tmp_path, PLAIN), {})
    with built_exporter(settings) as first:
        a, b = settings.accounts
        again = build_exporter(settings, first)
        assert again.upstreams == first.upstreams and again.executor is first.executor
        assert all(again.upstreams[k] is v for k, v in first.upstreams.items())  # same gates
        assert again.accounts[a] is first.accounts[a] and again.accounts[b] is first.accounts[b]
        rotated = load(write(tmp_path, PLAIN.replace(
            "{name: b, api_key: k,", "{name: b, api_key: k2,")), {})
        after = build_exporter(rotated, again)
        assert after.accounts[a] is first.accounts[a]
        assert after.accounts[rotated.accounts[1]] is not first.accounts[b]  # afresh
        other = load(write(tmp_path, PLAIN + "    cache_ttl_seconds: 3\n"), {})
        with built_exporter(other, after) as changed:
            assert changed.upstreams is not first.upstreams
            assert changed.accounts[other.accounts[0]] is not first.accounts[a]


def test_an_account_uses_the_host_of_the_products_that_read_it(tmp_path):
    settings = load(write(tmp_path, """
        papi_base_url: https://papi.example
        accounts:
          - {name: pm, api_key: k, api_secret: s, type: portfolio_margin}
          - {name: c, api_key: k, api_secret: s}
    """), {})
    with built_exporter(settings) as built:
        pm, cross = (built.accounts[a].client.upstream for a in settings.accounts)
        assert (pm.base_url, cross.base_url) == ("https://papi.example",
                                                 "https://api.binance.com")
        assert pm.clock is cross.clock  # the papi host keeps time with the api host
        assert list(built.upstreams) == [
            ("default", u) for u in ("https://api.binance.com", "https://papi.example",
                                     "https://fapi.binance.com", "https://dapi.binance.com")]


def test_a_reload_that_moves_the_api_host_moves_the_clock_of_the_hosts_kept(tmp_path):
    """A reload changes base_url but not papi_base_url: the papi host is kept (its bans and
    weight), and keeps time with the new api host, not the old one (whose /api/v3/time would
    be read and counted on gates no longer shown)."""
    config = """
        {base}
        papi_base_url: https://papi.example
        accounts:
          - {{name: pm, api_key: k, api_secret: s, type: portfolio_margin}}
    """
    with built_exporter(load(write(tmp_path, config.format(base="")), {})) as first:
        moved = load(write(tmp_path, config.format(base="base_url: https://api2.example")), {})
        with built_exporter(moved, first) as after:
            papi = after.upstreams[("default", "https://papi.example")]
            api = after.upstreams[("default", "https://api2.example")]
            assert papi is first.upstreams[("default", "https://papi.example")]  # kept
            assert papi.time_upstream is api and papi.clock is api.clock


def test_a_futures_account_reads_each_market_on_its_own_host(tmp_path):
    """host_settings: um on fapi_base_url, cm on dapi_base_url, both keeping time with the api
    host; the account's own client stays on base_url (its PM Pro-like /sapi calls)."""
    settings = load(write(tmp_path, """
        fapi_base_url: https://fapi.example
        dapi_base_url: https://dapi.example
        accounts:
          - {name: f, api_key: k, api_secret: s, type: futures, markets: [um, cm]}
          - {name: u, api_key: k, api_secret: s, type: futures}
    """), {})
    with built_exporter(settings) as built:
        f, u = (built.accounts[a] for a in settings.accounts)
        api = built.upstreams[("default", "https://api.binance.com")]
        hosts = {m.market: m.client.upstream for m in f.parts["positions"].markets}
        assert {m: h.base_url for m, h in hosts.items()} == {"um": "https://fapi.example",
                                                             "cm": "https://dapi.example"}
        assert hosts["um"].clock is hosts["cm"].clock is api.clock
        # one budget per host
        assert hosts["um"] is built.upstreams[("default", "https://fapi.example")]
        assert [m.market for m in u.parts["positions"].markets] == ["um"]  # the default
        assert f.client.upstream is api
        assert set(f.parts) == {"futures", "positions", "futures_ledger"}


def test_binance_base_url_replaces_the_futures_hosts_too(tmp_path):
    settings = load(write(tmp_path, """
        fapi_base_url: https://fapi.example
        accounts: [{name: f, api_key: k, api_secret: s, type: futures}]
    """), {"BINANCE_BASE_URL": "http://127.0.0.1:9"})
    assert settings.option("fapi_base_url") == settings.option("dapi_base_url") == \
        "http://127.0.0.1:9"


def test_markets_must_be_um_or_cm(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, """
            accounts: [{name: f, api_key: k, api_secret: s, type: futures, markets: [um, spot]}]
        """), {})
    assert str(info.value) == "accounts[0].markets[1]: expected um or cm"


def test_accounts_made_in_code_get_the_products_defaults():
    account = account_config("x", "k", "s", sub_accounts="all")
    assert (account.option("sub_accounts"), account.option("master"),
            account.option("isolated")) == ("all", True, True)
    with pytest.raises(TypeError):
        account_config("x", "k", "s", no_such_option=1)


def test_the_list_has_every_product_once_prices_last():
    names = [p.name for p in PRODUCTS]
    assert names == ["cross", "isolated", "sub_accounts", "portfolio", "portfolio_pro",
                     "futures", "positions", "risk_lists", "loans", "vip_loans",
                     "margin_ledger", "futures_ledger", "portfolio_ledger",
                     "margin_risk_stream", "portfolio_stream", "prices"]
    assert len({p.name for p in PRODUCTS}) == len(PRODUCTS)


def test_an_account_no_product_reads_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, "accounts: [{name: a, api_key: k, api_secret: s, master: false}]\n"),
             {})
    assert str(info.value) == ("accounts[0].master: false leaves nothing to read without "
                               "sub_accounts")


def test_markets_on_an_account_that_has_none_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, """
            accounts: [{name: p, api_key: k, api_secret: s, type: portfolio_margin,
                        markets: [cm]}]
        """), {})
    assert str(info.value).startswith("accounts[0].markets: only for type futures or "
                                      "portfolio_margin_pro")
    load(write(tmp_path, """
        accounts: [{name: p, api_key: k, api_secret: s, type: portfolio_margin_pro,
                    markets: [cm]}]
    """), {})  # fine
