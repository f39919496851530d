"""The HTTP front, measured side by side: ours before this change (``old``, read from git), ours
now (``new``), aiohttp's web server and cheroot, each serving the same pages in a child process.

    python scripts/bench_web.py                 # 3 interleaved runs of everything
    python scripts/bench_web.py --runs 5 --fronts old,new

Figures: threads and RSS growth of the server holding 2000 connections (half idle, half with a
request cut before its blank line), the latency of a real scrape (100 kB) meanwhile; the time
/healthz takes while 16 clients trickle-read a 9 MB page; bcrypt basic auth for a known user
(cost 4 and 10) and unknown ones. Medians with [min-max] over runs. aiohttp and cheroot need
``pip install aiohttp cheroot``; they are candidates measured here, not dependencies.

Measured on the 2-core machine (3 interleaved runs, median [range]); "held": of the 2000
connections, those still open after 1 s (ours caps at 256 and drops the oldest waiting one):

    front    RSS +MiB  held   scrape during flood  stop     /healthz, 16 slow readers
    old      0.1       254    1.9 [1.8-2.3] ms     0.6 s    8223 [8162-8297] ms
    new      0.2       254    1.7 [1.7-1.7] ms     0.1 s    3.6 [2.2-3.7] ms
    aiohttp  10.5      2000   1.7 [1.5-2.0] ms     0.2 s    2.4 [2.0-2.7] ms
    cheroot  6.1       2000   timed out 3/3 (10 s) >20 s    8233 [8156-8506] ms

No front started a thread for the flood. bcrypt, users of cost 4 and 10, 40 unknown names
(wrong password): old 0.8 / 51 ms for the users, every unknown name 51-58 ms; new 0.9 / 58 ms,
unknown names 0.8-89 ms, 57 % of them as fast as the cost-4 user.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import bcrypt
import requests
from prometheus_client.core import GaugeMetricFamily

ROOT = Path(__file__).resolve().parent.parent
BASE = "0b5a6e2"  # the commit before the front was rebuilt: the ``old`` front
FRONTS = ("old", "new", "aiohttp", "cheroot")


# ---- the server side (a child process) -------------------------------------------------------

def page(size: int) -> Callable[[float | None], Iterable[GaugeMetricFamily]]:
    """A scrape of about ``size`` bytes: samples with 1 kB labels (cheap to render)."""
    label = "v" * 1000
    count = max(1, size // 1040)

    def scrape(timeout: float | None) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("bench_value", "bench", labels=["asset", "pad"])
        for i in range(count):
            family.add_metric([str(i), label], float(i))
        return [family]

    return scrape


def old_module() -> object:
    source = subprocess.run(["git", "show", f"{BASE}:binance_margin_exporter/web/server.py"],
                            cwd=ROOT, capture_output=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_server.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_server", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_server"] = module
    spec.loader.exec_module(module)
    return module


def serve_ours(module: object, scrape: Callable, web: object) -> None:
    server = module.make_server(("127.0.0.1", 0), scrape, web)
    print(server.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


def serve_aiohttp(scrape: Callable) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from aiohttp import web as aioweb
    from prometheus_client.exposition import choose_encoder

    class Scraped:
        def __init__(self, metrics: Iterable) -> None:
            self.metrics = metrics

        def collect(self) -> Iterable:
            return self.metrics

    async def metrics(request: aioweb.Request) -> aioweb.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.get_running_loop().run_in_executor(
            None, lambda: encoder(Scraped(scrape(None))))
        return aioweb.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(text="ok\n")

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16))
        app = aioweb.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        runner = aioweb.AppRunner(app, keepalive_timeout=60, access_log=None)
        await runner.setup()
        site = aioweb.TCPSite(runner, "127.0.0.1", 0, backlog=128)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def serve_cheroot(scrape: Callable) -> None:
    from cheroot import wsgi
    from prometheus_client.exposition import choose_encoder

    class Scraped:
        def __init__(self, metrics: Iterable) -> None:
            self.metrics = metrics

        def collect(self) -> Iterable:
            return self.metrics

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ["PATH_INFO"] == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        body = encoder(Scraped(scrape(None)))
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(body)))])
        return [body]

    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=16, request_queue_size=128)
    server.prepare()
    print(server.bind_addr[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    server.serve()


def serve(front: str, size: int) -> None:
    scrape = page(size)
    sys.path.insert(0, str(ROOT))
    from binance_margin_exporter.config import WebConfig

    if front == "old":
        serve_ours(old_module(), scrape, WebConfig())
    elif front == "new":
        from binance_margin_exporter.web import server

        serve_ours(server, scrape, WebConfig())
    elif front == "aiohttp":
        serve_aiohttp(scrape)
    else:
        serve_cheroot(scrape)


# ---- the client side (this process) ----------------------------------------------------------

class Child:
    def __init__(self, front: str, size: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", front, str(size)],
                                        stdout=subprocess.PIPE, env=env, cwd=ROOT)
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def status(self, key: str) -> int:
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def stop(self) -> float:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - started


def timed_get(url: str, timeout: float = 30.0) -> float:
    started = time.monotonic()
    try:
        requests.get(url, timeout=timeout, headers={"Connection": "close"}).raise_for_status()
    except requests.RequestException:
        return float("inf")
    return time.monotonic() - started


def flood(front: str, count: int = 2000) -> dict[str, float]:
    child = Child(front, 100_000)
    for _ in range(5):
        timed_get(child.url + "/metrics")
    rss, threads = child.status("VmRSS"), child.status("Threads")
    socks = []
    for i in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", child.port), timeout=5)
            if i % 2:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        except OSError:
            break
    time.sleep(1.0)
    figures = {"threads": child.status("Threads") - threads,
               "rss_mib": (child.status("VmRSS") - rss) / 1024}
    scrapes = [timed_get(child.url + "/metrics", 10) for _ in range(10)]
    figures["scrape_ms"] = statistics.median(scrapes) * 1000
    held = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            closed = sock.recv(1) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        held += not closed
    figures["held"] = held
    figures["stop_s"] = child.stop()
    for sock in socks:
        sock.close()
    return figures


def slow_readers(front: str, readers: int = 16) -> dict[str, float]:
    child = Child(front, 9_000_000)
    stop = threading.Event()

    def trickle() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        try:
            sock.connect(("127.0.0.1", child.port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
            while not stop.is_set() and sock.recv(1024):
                time.sleep(0.05)
        except OSError:
            pass
        finally:
            sock.close()

    threads = [threading.Thread(target=trickle) for _ in range(readers)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    healthz = timed_get(child.url + "/healthz", 30)
    stop.set()
    for thread in threads:
        thread.join()
    child.stop()
    return {"healthz_ms": healthz * 1000}


def auth_timing() -> dict[str, dict[str, float]]:
    from binance_margin_exporter.web import server

    users = {"fast": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode(),
             "slow": bcrypt.hashpw(b"pw", bcrypt.gensalt(10)).decode()}
    result = {}
    for name, module in (("old", old_module()), ("new", server)):
        auth = module.BasicAuth(users)

        def check(user: str, auth: object = auth) -> float:
            header = "Basic " + base64.b64encode(f"{user}:wrong".encode()).decode()
            started = time.perf_counter()
            auth.check(header)
            return (time.perf_counter() - started) * 1000

        unknown = [check(f"user{i}") for i in range(40)]
        result[name] = {"known_cost4_ms": statistics.median(check("fast") for _ in range(5)),
                        "known_cost10_ms": statistics.median(check("slow") for _ in range(5)),
                        "unknown_min_ms": min(unknown), "unknown_max_ms": max(unknown),
                        "unknown_fast_share": sum(t < 10 for t in unknown) / len(unknown)}
    return result


def spread(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    if len(finite) < len(values):
        return f"{len(values) - len(finite)}/{len(values)} timed out"
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2, metavar=("FRONT", "BYTES"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fronts", default=",".join(FRONTS))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    fronts = args.fronts.split(",")
    figures: dict[str, dict[str, list[float]]] = {f: {} for f in fronts}
    for _ in range(args.runs):
        for front in fronts:  # interleaved: the noise of the machine falls on every front
            for key, value in {**flood(front), **slow_readers(front)}.items():
                figures[front].setdefault(key, []).append(value)
    keys = ["threads", "rss_mib", "held", "scrape_ms", "stop_s", "healthz_ms"]
    print(f"{'front':8} " + " ".join(f"{k:>22}" for k in keys))
    for front in fronts:
        print(f"{front:8} " + " ".join(f"{spread(figures[front][k]):>22}" for k in keys))
    print("2000 connections: threads/RSS growth, held = still open after 1 s; scrape_ms: a "
          "100 kB scrape meanwhile; healthz_ms: while 16 clients trickle-read 9 MB")
    for name, timing in auth_timing().items():
        print(f"bcrypt {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in timing.items()))


if __name__ == "__main__":
    main()
