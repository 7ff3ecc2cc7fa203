#!/usr/bin/env bash
# Lint the deployment files: the Dockerfile with hadolint, the Kubernetes samples
# with kubernetes-validate --strict (against the oldest Kubernetes the samples
# support and the newest the tool knows) and with scripts/check_k8s_rules.py, and
# the Prometheus alert rules with promtool (check rules, and their unit tests).
# Offline: both tools ship what they need (hadolint is a binary, kubernetes-validate
# bundles its JSON schemas). Exits non-zero on any finding, warnings included.
#
# promtool comes from Debian's `prometheus` package, not from pip. In CI (CI=true,
# as root, on Debian) it is installed when missing, with prometheus-pushgateway,
# which the metrics test starts. Elsewhere a missing promtool skips the rules check
# and says so: it is never faked.
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

rules=samples/prometheus/cancel-worker-rules.yaml
if ! command -v promtool >/dev/null && [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
    echo "apt-get install -y prometheus prometheus-pushgateway (for promtool)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends prometheus prometheus-pushgateway; } >/dev/null \
        || echo "check-deploy: apt-get could not install prometheus" >&2
fi
if command -v promtool >/dev/null; then
    echo "promtool check rules $rules"
    promtool check rules "$rules" || status=1
    echo "promtool test rules ${rules%.yaml}.test.yaml"
    (cd "$(dirname "$rules")" && promtool test rules "$(basename "${rules%.yaml}").test.yaml") \
        || status=1
elif [ "${CI:-}" = true ]; then
    echo "check-deploy: promtool not found and not installable: CI must check $rules" >&2
    status=1
else
    echo "check-deploy: SKIPPED promtool check/test rules $rules: promtool not found" \
        "(Debian: apt-get install prometheus, as root)"
fi

if [ "$status" -ne 0 ]; then
    echo "check-deploy: FAILED" >&2
else
    echo "check-deploy: ok"
fi
exit "$status"
