#!/usr/bin/env bash
# Container smoke test: build the image, then run the sample job inside it against
# the embedded sandbox, the way a platform would (read-only root, no capabilities,
# no network at all: the sandbox listens on the container's loopback).
#
#   scripts/container-smoke.sh                          # podman (the default)
#   CONTAINER_ENGINE=docker scripts/container-smoke.sh  # docker, python:3.12-slim base
#
# Expected: exit code 1 (samples/payments.csv deliberately holds invalid rows, which
# need a person; its not_found and not_cancelable rows are follow-ups, exit 0 alone),
# a report with the contract's header and at least one `canceled` row.
#
# Environment (all optional):
#   CONTAINER_ENGINE  podman | docker                          (podman)
#   IMAGE             tag to build and run                     (localhost/cancel-worker:smoke)
#   BASE_IMAGE        base for both stages. podman: localhost/cancel-worker-base:bookworm,
#                     built here with debootstrap when missing (no Docker Hub needed).
#                     docker: the Dockerfile's default, python:3.12-slim.
#                     Any other value is used as given, never built here.
#   SKIP_BASE_BUILD=1 never debootstrap a base; BASE_IMAGE must exist or be pullable
#   REBUILD_BASE=1    rebuild the local base even if it exists
#   DEBIAN_MIRROR     mirror for debootstrap (default: the host's apt sources, else
#                     http://deb.debian.org/debian)
#   PIP_CA            CA bundle handed to pip as the build secret `pip_ca`
#                     (default /etc/ssl/certs/ca-certificates.crt when it exists;
#                     PIP_CA= to pass none)
#   PODMAN_FLAGS      extra flags for `podman build` and `podman run`. Default:
#                     `--runtime runc` (when runc is installed) plus
#                     `--ulimit nofile=20000:20000 --ulimit nproc=32768:32768`, which
#                     hosts with a low hard nofile limit or hybrid cgroups need.
#                     PODMAN_FLAGS= (empty) passes none.
#   BUILD_FLAGS       extra flags for the image build only (e.g. --no-cache, --isolation chroot)
#   SMOKE_TIMEOUT     seconds the sample job may take (300)
#   KEEP_WORKDIR=1    keep the temporary /data directory for inspection
set -euo pipefail

cd "$(dirname "$0")/.."

ENGINE=${CONTAINER_ENGINE:-podman}
IMAGE=${IMAGE:-localhost/cancel-worker:smoke}
LOCAL_BASE=localhost/cancel-worker-base:bookworm
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-300}
PIP_CA=${PIP_CA-/etc/ssl/certs/ca-certificates.crt}
HEADER='line,merchant_number,payment_reference,outcome,http_status,error_type,payment_state,attempts,detail,finished_at'

step() { printf '\n==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Engine and its flags
case "$ENGINE" in
podman)
    if ! command -v podman > /dev/null; then
        die "podman is not installed. On Debian/Ubuntu: sudo apt-get install -y podman runc
      (or run with CONTAINER_ENGINE=docker on a machine with a Docker engine)"
    fi
    if [ -z "${PODMAN_FLAGS+set}" ]; then
        PODMAN_FLAGS="--ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
        if command -v runc > /dev/null; then
            PODMAN_FLAGS="--runtime runc $PODMAN_FLAGS"
        fi
    fi
    # shellcheck disable=SC2206 # deliberate word splitting of a flag list
    ENGINE_FLAGS=($PODMAN_FLAGS)
    VOLUME_OPTS=":Z" # relabel for SELinux hosts; a no-op elsewhere
    BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
    ;;
docker)
    command -v docker > /dev/null || die "docker is not installed"
    docker info > /dev/null 2>&1 || die "docker cannot reach a Docker engine (docker info failed)"
    export DOCKER_BUILDKIT=1 # build secrets need BuildKit
    ENGINE_FLAGS=()
    VOLUME_OPTS=""
    SKIP_BASE_BUILD=1 # docker uses a registry base; nothing to build locally
    ;;
*)
    die "CONTAINER_ENGINE must be podman or docker, not '$ENGINE'"
    ;;
esac
# shellcheck disable=SC2206
BUILD_EXTRA=(${BUILD_FLAGS:-})

image_exists() {
    if [ "$ENGINE" = podman ]; then
        podman image exists "$1"
    else
        docker image inspect "$1" > /dev/null 2>&1
    fi
}

[ -f samples/payments.csv ] || die "samples/payments.csv is missing"
[ -f README.md ] || die "README.md is missing (pyproject.toml names it as the readme; the build needs it)"

step "engine: $("$ENGINE" --version)${ENGINE_FLAGS[*]:+ (flags: ${ENGINE_FLAGS[*]})}"

# ---------------------------------------------------------------------------
# Base image (podman only): a minimal Debian bookworm with python3, built locally,
# because only the Debian and PyPI registries are reachable from some machines.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    # The host's apt sources, deb822 (`URIs: ...`) or one-line (`deb URI suite ...`).
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2> /dev/null |
        awk '/^URIs:/ {print $2} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' |
        grep -E '/debian/?$' | head -n 1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    local rootfs mirror
    [ "$(id -u)" = 0 ] || die "building the base image needs root (debootstrap). Run as root, or
      pass BASE_IMAGE=<an image with python3 >= 3.11 and python3-venv> (e.g. python:3.12-slim)."
    command -v debootstrap > /dev/null ||
        die "debootstrap is not installed. On Debian/Ubuntu: apt-get install -y debootstrap"
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d /tmp/cancel-worker-rootfs.XXXXXX)
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
    trap "rm -rf '$rootfs'" EXIT
    step "building base image $BASE_IMAGE: debootstrap bookworm from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || {
        tail -n 20 "$rootfs.log" >&2
        die "debootstrap failed (full log: $rootfs.log)"
    }
    rm -f "$rootfs.log"
    # Slim it down: package caches, apt lists, documentation, translations.
    rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    info "rootfs: $(du -sh "$rootfs" | cut -f1); importing"
    tar --numeric-owner -C "$rootfs" -c . |
        podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
            --message "debootstrap bookworm minbase + python3 (cancel-worker smoke base)" \
            - "$BASE_IMAGE" > /dev/null
    rm -rf "$rootfs"
    trap - EXIT
    info "base image $BASE_IMAGE: $(podman run --rm ${ENGINE_FLAGS[@]+"${ENGINE_FLAGS[@]}"} "$BASE_IMAGE" python3 --version)"
}

if [ "${SKIP_BASE_BUILD:-0}" != 1 ] && [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
    if [ "${REBUILD_BASE:-0}" = 1 ] || ! image_exists "$BASE_IMAGE"; then
        build_base
    else
        step "base image $BASE_IMAGE exists: reusing it (REBUILD_BASE=1 to rebuild)"
    fi
fi

# ---------------------------------------------------------------------------
# The image
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n 1)
build_args=(--build-arg "VERSION=${version:-0.0.0}")
[ -n "${BASE_IMAGE:-}" ] && build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [ -n "$PIP_CA" ]; then
    [ -f "$PIP_CA" ] || die "PIP_CA=$PIP_CA does not exist (PIP_CA= to pass no CA bundle)"
    build_args+=(--secret "id=pip_ca,src=$PIP_CA")
fi

step "building $IMAGE (base: ${BASE_IMAGE:-Dockerfile default}, version ${version:-?})"
build_log=$(mktemp /tmp/cancel-worker-build.XXXXXX)
start=$(date +%s)
if ! "$ENGINE" build ${ENGINE_FLAGS[@]+"${ENGINE_FLAGS[@]}"} ${BUILD_EXTRA[@]+"${BUILD_EXTRA[@]}"} "${build_args[@]}" \
    -t "$IMAGE" -f Dockerfile . > "$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    die "image build failed (full log: $build_log)"
fi
rm -f "$build_log"
size=$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE")
info "built in $(($(date +%s) - start))s; size $((size / 1000000)) MB ($size bytes)"

# Hardening that mirrors samples/kubernetes: read-only root, writable /tmp only,
# no capabilities, no privilege escalation, no network.
run_flags=(${ENGINE_FLAGS[@]+"${ENGINE_FLAGS[@]}"} --rm --network none --read-only --tmpfs /tmp
    --cap-drop ALL --security-opt no-new-privileges)

step "$IMAGE --help"
"$ENGINE" run "${run_flags[@]}" "$IMAGE" --help > /dev/null || die "'$IMAGE --help' failed"
user=$("$ENGINE" run "${run_flags[@]}" --entrypoint id "$IMAGE" -u)
[ "$user" = 10001 ] || die "the image runs as uid $user, expected 10001"
info "ok (runs as uid $user)"

# ---------------------------------------------------------------------------
# The sample job
work=$(mktemp -d /tmp/cancel-worker-smoke.XXXXXX)
cleanup() {
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then
        info "kept $work"
    else
        rm -rf "$work" 2> /dev/null || { [ "$ENGINE" = podman ] && podman unshare rm -rf "$work"; } || true
    fi
}
trap cleanup EXIT
cp -R samples/. "$work/"
rm -f "$work"/*.report.* # a stale report would make the run resume instead of start
chmod 0777 "$work"       # uid 10001 in the container writes the report here

step "cancel-worker run /data/payments.csv --sandbox --report /data/payments.report.csv"
limit=()
command -v timeout > /dev/null && limit=(timeout "$SMOKE_TIMEOUT")
set +e
${limit[@]+"${limit[@]}"} "$ENGINE" run "${run_flags[@]}" -v "$work:/data$VOLUME_OPTS" "$IMAGE" \
    run /data/payments.csv --sandbox --report /data/payments.report.csv \
    > "$work/stdout.log" 2> "$work/stderr.log"
code=$?
set -e
info "exit code $code"
if [ "$code" -ne 1 ]; then
    tail -n 30 "$work/stderr.log" >&2
    KEEP_WORKDIR=1
    die "expected exit code 1 (done, some references not canceled), got $code"
fi

report=$work/payments.report.csv
[ -s "$report" ] || {
    KEEP_WORKDIR=1
    die "no report at /data/payments.report.csv"
}
first=$(head -n 1 "$report" | tr -d '\r')
case "$first" in
"$HEADER" | "$HEADER",*) ;;
*)
    KEEP_WORKDIR=1
    die "unexpected report header: $first"
    ;;
esac

# Count outcomes with Python's csv module (inside the image: the host may have no python).
counts=$("$ENGINE" run "${run_flags[@]}" -v "$work:/data$VOLUME_OPTS" --entrypoint python3 "$IMAGE" -c '
import collections, csv
with open("/data/payments.report.csv", newline="", encoding="utf-8") as f:
    c = collections.Counter(row["outcome"] for row in csv.DictReader(f))
print(" ".join(f"{k}={v}" for k, v in sorted(c.items())))
')
info "report: $counts"
case " $counts " in
*" canceled="*) ;;
*)
    KEEP_WORKDIR=1
    die "the report has no canceled row"
    ;;
esac

step "PASS: exit 1 as the contract says for the sample, report complete ($IMAGE, $((size / 1000000)) MB)"
