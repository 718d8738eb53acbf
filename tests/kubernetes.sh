#!/usr/bin/env bash
# The Kubernetes manifest tests (tests/streamgate/test_kubernetes.py) render deploy/kubernetes/
# with `kubectl kustomize` (offline). Install kubectl when it is missing and we may (root with
# apt-get): the `kubectl` package where an apt source offers it (Google's Cloud SDK repository,
# as on these machines), else Debian's own `kubernetes-client`. Its kustomize must be v5 or newer
# (components); the tests skip with that reason otherwise. checkov's venv is made by the Makefile
# (.venv-checkov/.installed).
set -uo pipefail
command -v kubectl >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing kubectl for the Kubernetes manifest tests…"
  for package in kubectl kubernetes-client; do
    apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1; }
    command -v kubectl >/dev/null && break
  done
fi
command -v kubectl >/dev/null ||
  echo "kubectl is not installed and could not be (need root and apt-get): Kubernetes tests will be skipped."
exit 0
