"""The risk streams' latencies, real parts: event to /metrics, event to a fresh account
fetch, a dropped connection to the next one. Run by bench.py (``--streams`` and the full run)."""

from __future__ import annotations

import time
from pathlib import Path

from benchlib import API_KEY, SECRET, Exporter, median_ms, simulator

from binance_margin_exporter.demo.cross import ACCOUNT_PATH


def _until(predicate, timeout: float = 10.0) -> float:
    """Seconds until ``predicate()`` holds (polled every 0.2 ms)."""
    begun = time.perf_counter()
    while not predicate():
        if time.perf_counter() - begun > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.0002)
    return time.perf_counter() - begun


def _reconnects(sim, runs: int) -> list[float]:
    """Drops of a connection that had been stable (the back-off starts over after 60 s up;
    here after 0 s, so that each run is a first drop): the real stream thread, in process."""
    import copy
    import dataclasses
    import tempfile

    from binance_margin_exporter.collectors.streams import StreamProduct
    from binance_margin_exporter.products import PRODUCTS
    from binance_margin_exporter.wiring import build_exporter, load, warm_up

    products = []
    for product in PRODUCTS:
        if isinstance(product, StreamProduct):
            product = copy.copy(product)
            product.timing = dataclasses.replace(product.timing, stable=0.0)
        products.append(product)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yml"
        path.write_text(f"base_url: {sim.base_url}\nmargin_stream_url: {sim.streams.url}\n"
                        f"accounts: [{{name: a, api_key: {API_KEY}, api_secret: {SECRET}}}]\n")
        built = build_exporter(load(str(path), {}, products=products), products=products)
    try:
        warm_up(built)
        sim.streams.wait_connected("margin_risk", timeout=20)
        times = []
        for _ in range(runs):
            time.sleep(0.1)
            sim.streams.drop("margin_risk")
            _until(lambda: not sim.streams.connections("margin_risk"))
            times.append(_until(lambda: sim.streams.connections("margin_risk")))
        return times
    finally:
        built.exporter.close()


def stream_latency(runs: int) -> list[list[object]]:
    """The risk stream, real parts: the simulator's WebSocket server pushes MARGIN_CALL to the
    exporter (a child process); times from the push to (a) the counter on /metrics (scraped
    back to back), (b) the simulator receiving the account fetch the event starts (no scrape,
    cache 60 s), and (c) from a dropped connection to the next one (back-off: 1 s with jitter,
    then a POST of the key and the WebSocket handshake).
    """
    sim = simulator()
    exporter = Exporter(sim.base_url, cache_ttl=60.0, extra=(
        f"margin_stream_url: {sim.streams.url}\nusdt_values: false\ninterest_rates: false\n"
        f"risk_lists: false"))
    needle = b'event="margin_level_status_change",status="MARGIN_CALL"} '
    event = {"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.25", "s": "MARGIN_CALL"}

    def count() -> float:
        body = exporter.scrape()
        return float(body.split(needle, 1)[1].split(b"\n", 1)[0])

    to_metrics, to_fetch, reconnect = [], [], []
    try:
        sim.streams.wait_connected("margin_risk", timeout=20)
        for _ in range(runs):
            before = count()
            time.sleep(0.01)
            sim.streams.push(event, "margin_risk")
            to_metrics.append(_until(lambda before=before: count() > before))
        # An event refreshes the account at most once per 5 s (refresh_spacing; one within
        # it waits for its end): each run comes 5.1 s after the last event, and nothing
        # scrapes meanwhile (a scrape could start the fetch itself).
        time.sleep(5.1)  # phase A's trailing refresh came up to 5 s after its last event
        for _ in range(max(3, runs // 4)):
            time.sleep(5.1)
            fetches = sim.counts[ACCOUNT_PATH]
            sim.streams.push(event, "margin_risk")
            to_fetch.append(_until(lambda fetches=fetches: sim.counts[ACCOUNT_PATH] > fetches))
    finally:
        exporter.stop()
    try:
        reconnect = _reconnects(sim, max(5, runs // 3))
    finally:
        sim.stop()

    def row(what: str, values: list[float]) -> list[object]:
        return [what, len(values), f"{median_ms(values):.1f}",
                f"{min(values) * 1000:.1f} - {max(values) * 1000:.1f}"]

    return [row("event -> counter on /metrics", to_metrics),
            row("event -> account fetch at the simulator", to_fetch),
            row("dropped connection -> connected again", reconnect)]
