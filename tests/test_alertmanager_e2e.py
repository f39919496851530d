"""A page, end to end with real parts: the exporter (against the simulator) -> Prometheus (the
project's rule file, 1 s scrape and evaluation) -> Alertmanager (the shipped
deploy/alertmanager/alertmanager.yml, its receivers pointed at a local webhook) -> the webhook.
A healthy account pages nothing; an account pushed within 5 % of its liquidation bar pages,
with its severity, account, live level and runbook URL; so does a MARGIN_CALL that Binance
pushed on the risk stream while the level recovered before any scrape saw it."""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import SIMULATED
from tests.support import tools
from tests.support.keys import API_KEY, SECRET
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.processes import ExporterProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
RULES = ROOT / "deploy" / "prometheus" / "rules" / "binance-margin.rules.yml"
ROUTING = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


class Webhook:
    """Records what Alertmanager posts: (receiver path, payload, monotonic time)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, float]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, json.loads(body), time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def pages(self, alertname: str) -> list[tuple[dict, float]]:
        return [(alert, at) for path, payload, at in self.posts if path == "/pager"
                for alert in payload["alerts"]
                if alert["labels"]["alertname"] == alertname and alert["status"] == "firing"]


def routing_for(webhook: Webhook) -> dict:
    """The shipped routing, its receivers on the local webhook, its waits at 1 s."""
    config = yaml.safe_load(ROUTING.read_text())
    for receiver in config["receivers"]:
        receiver["webhook_configs"][0]["url"] = f"{webhook.url}/{receiver['name']}"
    for route in [config["route"], *config["route"]["routes"]]:
        if "group_wait" in route:
            route["group_wait"] = "1s"
    config["route"]["group_interval"] = "1s"
    return config


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Simulator, Webhook]]:
    prometheus, alertmanager = tools.prometheus(), tools.alertmanager()
    workdir = Path(tempfile.mkdtemp(prefix="am-e2e-"))
    sim = Simulator(SIMULATED, account=SimulatedAccount(300, 12, drift=False))
    sim.add_hmac_key(API_KEY, SECRET)
    sim.start()
    webhook = Webhook()
    config = workdir / "exporter.yml"
    config.write_text(f"cache_ttl_seconds: 0.5\nbase_url: {sim.base_url}\n"
                      f"margin_stream_url: {sim.streams.url}\n")
    exporter = ExporterProcess(["--config", str(config)],
                               {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET})
    am_port, prom_port = free_port(), free_port()
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(routing_for(webhook)))
    (workdir / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "binance-margin", "static_configs": [
            {"targets": [f"127.0.0.1:{exporter.port}"]}]}],
    }))
    log = open(workdir / "processes.log", "w")
    procs = [
        subprocess.Popen([alertmanager, f"--config.file={workdir / 'alertmanager.yml'}",
                          f"--storage.path={workdir / 'am'}",
                          f"--web.listen-address=127.0.0.1:{am_port}",
                          "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([prometheus, f"--config.file={workdir / 'prometheus.yml'}",
                          f"--storage.tsdb.path={workdir / 'data'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=log, stderr=subprocess.STDOUT),
    ]
    try:
        for port, path in ((am_port, "/-/ready"), (prom_port, "/-/ready")):
            def ready(port: int = port, path: str = path) -> bool:
                assert all(p.poll() is None for p in procs), \
                    (workdir / "processes.log").read_text()[-3000:]
                try:
                    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).ok
                except requests.ConnectionError:
                    return False

            wait_for(ready, timeout=60, interval=0.2)
        # Prometheus has scraped and evaluated the healthy account
        wait_for(lambda: requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={
            "query": 'binance_margin:level_with_liability{account="default"}'},
            timeout=5).json()["data"]["result"], timeout=60, interval=0.2)
        sim.streams.wait_connected("margin_risk", timeout=30)
        yield sim, webhook
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        log.close()
        exporter.stop()
        sim.stop()
        webhook.server.shutdown()


def test_a_healthy_account_pages_nothing_and_near_liquidation_pages(stack):
    sim, webhook = stack
    time.sleep(3)  # three evaluations and a group_wait with a healthy account
    assert not [p for p in webhook.posts if p[0] == "/pager"], "a healthy account paged"
    crossed = time.monotonic()
    sim.account.set_margin_level(1.12)  # within 5 % of the 1.1 force-liquidation bar
    try:
        alert, at = wait_for(lambda: webhook.pages("BinanceMarginNearLiquidation"),
                             timeout=60, interval=0.05)[0]
    finally:
        sim.account.set_margin_level(None)
    latency = at - crossed
    print(f"\ncrossing to page: {latency:.2f} s")  # README: "A page, end to end"
    assert alert["labels"]["account"] == "default"
    assert alert["labels"]["severity"] == "critical"
    assert "1.120" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].startswith("https://")
    assert alert["annotations"]["runbook_url"].endswith("#binancemarginnearliquidation")
    assert latency < 30


def test_a_pushed_margin_call_pages_though_the_level_recovered(stack):
    """Binance sends MARGIN_CALL at level 1.25; by the next scrape the account is back at 2.5
    (the simulator's level never changes): polling alone would page nothing."""
    sim, webhook = stack
    pushed = time.monotonic()
    assert sim.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.25",
                             "s": "MARGIN_CALL"}, "margin_risk") == 1
    alert, at = wait_for(lambda: webhook.pages("BinanceMarginCallEvent"), timeout=60,
                         interval=0.05)[0]
    print(f"\npushed MARGIN_CALL to page: {at - pushed:.2f} s")  # README: the streams
    assert alert["labels"]["account"] == "default"
    assert alert["labels"]["status"] == "MARGIN_CALL"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"].endswith("#binancemargincallevent")
    assert not webhook.pages("BinanceMarginCall")  # the polled level never crossed a bar
    assert at - pushed < 30
