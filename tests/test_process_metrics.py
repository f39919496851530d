"""process_* metrics: the same bytes as prometheus_client's ProcessCollector."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.process_collector import ProcessCollector

from exporter.process import ProcessMetrics
from tests.helpers import promtool_check_metrics

# /proc/<pid>/stat of a real process; the command name has a ") " in it, as one may
STAT = (b"4242 (python3) x) S 1 4242 4242 0 -1 4194560 71231 0 12 0 1234 567 0 0 20 0 3 0 "
        b"98765 1234567890 9123 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 "
        b"0 0 0 0 0 0 0 0 0 0 0 0\n")
LIMITS = (b"Limit                     Soft Limit           Hard Limit           Units     \n"
          b"Max cpu time              unlimited            unlimited            seconds   \n"
          b"Max open files            1048576              1048576              files     \n")


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    (tmp_path / "stat").write_bytes(b"cpu  1 2 3\nbtime 1763950000\nprocesses 99\n")
    pid = tmp_path / "4242"
    (pid / "fd").mkdir(parents=True)
    (pid / "stat").write_bytes(STAT)
    (pid / "limits").write_bytes(LIMITS)
    for fd in range(7):
        (pid / "fd" / str(fd)).touch()
    return tmp_path


def reference(proc: Path, pid: str) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(proc=str(proc), pid=lambda: pid, registry=registry)
    return generate_latest(registry)


def test_same_bytes_as_process_collector(fake_proc):
    ours = ProcessMetrics(str(fake_proc), "4242").render()
    assert ours == reference(fake_proc, "4242")
    assert b"process_open_fds 7.0\n" in ours
    assert b"process_max_fds 1.048576e+06\n" in ours
    assert b"process_virtual_memory_bytes 1.23456789e+09\n" in ours
    # 1234 / 100 + 567 / 100, added in floats as ProcessCollector adds them
    assert b"process_cpu_seconds_total 18.009999999999998\n" in ours
    promtool_check_metrics(ours)


def test_a_missing_part_drops_only_its_metrics(fake_proc):
    (fake_proc / "4242" / "limits").unlink()
    ours = ProcessMetrics(str(fake_proc), "4242").render()
    assert ours == reference(fake_proc, "4242")
    assert b"process_resident_memory_bytes" in ours and b"process_open_fds" not in ours


def test_no_proc_no_metrics(tmp_path):
    assert ProcessMetrics(str(tmp_path / "missing")).render() == b""
    assert reference(tmp_path / "missing", "self") == b""


def test_real_proc_matches_process_collector_by_name_type_and_steady_values():
    ours = {f.name: f for f in text_string_to_metric_families(ProcessMetrics().render().decode())}
    theirs = {f.name: f for f in text_string_to_metric_families(
        reference(Path("/proc"), str(os.getpid())).decode())}
    assert set(ours) == set(theirs) == {
        "process_virtual_memory_bytes", "process_resident_memory_bytes",
        "process_start_time_seconds", "process_cpu_seconds", "process_open_fds", "process_max_fds"}
    for name, family in ours.items():
        assert (family.type, family.documentation) == (theirs[name].type,
                                                        theirs[name].documentation)
    for name in ("process_start_time_seconds", "process_max_fds"):
        assert ours[name].samples[0].value == theirs[name].samples[0].value
