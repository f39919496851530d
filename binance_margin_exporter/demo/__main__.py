"""``python -m binance_margin_exporter.demo``: the simulator alone, for benchmarks and local
experiments, serving the product list's routes."""

from __future__ import annotations

import argparse
import os
import sys

from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.demo.sub_accounts import SimulatedSubAccounts
from binance_margin_exporter.products import SIMULATED


def main(argv: list[str] | None = None) -> int:
    """Run the simulator alone (benchmarks, local experiments): prints its base URL."""
    parser = argparse.ArgumentParser(prog="python -m binance_margin_exporter.demo")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any)")
    parser.add_argument("--assets", type=int, default=300, help="assets the account lists")
    parser.add_argument("--active", type=int, default=12, help="assets with balances")
    parser.add_argument("--static", action="store_true", help="no price drift")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per signed request")
    parser.add_argument("--no-weight-limit", action="store_true")
    parser.add_argument("--sub-accounts", type=int, default=0, metavar="N",
                        help="the master has N sub-accounts (sub000@fund.example, ...), each "
                        "listing --assets assets, --active of them held")
    args = parser.parse_args(argv)
    api_key = os.environ.get("SIM_API_KEY", "")
    secret = os.environ.get("SIM_API_SECRET", "")
    if not api_key or not secret:
        print("set SIM_API_KEY and SIM_API_SECRET", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    given: dict[str, object] = {
        "account": SimulatedAccount(args.assets, args.active, drift=not args.static)}
    if args.sub_accounts:
        given["subs"] = SimulatedSubAccounts(
            [f"sub{i:03d}@fund.example" for i in range(args.sub_accounts)],
            n_assets=args.assets, n_active=args.active, drift=not args.static)
    sim = Simulator(SIMULATED, host=host, port=int(port),
                    enforce_weight_limit=not args.no_weight_limit, **given)
    sim.add_hmac_key(api_key, secret)
    sim.latency = args.latency
    print(sim.base_url, flush=True)
    try:
        sim._server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
