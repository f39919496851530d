"""Alert rules: valid, unit-tested with promtool, and the same inside the PrometheusRule."""

from __future__ import annotations

import importlib.util
import re
import subprocess

import yaml

from tests.helpers import ROOT, require_tool

RULES = ROOT / "deploy" / "prometheus" / "rules" / "binance-margin.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "binance-margin.test.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_rules_are_valid():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_follow_the_recording_rules_they_read_in_the_same_group():
    # Groups are evaluated independently (promtool even picks a random order), so an alert
    # reading a recorded series from another group can see it one evaluation late or not at
    # all: that made the liquidation alert's promtool test fail one run in five.
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded_in = {r["record"]: g["name"] for g in groups for r in g["rules"] if "record" in r}
    checked = 0
    for group in groups:
        seen: set[str] = set()
        for rule in group["rules"]:
            for name in re.findall(r"[a-z_]+:[a-z_:]+", rule["expr"]):
                if name in recorded_in:
                    checked += 1
                    where = rule.get("alert") or rule.get("record")
                    assert recorded_in[name] == group["name"], f"{where} reads {name} " \
                        f"from group {recorded_in[name]}, not its own {group['name']}"
                    assert name in seen, f"{where} runs before {name} is recorded"
            if "record" in rule:
                seen.add(rule["record"])
    assert checked >= 8


def test_every_alert_has_a_unit_test_severity_annotations_and_a_runbook():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    readme = (ROOT / "README.md").read_text().lower()
    assert len(alerts) >= 10
    for rule in alerts:
        name = rule["alert"]
        assert name in tested, f"{name} has no promtool test"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        assert "$value" in rule["annotations"]["description"] or name in {
            "BinanceMarginExporterDown", "BinanceMarginFetchFailing",
            "BinanceMarginAuthFailing", "BinanceMarginBorrowDisabled",
            "BinanceMarginIPBanned"}
        assert f"### {name.lower()}" in readme, f"README has no runbook for {name}"
        # an absolute URL, from the one base a fork can change (gen_prometheusrule.py)
        assert rule["annotations"]["runbook_url"] == f"{gen().RUNBOOK_BASE}#{name.lower()}"


def gen():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" /
                                                  "gen_prometheusrule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_generated_from_the_rule_file():
    module = gen()
    assert PROMETHEUS_RULE.read_text() == module.render(), \
        "run python scripts/gen_prometheusrule.py"
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_prometheusrule_groups_pass_promtool(tmp_path):
    groups = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]["groups"]
    path = tmp_path / "from-prometheusrule.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
