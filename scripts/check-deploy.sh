#!/usr/bin/env bash
# Lint the deployment files: the Dockerfile with hadolint, the Kubernetes samples
# with kubernetes-validate --strict (against the oldest Kubernetes the samples
# support and the newest the tool knows) and with scripts/check_k8s_rules.py.
# Offline: both tools ship what they need (hadolint is a binary, kubernetes-validate
# bundles its JSON schemas). Exits non-zero on any finding, warnings included.
#
#   scripts/check-deploy.sh            # tools from .venv/bin
#   VENV=/path/to/venv scripts/check-deploy.sh
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN=$VENV/bin
# Oldest supported (backoffLimitPerIndex and FailIndex are on by default from 1.29)
# and "latest", i.e. the newest schemas the installed kubernetes-validate has.
K8S_VERSIONS=${K8S_VERSIONS:-1.29.0 latest}

for tool in hadolint kubernetes-validate python; do
    [ -x "$BIN/$tool" ] || {
        echo "check-deploy: $BIN/$tool not found (pip install -e '.[test]' into $VENV)" >&2
        exit 2
    }
done

status=0
manifests=(samples/kubernetes/*.yaml)

echo "hadolint Dockerfile"
"$BIN/hadolint" --no-color --failure-threshold style Dockerfile || status=1

for version in $K8S_VERSIONS; do
    args=(--strict --quiet)
    [ "$version" = latest ] || args+=(-k "$version")
    echo "kubernetes-validate --strict ${version} ${manifests[*]}"
    # Exit status alone is not enough: a resource it has no schema for (a typo in
    # apiVersion or kind) is only a WARN line with exit status 0.
    if ! out=$("$BIN/kubernetes-validate" "${args[@]}" "${manifests[@]}" 2>&1); then
        status=1
    fi
    if [ -n "$out" ]; then
        printf '%s\n' "$out"
        if grep -qE '^(WARN|ERROR|FATAL)' <<< "$out"; then status=1; fi
    fi
done

echo "check_k8s_rules.py ${manifests[*]}"
"$BIN/python" scripts/check_k8s_rules.py "${manifests[@]}" || status=1

if [ "$status" -ne 0 ]; then
    echo "check-deploy: FAILED" >&2
else
    echo "check-deploy: ok"
fi
exit "$status"
