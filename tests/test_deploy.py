"""Deployment files: what ``kubectl kustomize`` builds, through the strict offline Kubernetes
schemas; the kustomizations, the pod's security, the compose stack and the Dockerfile."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from binance_margin_exporter import __version__
from tests.support import tools
from tests.support.paths import K8S, ROOT
from tests.support.tools import CRD_KINDS, crd_problems, kustomize, of_kind

BASE = K8S / "base"


def kustomization(directory):
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def root_build(tmp_path_factory) -> list[dict]:
    """The root kustomization (base + the Secret from files), as a user who created the two
    secret files gets it."""
    tree = tmp_path_factory.mktemp("k8s") / "kubernetes"
    shutil.copytree(K8S, tree)
    (tree / "secrets" / "api_key").write_text("key")
    (tree / "secrets" / "api_secret").write_text("secret")
    return kustomize(tree)


def validate(document: dict) -> None:
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_every_built_object_passes_strict_schemas(root_build):
    kinds = {d["kind"] for d in root_build}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy"} <= kinds
    for document in root_build:
        if document["kind"] in CRD_KINDS:
            continue  # not in the Kubernetes schemas: the CRDs' own, below
        validate(document)
        assert document["metadata"]["namespace"] == "monitoring"
    crds = [d for d in root_build if d["kind"] in CRD_KINDS]
    assert {d["kind"] for d in crds} == CRD_KINDS
    assert crd_problems(crds) == []


def test_a_broken_servicemonitor_or_rule_fails_the_crd_schemas(root_build):
    monitor = copy.deepcopy(of_kind(root_build, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    rule = copy.deepcopy(of_kind(root_build, "PrometheusRule"))
    alert = next(r for r in rule["spec"]["groups"][0]["rules"] if "alert" in r)
    alert["for"] = "five minutes"
    problems = crd_problems([monitor, rule])
    assert len(problems) == 2 and "interval" in problems[0] and "/for" in problems[1]


def test_demo_overlay_passes_strict_schemas():
    docs = kustomize(K8S / "overlays" / "demo")
    for document in docs:
        if document["kind"] not in CRD_KINDS:
            validate(document)
    pod = of_kind(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--demo" in container["args"]
    assert "env" not in container
    assert all(v["name"] != "credentials" for v in pod["volumes"])
    assert "Secret" not in {d["kind"] for d in docs}


def test_a_broken_manifest_would_fail(root_build):
    broken = copy.deepcopy(of_kind(root_build, "Deployment"))
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


def test_pod_meets_the_restricted_pod_security_standard(root_build):
    spec = of_kind(root_build, "Deployment")["spec"]["template"]["spec"]
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
    # kustomize renames generated objects (hash suffix) and the references to them alike
    assert volumes["credentials"]["secret"]["secretName"] == of_kind(root_build, "Secret")[
        "metadata"]["name"]
    assert volumes["config"]["configMap"]["name"] == of_kind(root_build, "ConfigMap")[
        "metadata"]["name"]


def test_service_servicemonitor_and_networkpolicy_fit_together(root_build):
    docs = {d["kind"]: d for d in root_build}
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
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


def test_exporter_config_in_the_configmap_is_valid(tmp_path, root_build):
    from binance_margin_exporter.wiring import load as load_settings

    path = tmp_path / "config.yml"
    path.write_text(of_kind(root_build, "ConfigMap")["data"]["config.yml"])
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
    assert set(compose["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert "--demo" in compose["services"]["exporter"]["command"]
    prometheus = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["exporter:9944"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"]
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
    assert "EXPOSE 9944" in text and "HEALTHCHECK" in text
    assert 'CMD ["binance-margin-exporter", "--healthcheck"]' in text
    assert "--web.listen-address=:9944" in text
    assert not re.search(r"(API_SECRET|API_KEY)=", text), "no secret baked in"


def test_the_shipped_alertmanager_routing_is_valid_and_pages_critical():
    amtool = tools.amtool()
    routing = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([amtool, "check-config", str(routing)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for labels, receiver in [("alertname=BinanceMarginCall severity=critical", "pager"),
                             ("alertname=BinanceMarginLevelLow severity=warning", "chat")]:
        result = subprocess.run([amtool, "config", "routes", "test",
                                 f"--config.file={routing}", *labels.split()],
                                capture_output=True, text=True, timeout=60)
        assert result.stdout.strip() == receiver, result.stdout + result.stderr


def test_the_license_file_matches_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    assert '\nlicense = "Apache-2.0"\n' in text  # an SPDX expression (PEP 639)
    assert '\nlicense-files = ["LICENSE"]\n' in text
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")


def test_building_the_package_warns_of_nothing_in_its_metadata(tmp_path):
    """What ``pip install .`` builds, with the setuptools the build asks for: a deprecated
    field (``project.license`` as a table, before PEP 639) prints a SetuptoolsDeprecationWarning
    that ends in a date after which the build stops working."""
    tree = tmp_path / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"),
         str(tree)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Getting requirements to build wheel" in output  # the backend ran, verbosely
    assert not re.findall(r".*\w+Warning: .*", output)


def test_one_answer_for_secret_file_modes_everywhere():
    """The exporter's group (10001 in the container), mode 0440: the recipe that works for
    compose (a test below runs it as uid 10001), what the Kubernetes Secret volumes do, and
    what the exporter's warning asks. No place advises 0600 any more."""
    places = {"docs/deployment.md": ROOT / "docs" / "deployment.md",
              "deploy/secrets/README.md": ROOT / "deploy" / "secrets" / "README.md",
              "docker-compose.real.yml": ROOT / "deploy" / "docker-compose.real.yml"}
    for name, path in places.items():
        text = path.read_text()
        assert "chgrp 10001" in text and "chmod 0440" in text, name
        assert not re.search(r"chmod 0?600|mode 0?600\b|\(mode 0?600\)", text), name
    warning = (ROOT / "binance_margin_exporter" / "config" / "secrets.py").read_text()
    assert "chgrp %d it, chmod 0440 it" in warning and "chmod 600" not in warning
    for path in (BASE / "deployment.yaml",
                 ROOT / "deploy" / "helm" / "binance-margin-exporter" / "values.yaml"):
        assert "fsGroup: 10001" in path.read_text()
    assert "defaultMode: 0440" in (BASE / "deployment.yaml").read_text()


def test_the_compose_secret_recipe_makes_them_readable_by_the_containers_user(tmp_path):
    """The container runs as 10001:10001; compose mounts the files as they are on disk. A
    forked child drops to that user and loads the settings as the exporter does at start."""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to act as uid 10001")
    import shutil
    import tempfile
    from pathlib import Path

    # like /run/secrets: a directory others may pass through (pytest's own are 0700)
    secrets = Path(tempfile.mkdtemp(prefix="bme-secrets-", dir="/tmp"))
    secrets.chmod(0o711)
    try:
        check_the_recipe(secrets)
    finally:
        shutil.rmtree(secrets)


def check_the_recipe(secrets) -> None:
    import logging
    import os

    from binance_margin_exporter.config import ConfigError
    from binance_margin_exporter.wiring import load as load_settings

    for name in ("api_key", "api_secret"):
        (secrets / name).write_text("k" if name == "api_key" else "s")
        (secrets / name).chmod(0o600)  # yours alone: as most people create them
    env = {"BINANCE_API_KEY_FILE": str(secrets / "api_key"),
           "BINANCE_API_SECRET_FILE": str(secrets / "api_secret")}

    def as_container_user() -> str:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the container's user, then the exporter's start-up read
            os.close(read)
            try:
                os.setgroups([])
                os.setgid(10001)
                os.setuid(10001)
                warnings: list[str] = []
                handler = logging.Handler()
                handler.emit = lambda record: warnings.append(record.getMessage())
                logging.getLogger("binance_margin_exporter.config").addHandler(handler)
                load_settings(None, env)
                answer = "ok" + "".join(f" | {w}" for w in warnings)
            except ConfigError as exc:
                answer = f"refused: {exc}"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                answer = f"error: {exc!r}"
            os.write(write, answer.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        return answer

    assert "Permission denied" in as_container_user()
    for name in ("api_key", "api_secret"):  # the recipe
        os.chown(secrets / name, 0, 10001)
        (secrets / name).chmod(0o440)
    assert as_container_user() == "ok"  # readable, and no warning about who else may read
