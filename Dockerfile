# syntax=docker/dockerfile:1
# The gateway as a small, non-root image on Debian's own Python (bookworm: 3.11).
#
# Build:  docker build -t gateway .
#         podman build --format docker -t gateway .   # --format docker: the OCI format (podman's
#                                                      # default) has no HEALTHCHECK and drops it
# Run:    docker run -p 8080:8080 -p 8081:8081 -e UPSTREAM_URL=http://api.internal:9000 gateway
#
# The image runs config/container.yaml (listeners on 0.0.0.0, the upstream from UPSTREAM_URL,
# SQLite in /var/lib/gateway); mount your own file on /etc/gateway/gateway.yaml to replace it.
# scripts/container-test builds the base from Debian's archive (debootstrap) and tests all this.
ARG BASE=debian:bookworm-slim

# -- build: the package and its runtime dependencies in a venv, then pip removed from it ---------
FROM ${BASE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# Only runtime dependencies (no [test] extra); every one ships manylinux wheels, so no compiler.
# A build behind a TLS-intercepting proxy passes its CA bundle as the secret "ca" (used for this
# step only; nothing of it lands in the image).
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/gateway \
    && /opt/gateway/bin/pip install . \
    && /opt/gateway/bin/pip uninstall -y pip \
    && find /opt/gateway -name __pycache__ -prune -exec rm -rf {} +

# -- run: Debian's python3 and the venv, as one fixed unprivileged uid/gid -----------------------
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/gateway --shell /usr/sbin/nologin gateway \
    && mkdir -p /etc/gateway /var/lib/gateway \
    && chown 10001:10001 /var/lib/gateway
COPY --from=build /opt/gateway /opt/gateway
COPY config/container.yaml /etc/gateway/gateway.yaml
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_CONFIG=/etc/gateway/gateway.yaml \
    GATEWAY_HEALTH_URL=http://127.0.0.1:8081/healthz
# Numeric, so Kubernetes' runAsNonRoot can verify it; fsGroup: 10001.
USER 10001:10001
WORKDIR /var/lib/gateway
EXPOSE 8080 8081 9091
# Liveness of the admin listener (listeners.admin on 8081, or set GATEWAY_HEALTH_URL). Python's own
# urllib: the slim image has no curl, and adding one only for this is weight.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['GATEWAY_HEALTH_URL'], timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["serve"]
