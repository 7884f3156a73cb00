# syntax=docker/dockerfile:1
# The gateway as a small, non-root image. Build:   docker build -t gateway .
# Run (config mounted read-only; see docs/deploy.md):
#   docker run -p 8080:8080 -p 8081:8081 -v $PWD/gateway.yaml:/etc/gateway/gateway.yaml:ro gateway

# -- build: install the package and its runtime dependencies into a self-contained venv ----------
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# Only runtime dependencies (no [test] extra): every one ships manylinux wheels, so no compiler.
RUN /opt/gateway/bin/pip install .

# -- run: the venv on a clean slim base, as an unprivileged user ---------------------------------
FROM python:3.12-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /etc/gateway /var/lib/gateway \
    && chown gateway:gateway /var/lib/gateway
COPY --from=build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_CONFIG=/etc/gateway/gateway.yaml \
    GATEWAY_HEALTH_URL=http://127.0.0.1:8081/healthz
USER gateway
WORKDIR /var/lib/gateway
EXPOSE 8080 8081
# Liveness of the admin listener (listeners.admin must be 8081, or set GATEWAY_HEALTH_URL).
# Python's own urllib: the slim image has no curl, and adding one only for this is weight.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['GATEWAY_HEALTH_URL'], timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["serve"]
