"""The naive peer every public Binance exporter resembles, for scripts/bench.py to measure
beside this one: a ``prometheus_client`` collector that, on each scrape, fetches each
sub-account in turn (a signed GET, ``json.loads``, a gauge per value), then
``generate_latest``. No cache, no concurrency, no deadline.

    SIM_API_KEY=... SIM_API_SECRET=... python scripts/naive_peer.py BASE_URL PORT [--account]

With ``--account``: one cross margin account instead (``GET /sapi/v1/margin/account``, ``float()``
of the margin level and of the five values of each non-zero asset), like for like with this
exporter reading the cross account alone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import time
from urllib.parse import quote

import requests
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily


class NaiveCollector:
    def __init__(self, base_url: str, key: str, secret: str) -> None:
        self.base_url, self.key, self.secret = base_url, key, secret.encode()
        self.session = requests.Session()

    def get(self, path: str, params: str) -> object:
        query = f"{params}&timestamp={int(time.time() * 1000)}"
        signature = hmac.new(self.secret, query.encode(), hashlib.sha256).hexdigest()
        response = self.session.get(f"{self.base_url}{path}?{query}&signature={signature}",
                                    headers={"X-MBX-APIKEY": self.key}, timeout=10)
        return response.json()

    def collect(self):
        level = GaugeMetricFamily("naive_margin_level", "marginLevel", labels=["account"])
        free = GaugeMetricFamily("naive_asset_free", "free", labels=["account", "asset"])
        borrowed = GaugeMetricFamily("naive_asset_borrowed", "borrowed",
                                     labels=["account", "asset"])
        emails, page = [], 1
        while True:
            chunk = self.get("/sapi/v1/sub-account/list", f"page={page}&limit=200")
            emails += [s["email"] for s in chunk["subAccounts"]]
            if len(chunk["subAccounts"]) < 200:
                break
            page += 1
        for email in emails:
            raw = self.get("/sapi/v1/sub-account/margin/account",
                           f"email={quote(email, safe='')}")
            level.add_metric([email], float(raw["marginLevel"]))
            for asset in raw["marginUserAssetVoList"]:
                if float(asset["free"]) or float(asset["borrowed"]):
                    free.add_metric([email, asset["asset"]], float(asset["free"]))
                    borrowed.add_metric([email, asset["asset"]], float(asset["borrowed"]))
        yield from (level, free, borrowed)


ASSET_FIELDS = ("free", "locked", "borrowed", "interest", "netAsset")


class NaiveAccountCollector(NaiveCollector):
    """One cross margin account: its level and the five values of each non-zero asset."""

    def collect(self):
        level = GaugeMetricFamily("naive_margin_level", "marginLevel", labels=["account"])
        families = {field: GaugeMetricFamily(f"naive_asset_{field.lower()}", field,
                                             labels=["account", "asset"])
                    for field in ASSET_FIELDS}
        raw = self.get("/sapi/v1/margin/account", "recvWindow=5000")
        level.add_metric(["main"], float(raw["marginLevel"]))
        for asset in raw["userAssets"]:
            values = [float(asset[field]) for field in ASSET_FIELDS]
            if any(values):
                for field, value in zip(ASSET_FIELDS, values, strict=True):
                    families[field].add_metric(["main", asset["asset"]], value)
        yield level
        yield from families.values()


def main() -> int:
    base_url, port = sys.argv[1], int(sys.argv[2])
    kind = NaiveAccountCollector if "--account" in sys.argv[3:] else NaiveCollector
    REGISTRY.register(kind(base_url, os.environ["SIM_API_KEY"],
                                     os.environ["SIM_API_SECRET"]))
    start_http_server(port, addr="127.0.0.1")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
