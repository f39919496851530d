"""The simulated accounts behave like real ones."""

from __future__ import annotations


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
