# cancel-worker container image.
#
#   docker build -t cancel-worker .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/samples:/data" \
#       cancel-worker run payments.csv --sandbox        # report: samples/payments.report.csv
#
# Behind a TLS-intercepting proxy, hand pip the proxy's CA bundle as a BuildKit
# secret (never as a build arg: build args end up in the image history):
#   docker build --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt -t cancel-worker .
# Podman/buildah take the same flag. Without the secret pip uses the base's CAs.
#
# BASE_IMAGE must provide `python3` (>= 3.11) with the `venv` module, `groupadd` and
# `useradd`: the default python:3.12-slim does, and so does Debian with python3-venv
# (scripts/container-smoke.sh builds such a base where Docker Hub is out of reach).
# Both stages must use the same base: the venv is copied from one to the other.
# The dependencies are pinned (constraints.txt, `make constraints` to refresh); for
# byte-for-byte rebuilds pin the base too, by digest: BASE_IMAGE=python:3.12-slim@sha256:...
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------
# build: a wheel for the project and for every dependency, then /opt/venv
# installed from those wheels alone.
FROM ${BASE_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY worker/ ./worker/

# The only step that reaches a package index. The CA secret, when given, is
# mounted for this one command and is not stored in any layer.
RUN --mount=type=secret,id=pip_ca,required=false \
    set -eu; \
    if [ -f /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .; \
    /opt/venv/bin/pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt \
        /wheels/cancel_worker-*.whl

# Offline (--no-index): exactly the wheels above. pip compiles the .pyc files now,
# so a read-only root filesystem costs nothing at start-up. pip itself (and the
# setuptools an older venv seeds) goes afterwards: the worker never needs it.
RUN set -eu; \
    /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/cancel_worker-*.whl; \
    /opt/venv/bin/pip uninstall --yes pip setuptools

# ---------------------------------------------------------------------------
# runtime: the base plus /opt/venv; no wheels, no pip, no build context, no cache.
# (The venv is copied rather than installed here with `RUN --mount=type=bind,from=build`:
# buildah, i.e. podman build, mishandles such mounts when the build stage comes from
# its layer cache - containers/buildah#4375, #6609.)
FROM ${BASE_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG SOURCE_URL=https://github.com/example/cancel-worker

LABEL org.opencontainers.image.title="cancel-worker" \
      org.opencontainers.image.description="Bulk-cancel (void) authorized card payments through the Bambora Payments API, from a file, safely." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Owned by root, so the worker cannot modify its own code.
COPY --from=build /opt/venv /opt/venv

RUN set -eu; \
    groupadd --gid 10001 worker; \
    useradd --no-log-init --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin worker; \
    mkdir -p /data; \
    chown 10001:10001 /data; \
    cancel-worker --help > /dev/null

# Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

ENTRYPOINT ["cancel-worker"]
CMD ["--help"]
