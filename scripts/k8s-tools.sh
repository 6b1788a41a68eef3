#!/usr/bin/env bash
# kubectl for tier 1 (`kubectl kustomize deploy/`): whatever kubectl is on PATH, else Debian's
# kubernetes-client package (kubectl 1.20, whose built-in kustomize renders deploy/).
# Idempotent and quick when kubectl is already there.
set -euo pipefail
if command -v kubectl >/dev/null 2>&1; then
  echo "k8s-tools: $(command -v kubectl)" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "k8s-tools: installing kubectl (Debian package kubernetes-client)" >&2
$SUDO apt-get update -q >&2
$SUDO env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends kubernetes-client >&2
command -v kubectl >/dev/null 2>&1 || { echo "k8s-tools: kubectl still missing" >&2; exit 1; }
