"""The simulated accounts behave like real ones."""

from __future__ import annotations

from tests.support.exporters import built_exporter


def test_the_demo_accounts_interest_only_grows():
    """Real interest never falls; the demo's did, as its margin level drifted back up."""
    import json

    from binance_margin_exporter.demo.cross import SimulatedAccount

    now = [1_700_000_000.0]
    account = SimulatedAccount(30, 12, wall=lambda: now[0])
    seen: dict[str, float] = {}
    for _ in range(40):  # 40 steps of 3 minutes: through a whole swing of the level
        for asset in json.loads(account.body())["userAssets"]:
            interest = float(asset["interest"])
            assert interest >= seen.get(asset["asset"], 0.0), asset["asset"]
            seen[asset["asset"]] = interest
        now[0] += 180
    assert max(seen.values()) > 0


def test_the_demo_pm_long_drifts_into_the_liquidation_alert_and_out():
    """Its distance to liquidation swings between about 3 % and 29 % every half hour."""
    import json

    from binance_margin_exporter.demo.positions import SimulatedPositions

    now = [1_700_000_000.0]
    positions = SimulatedPositions(wall=lambda: now[0])
    distances = []
    for _ in range(30):  # a minute apart, through a whole swing
        entry = next(e for e in json.loads(positions.papi_um({})) if e["symbol"] == "BTCUSDT")
        mark, liquidation = float(entry["markPrice"]), float(entry["liquidationPrice"])
        distances.append((mark - liquidation) / mark)
        now[0] += 60
    assert min(distances) < 0.05 < 0.2 < max(distances)


def test_the_demo_has_a_futures_account_on_both_markets_and_pm_positions():
    from binance_margin_exporter.demo import start_demo
    from binance_margin_exporter.wiring import load

    settings, simulator = start_demo(load(None, {}, require_accounts=False))
    try:
        kinds = {a.name: (a.type, a.options.get("markets")) for a in settings.accounts}
        assert kinds["demo-futures"] == ("futures", ("um", "cm"))
        assert kinds["demo-pm"][0] == "portfolio_margin"
        assert settings.option("fapi_base_url") == settings.option("dapi_base_url") == \
            simulator.base_url
        with built_exporter(settings) as built:
            markets = {(m.account, m.market) for p in (a.parts.get("positions")
                                                        for a in built.accounts.values()) if p
                       for m in p.markets}
        assert markets == {("demo-pm", "um"), ("demo-pm", "cm"), ("demo-futures", "um"),
                           ("demo-futures", "cm")}
    finally:
        simulator.stop()


def test_the_demo_portfolio_sends_binance_s_thousands_comma():
    """The simulator can send totalAvailableBalance as Binance's own PM Pro example does
    ("122,559.90199491"); --demo does not (a clean demo is quiet: a newcomer's first log has no
    warning), test_portfolio shows what the exporter makes of it."""
    import json

    from binance_margin_exporter.binance.portfolio import parse_portfolio_account
    from binance_margin_exporter.demo.portfolio import SimulatedPortfolio

    portfolio = SimulatedPortfolio(drift=False)
    assert parse_portfolio_account(json.loads(portfolio.account({}))).invalid == ()
    portfolio.thousands_comma = True
    account = parse_portfolio_account(json.loads(portfolio.account({})))
    assert account.invalid == ("totalAvailableBalance",)
    assert account.total_available_balance is None and account.uni_mmr is not None


def test_a_client_that_hangs_up_on_the_simulator_prints_nothing(capfd, caplog):
    """A client giving up at its deadline made socketserver print "Exception occurred during
    processing of request" and a traceback among the dots of a passing run."""
    from binance_margin_exporter.demo.handler import SimulatorServer
    from binance_margin_exporter.demo.simulator import Simulator
    from binance_margin_exporter.products import SIMULATED

    server = SimulatorServer(("127.0.0.1", 0), Simulator(SIMULATED))
    try:
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")):
            try:
                raise error
            except OSError:
                server.handle_error(None, ("127.0.0.1", 40000))
        assert capfd.readouterr().err == ""
        try:
            raise ValueError("a bug of the simulator")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 40000))
        assert capfd.readouterr().err == ""
        assert [r.levelname for r in caplog.records if r.exc_info] == ["ERROR"]  # still seen
    finally:
        server.server_close()
