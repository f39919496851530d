"""External tools the tests run: found on PATH; missing, a skip on a workstation and a failure
under CI=true (CI must install them). Kubernetes' tools (kubectl's kustomize, the CRD
schemas) and promtool's lint of an exposition."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import NoReturn

import kubernetes_validate
import pytest
import yaml

from tests.support.paths import ROOT

KUBECTL_HINT = "scripts/install-k8s-tools.sh installs kubectl and helm"
ALERTMANAGER_HINT = "Debian: apt-get install prometheus-alertmanager"
CRD_MODELS = os.environ.get("BME_CRD_MODELS", "/usr/local/lib/bme-crd-models")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # prometheus-operator's, not Kubernetes'


def _missing(message: str, what: str = "it") -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must install {what}")
    pytest.skip(message)


def require_tool(name: str, hint: str = "Debian: apt-get install prometheus") -> str:
    """Path of an external tool. Missing: a skip on a workstation, a failure under CI=true."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not installed ({hint})")
    return path


def promtool() -> str:
    return require_tool("promtool")


def prometheus() -> str:
    return require_tool("prometheus")


def alertmanager() -> str:
    return require_tool("prometheus-alertmanager", ALERTMANAGER_HINT)  # Debian's name


def amtool() -> str:
    return require_tool("amtool", ALERTMANAGER_HINT)


def helm() -> str:
    return require_tool("helm", KUBECTL_HINT)


def kubectl() -> str:
    return require_tool("kubectl", KUBECTL_HINT)


def node() -> str:
    return require_tool("node", "Debian: apt-get install nodejs")


def promtool_check_metrics(body: bytes) -> None:
    """promtool's lint of an exposition, as exporters are linted in CI: no finding at all."""
    result = subprocess.run([promtool(), "check", "metrics"], input=body, capture_output=True,
                            timeout=60)
    findings = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0 and not findings, findings or "promtool failed"


def kustomize(directory) -> list[dict]:
    """The objects ``kubectl kustomize`` builds from ``directory`` (kubectl's own kustomize)."""
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[dict], kind: str) -> dict:
    return next(d for d in docs if d["kind"] == kind)


def crd_problems(documents: list[dict]) -> list[str]:
    """What the prometheus-operator CRD schemas say of these ServiceMonitors and
    PrometheusRules (``[]``: valid), through @kubernetes-models/prometheus-operator."""
    node_path = node()
    if not os.path.isdir(os.path.join(CRD_MODELS, "node_modules", "@kubernetes-models")):
        _missing(f"the CRD validators are not installed in {CRD_MODELS} "
                 f"(scripts/install-k8s-tools.sh installs them)", "them")
    script = (ROOT / "tests" / "validate_crds.mjs").read_text()
    result = subprocess.run([node_path, "--input-type=module", "-e", script], cwd=CRD_MODELS,
                            input=json.dumps(documents), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_strictly_valid(documents: list[dict]) -> None:
    """Every object passes the strict Kubernetes schemas, the ServiceMonitors and
    PrometheusRules their CRDs' schemas."""
    crds = [d for d in documents if d["kind"] in CRD_KINDS]
    for document in documents:
        if document not in crds:
            kubernetes_validate.validate(document, kubernetes_validate.latest_version(),
                                         strict=True)
    assert crd_problems(crds) == []
