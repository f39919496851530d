"""The Helm chart, with the real helm: lint, templates through the strict Kubernetes schemas and
the prometheus-operator CRD schemas, the values schema, and agreement with the kustomize base."""

from __future__ import annotations

import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.support import tools
from tests.support.paths import K8S, ROOT
from tests.support.tools import assert_strictly_valid, kustomize, of_kind

CHART = ROOT / "deploy" / "helm" / "binance-margin-exporter"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "binance-margin.rules.yml"
MONITORING = ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
              "--set", "networkPolicy.enabled=true"]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.helm(), *args], capture_output=True, text=True,
                          timeout=120)


def template(*args: str) -> list[dict]:
    result = helm("template", "bme", str(CHART), "--namespace", "monitoring", *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_lint_strict():
    for args in ([], MONITORING, ["--set", "demo=true"]):
        result = helm("lint", "--strict", str(CHART), *args)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("args", [[], MONITORING, [*MONITORING, "--set", "demo=true"],
                                  ["--set", "secret.create=true", "--set", "secret.apiKey=k",
                                   "--set", "secret.apiSecret=s"]],
                         ids=["defaults", "monitoring", "demo", "secret-from-values"])
def test_every_object_passes_the_strict_schemas(args):
    docs = template(*args)
    assert_strictly_valid(docs)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap"}


def test_monitoring_switches():
    kinds = {d["kind"] for d in template()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "Secret"}
    docs = template(*MONITORING, "--set", "serviceMonitor.labels.release=kps",
                    "--set", "prometheusRule.labels.release=kps")
    monitor, rule = of_kind(docs, "ServiceMonitor"), of_kind(docs, "PrometheusRule")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["labels"]["release"] == "kps"
    service = of_kind(docs, "Service")
    assert all(service["metadata"]["labels"][k] == v
               for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_the_prometheusrule_is_the_one_rule_file():
    rule = of_kind(template(*MONITORING), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    # the chart's copy is written by scripts/gen_prometheusrule.py
    assert (CHART / "files" / "binance-margin.rules.yml").read_text() == RULES.read_text()
    text = yaml.safe_dump(rule)
    assert "{{ $labels.account }}" in text  # the alerts' templates pass through Helm untouched


def test_the_pod_is_hardened_as_the_kustomize_one(tmp_path):
    tree = tmp_path / "kubernetes"
    import shutil

    shutil.copytree(K8S, tree)
    (tree / "secrets" / "api_key").write_text("k")
    (tree / "secrets" / "api_secret").write_text("s")
    kustomized = of_kind(kustomize(tree), "Deployment")["spec"]["template"]["spec"]
    helmed = of_kind(template(), "Deployment")["spec"]["template"]["spec"]
    assert helmed["securityContext"] == kustomized["securityContext"]
    for key in ("automountServiceAccountToken", "enableServiceLinks"):
        assert helmed[key] == kustomized[key]
    ours, theirs = helmed["containers"][0], kustomized["containers"][0]
    for key in ("securityContext", "resources", "ports", "livenessProbe", "readinessProbe",
                "env"):
        assert ours[key] == theirs[key], key
    # credentials only from a Secret volume, through *_FILE variables
    assert all(e["name"].endswith("_FILE") and e["value"].startswith("/run/secrets/")
               for e in ours["env"])
    volumes = {v["name"]: v for v in helmed["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "bme-binance-margin-exporter"
    assert of_kind(template("--set", "existingSecret=mine"), "Deployment")["spec"]["template"][
        "spec"]["volumes"][1]["secret"]["secretName"] == "mine"


def test_the_config_value_is_the_exporters_config(tmp_path):
    from binance_margin_exporter.wiring import load as load_settings

    docs = template("--set", "config.cache_ttl_seconds=20")
    path = tmp_path / "config.yml"
    path.write_text(of_kind(docs, "ConfigMap")["data"]["config.yml"])
    settings = load_settings(str(path), {}, require_accounts=False)
    assert settings.cache_ttl_seconds == 20


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "colour=red"], "additional properties 'colour' not allowed"),
    (["--set", "service.port=abc"], "/service/port"),
    (["--set", "serviceMonitor.enabled=yes"], "/serviceMonitor/enabled"),
    (["--set", "serviceMonitor.interval=30 seconds"], "/serviceMonitor/interval"),
    (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
])
def test_the_values_schema_refuses_wrong_values(args, message):
    result = helm("template", "bme", str(CHART), *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_a_created_secret_needs_both_values():
    result = helm("template", "bme", str(CHART), "--set", "secret.create=true",
                  "--set", "secret.apiKey=k")
    assert result.returncode != 0 and "secret.apiSecret" in result.stderr


TLS = ["--set", "webConfig.tls_server_config.cert_file=/etc/binance-margin-exporter/tls/tls.crt",
       "--set", "webConfig.tls_server_config.key_file=/etc/binance-margin-exporter/tls/tls.key",
       "--set", "tlsSecret=bme-tls"]


@pytest.mark.parametrize(("args", "probe"), [
    ([], {"httpGet": {"path": "/healthz", "port": "metrics", "scheme": "HTTP"}}),
    (TLS, {"httpGet": {"path": "/healthz", "port": "metrics", "scheme": "HTTPS"}}),
    ([*TLS, "--set", "webConfig.tls_server_config.client_auth_type=RequireAndVerifyClientCert",
      "--set", "webConfig.tls_server_config.client_ca_file=/etc/binance-margin-exporter/tls/"
      "ca.crt"], {"tcpSocket": {"port": "metrics"}}),
], ids=["plain", "tls", "client-certificates"])
def test_the_probes_keep_working_with_tls(args, probe):
    docs = template(*args)
    for document in docs:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    container = of_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for name in ("livenessProbe", "readinessProbe"):
        assert {k: v for k, v in container[name].items() if k in probe} == probe
    if args:
        assert "--web.config.file=/etc/binance-margin-exporter/web/web.yml" in container["args"]
        web = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith(
            "-web"))
        assert yaml.safe_load(web["stringData"]["web.yml"])["tls_server_config"][
            "cert_file"].endswith("tls.crt")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["tls"] == "/etc/binance-margin-exporter/tls"


SHARDS = ["--set", "shards=3", *MONITORING]


def test_shards_lint_and_pass_the_strict_schemas():
    result = helm("lint", "--strict", str(CHART), *SHARDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_strictly_valid(template(*SHARDS))


def test_shards_are_a_statefulset_behind_a_headless_service_scraped_pod_by_pod(monkeypatch):
    from binance_margin_exporter.config.settings import shard_of

    docs = template(*SHARDS)
    assert not [d for d in docs if d["kind"] == "Deployment"]
    sts, service = of_kind(docs, "StatefulSet"), of_kind(docs, "Service")
    monitor = of_kind(docs, "ServiceMonitor")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert all(service["metadata"]["labels"][k] == v
               for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert all(sts["spec"]["template"]["metadata"]["labels"][k] == v
               for k, v in service["spec"]["selector"].items())
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--shard=ordinal/3" in args
    # a StatefulSet's pod N is named <name>-N: the flag reads N from the host name
    monkeypatch.setattr("socket.gethostname", lambda: f"{sts['metadata']['name']}-2")
    assert shard_of("ordinal/3", "--shard").index == 2
    # one shard: the Deployment, as before
    single = template(*MONITORING)
    assert of_kind(single, "Deployment")["spec"]["replicas"] == 1
    assert "clusterIP" not in of_kind(single, "Service")["spec"]


def test_the_values_schema_refuses_zero_shards():
    result = helm("template", "bme", str(CHART), "--set", "shards=0")
    assert result.returncode != 0 and "/shards" in result.stderr, result.stderr


def test_the_runbook_s_log_commands_name_what_each_deployment_creates():
    """`kubectl logs deploy/binance-margin-exporter` is kustomize's name only: under Helm the
    Deployment is <release>-binance-margin-exporter, and with shards a StatefulSet whose pods
    are <name>-N, all labelled with the release."""
    alerts = (ROOT / "docs" / "alerts.md").read_text()
    runbook = alerts[alerts.index("### BinanceMarginExporterDown"):]
    runbook = runbook[:runbook.index("\n### ", 5)]
    single = of_kind(template(), "Deployment")
    assert single["metadata"]["name"] == "bme-binance-margin-exporter"
    assert "logs deploy/<release>-binance-margin-exporter" in runbook
    sharded = template("--set", "shards=3")
    sts = of_kind(sharded, "StatefulSet")
    assert sts["metadata"]["name"] == "bme-binance-margin-exporter"  # pods: <this>-0, -1, -2
    assert sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "bme"
    assert "logs <release>-binance-margin-exporter-<N>" in runbook
    assert "logs -l app.kubernetes.io/instance=<release>" in runbook
    kustomized = of_kind(kustomize(K8S / "overlays" / "demo"), "Deployment")
    assert f"logs deploy/{kustomized['metadata']['name']}`" in runbook
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    assert "exporter" in compose["services"]
    assert "docker compose -f deploy/docker-compose.yml logs exporter" in runbook
