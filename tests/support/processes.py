"""The exporter (or its demo, with ``--demo``) as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from tests.support.paths import ROOT
from tests.support.waiting import wait_for


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment without its BINANCE_* settings, and ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    full_env.update(env or {})
    return full_env


class ExporterProcess:
    """The exporter as a real process; its port is read from its start-up log."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        full_env = _environment(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "binance_margin_exporter", "--web.listen-address",
             "127.0.0.1:0", *args],
            env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.port is not None or self.proc.poll() is not None, timeout=30)
        if self.port is None:
            self._reader.join(5)
            raise AssertionError("exporter did not start:\n" + self.log)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.port is None and "/metrics (version" in line:
                self.port = int(line.split("/metrics")[0].rsplit(":", 1)[1])

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=15)
        response.raise_for_status()
        return response.text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


@contextmanager
def exporter_process(args: list[str], env: dict[str, str]) -> Iterator[ExporterProcess]:
    process = ExporterProcess(args, env)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)


def run_exporter(args: list[str], env: dict[str, str] | None = None,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the exporter to completion (config errors, --config.check, --version)."""
    return subprocess.run([sys.executable, "-m", "binance_margin_exporter", *args],
                          env=_environment(env), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
