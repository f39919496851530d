"""Deployment files: strict offline Kubernetes schemas, the kustomizations, the pod's security,
the compose stack and the Dockerfile."""

from __future__ import annotations

import copy
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from binance_margin_exporter import __version__
from tests.helpers import ROOT

K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def load(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory):
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def base_resources() -> list[dict]:
    docs = []
    for name in kustomization(BASE)["resources"]:
        docs += load(BASE / name)
    return docs


def generated_configmap() -> dict:
    generator = kustomization(BASE)["configMapGenerator"][0]
    data = {name: (BASE / name).read_text() for name in generator["files"]}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
            "data": data}


def generated_secret() -> dict:
    generator = kustomization(K8S)["secretGenerator"][0]
    keys = [entry.split("=", 1)[0] for entry in generator["files"]]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]},
            "type": "Opaque", "data": dict.fromkeys(keys, "c2VjcmV0")}


def json_patch(document: dict, operations: list[dict]) -> dict:
    """The two JSON-patch operations the demo overlay uses (RFC 6902 replace and remove)."""
    result = copy.deepcopy(document)
    for op in operations:
        *parents, last = op["path"].strip("/").split("/")
        node = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key = int(last) if isinstance(node, list) else last
        if op["op"] == "replace":
            node[key] = op["value"]
        elif op["op"] == "remove":
            del node[key]
        else:
            raise AssertionError(op["op"])
    return result


def deployment() -> dict:
    return next(d for d in base_resources() if d["kind"] == "Deployment")


def validate(document: dict) -> None:
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("index", range(len(base_resources())))
def test_base_manifests_pass_strict_schemas(index):
    document = base_resources()[index]
    if document["kind"] in CRD_KINDS:
        assert document["apiVersion"] == "monitoring.coreos.com/v1"
        return  # not in the Kubernetes schemas; checked below and by promtool
    validate(document)


def test_generated_configmap_and_secret_pass_strict_schemas():
    validate(generated_configmap())
    validate(generated_secret())


def test_demo_overlay_passes_strict_schemas():
    overlay = K8S / "overlays" / "demo"
    patch = kustomization(overlay)["patches"][0]
    patched = json_patch(deployment(), yaml.safe_load((overlay / patch["path"]).read_text()))
    validate(patched)
    container = patched["spec"]["template"]["spec"]["containers"][0]
    assert "--demo" in container["args"]
    assert "env" not in container
    assert all(v["name"] != "credentials" for v in patched["spec"]["template"]["spec"]["volumes"])


def test_a_broken_manifest_would_fail():
    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_kustomizations_list_every_file():
    listed = set(kustomization(BASE)["resources"])
    listed |= {f for g in kustomization(BASE)["configMapGenerator"] for f in g["files"]}
    present = {p.name for p in BASE.iterdir() if p.name != "kustomization.yaml"}
    assert listed == present
    root = kustomization(K8S)
    assert root["resources"] == ["base"]
    secret_files = [entry.split("=", 1)[1] for entry in root["secretGenerator"][0]["files"]]
    assert secret_files == ["secrets/api_key", "secrets/api_secret"]
    ignored = subprocess.run(["git", "check-ignore", *(str(K8S / f) for f in secret_files)],
                             cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 0, "the secret files must be git-ignored"
    overlay = K8S / "overlays" / "demo"
    assert {p.name for p in overlay.iterdir()} == {"kustomization.yaml",
                                                   kustomization(overlay)["patches"][0]["path"]}
    assert kustomization(overlay)["resources"] == ["../../base"]


def test_pod_meets_the_restricted_pod_security_standard():
    spec = deployment()["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert "add" not in ctx["capabilities"]
        assert ctx["runAsNonRoot"] is True
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        image = container["image"]
        assert image.endswith(f":{__version__}") and not image.endswith(":latest")
        assert container["ports"][0]["name"] == "metrics"
        # secrets only from a mounted volume, through *_FILE variables
        for env in container.get("env", []):
            assert "value" not in env or env["name"].endswith("_FILE")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == generated_secret()["metadata"][
        "name"]
    assert volumes["config"]["configMap"]["name"] == generated_configmap()["metadata"]["name"]


def test_service_servicemonitor_and_networkpolicy_fit_together():
    docs = {d["kind"]: d for d in base_resources()}
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    service = docs["Service"]
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    monitor = docs["ServiceMonitor"]
    assert all(service["metadata"]["labels"].get(k) == v
               for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    policy = docs["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert [p["port"] for r in policy["ingress"] for p in r["ports"]] == [9944]
    assert sorted({p["port"] for r in policy["egress"] for p in r["ports"]}) == [53, 443]


def test_exporter_config_in_the_configmap_is_valid(tmp_path):
    from binance_margin_exporter.config import load_settings

    path = tmp_path / "config.yml"
    path.write_text(generated_configmap()["data"]["config.yml"])
    key, secret = tmp_path / "k", tmp_path / "s"
    key.write_text("k")
    secret.write_text("s")
    settings = load_settings(str(path), {"BINANCE_API_KEY_FILE": str(key),
                                         "BINANCE_API_SECRET_FILE": str(secret)})
    assert settings.accounts[0].name == "default"


def test_compose_file_parses_and_refers_to_files_that_exist():
    deploy = ROOT / "deploy"
    for name in ("docker-compose.yml", "docker-compose.real.yml"):
        compose = yaml.safe_load((deploy / name).read_text())
        for service in compose["services"].values():
            build = service.get("build")
            if build:
                context = (deploy / build["context"]).resolve()
                assert context.is_dir() and (context / build["dockerfile"]).is_file()
            for volume in service.get("volumes", []):
                host = volume.split(":", 1)[0]
                assert (deploy / host).exists(), volume
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"exporter", "prometheus", "grafana"}
    assert "--demo" in compose["services"]["exporter"]["command"]
    prometheus = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["exporter:9944"]
    for service in compose["services"].values():
        image = service.get("image", "")
        assert not image.endswith(":latest") and ":" in image


def test_dockerfile():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(froms) == 2, "multi-stage"
    for image in froms:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image), image
    assert re.search(r"^USER \d+:\d+$", text, re.MULTILINE), "numeric non-root user"
    assert "EXPOSE 9944" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert "--web.listen-address=:9944" in text
    assert not re.search(r"(API_SECRET|API_KEY)=", text), "no secret baked in"
