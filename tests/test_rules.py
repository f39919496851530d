"""Alert rules: valid, unit-tested with promtool, and the same inside the PrometheusRule."""

from __future__ import annotations

import importlib.util
import re
import subprocess

import pytest
import yaml

from tests.support import tools
from tests.support.paths import K8S, ROOT
from tests.support.tools import kustomize, of_kind

RULES = ROOT / "deploy" / "prometheus" / "rules" / "binance-margin.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "binance-margin.test.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.promtool(), *args], capture_output=True, text=True,
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
    runbook = (ROOT / "docs" / "alerts.md").read_text()
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
        # its section of the alerts page, under the anchor the page sets explicitly
        # (tests/test_docs.py finds each in the built site)
        section = f'<a id="{name.lower()}"></a>\n\n### {name} ({rule["labels"]["severity"]})\n'
        assert section in runbook, f"docs/alerts.md has no runbook section for {name}"
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


# --- BinanceMarginExporterDown under every deployment we ship ------------------------------
# The labels the Prometheus Operator gives a ServiceMonitor's targets: job is the Service's
# label named by jobLabel (its name without one), plus namespace, service, pod and instance.

def _helm(release: str, *args: str) -> list[dict]:
    from tests.test_helm import CHART

    result = subprocess.run(
        [tools.helm(), "template", release, str(CHART), "--namespace",
         "monitoring", "--set", "serviceMonitor.enabled=true", *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def operator_targets(docs: list[dict], count: int) -> list[dict[str, str]]:
    """The target labels of ``count`` pods behind the ServiceMonitor of ``docs``."""
    monitor, service = of_kind(docs, "ServiceMonitor"), of_kind(docs, "Service")
    labels = service["metadata"].get("labels", {})
    job = labels.get(monitor["spec"].get("jobLabel", ""), "") or service["metadata"]["name"]
    workload = next(d for d in docs if d["kind"] in {"Deployment", "StatefulSet"})
    namespace = service["metadata"].get("namespace", "monitoring")
    return [{"job": job, "namespace": namespace, "service": service["metadata"]["name"],
             "endpoint": "metrics", "pod": f"{workload['metadata']['name']}-{i}",
             "instance": f"10.0.0.{i + 1}:9944"} for i in range(count)]


def compose_targets() -> list[dict[str, str]]:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if "binance" in j["job_name"])
    return [{"job": job["job_name"], "instance": job["static_configs"][0]["targets"][0]}]


DEPLOYMENTS = {
    "compose": (compose_targets, None),
    "kustomize": (lambda: operator_targets(kustomize(K8S / "overlays" / "demo"), 1), None),
    "helm-bme": (lambda: operator_targets(_helm("bme"), 1), None),
    "helm-prod-eu-3-shards": (
        lambda: operator_targets(_helm("prod-eu", "--set", "shards=3"), 3), 3),
    "helm-any-name-3-shards": (
        lambda: operator_targets(_helm("x", "--set", "shards=3",
                                       "--set", "nameOverride=margin"), 3), 3),
}


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{text}}}", "values": values}


def _down_alert(labels: dict[str, str], description: str) -> dict:
    return {"exp_labels": {"severity": "critical", **labels},
            "exp_annotations": {
                "summary": "binance-margin-exporter is not being scraped",
                "description": f"{description}: margin alerts are blind.",
                "runbook_url": f"{gen().RUNBOOK_BASE}#binancemarginexporterdown"}}


def down_alert_tests(targets: list[dict[str, str]], shards: int | None) -> list[dict]:
    """All up; the last target failing (up 0); the last target gone (its pod gone: no
    series at all, the others still scraped)."""
    def case(last_up: str | None, expected: list[dict]) -> dict:
        series = []
        for i, target in enumerate(targets):
            last = i == len(targets) - 1
            if last and last_up is None:
                continue
            series.append(_series("up", target, last_up if last else "1x20"))
            if not last or last_up.startswith("1"):
                series.append(_series("binance_margin_exporter_build_info",
                                      {**target, "version": "0.1.0"}, "1x20"))
                if shards is not None:
                    series.append(_series("binance_margin_exporter_shards", target,
                                          f"{shards}x20"))
        return {"interval": "1m", "input_series": series, "alert_rule_test": [
            {"eval_time": "10m", "alertname": "BinanceMarginExporterDown",
             "exp_alerts": expected}]}

    last = targets[-1]
    gone = ({k: last[k] for k in ("job", "namespace", "service") if k in last}
            if len(targets) > 1 else {})
    return [
        case("1x20", []),
        case("0x20", [_down_alert(last, "Prometheus cannot scrape binance-margin-exporter at "
                                        f"{last['instance']}")]),
        case(None, [_down_alert(gone, f"1 shard(s) of job {last['job']} have no target to "
                                      "scrape") if gone else
                    _down_alert({}, "No binance-margin-exporter is scraped at all")]),
    ]


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_the_down_alert_sees_one_target_down_under_every_deployment(deployment, tmp_path):
    """With the job labels each shipped deployment really produces (rendered from its files):
    one target failing, or one of three shards with no target at all, fires the alert."""
    make_targets, shards = DEPLOYMENTS[deployment]
    targets = make_targets()
    assert len({t["job"] for t in targets}) == 1
    if deployment.startswith("helm"):
        assert targets[0]["job"] == "binance-margin-exporter"  # never the release's name
    path = tmp_path / "down.test.yml"
    path.write_text(yaml.safe_dump({
        "rule_files": [str(RULES)], "evaluation_interval": "1m",
        "tests": down_alert_tests(targets, shards)}))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
