# syntax=docker/dockerfile:1
# qerberos: the API (`qerberos serve`), the report scheduler and, in the compose file, the MLflow tracking
# server (this image already holds mlflow and psycopg 3, which the stock MLflow image lacks).
# Two stages: build a virtual environment with the project and its dependencies, then copy only that
# environment into a fresh slim image that runs as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/qerberos
COPY pyproject.toml README.md ./
COPY qerberos ./qerberos
COPY cli ./cli
COPY models ./models
COPY analytics ./analytics
COPY api ./api
COPY pipelines ./pipelines
# Package data: the default configuration and the notebooks (pyproject.toml's package-dir).
COPY config ./config
COPY notebooks ./notebooks
RUN /opt/qerberos/bin/pip install --upgrade pip \
 && /opt/qerberos/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/qerberos/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    QERBEROS_HOME=/var/lib/qerberos \
    QERBEROS_HOST=0.0.0.0 \
    QERBEROS_PORT=3000
# A fixed numeric uid/gid so volume ownership and `runAsNonRoot` checks are predictable.
# /mlartifacts exists (owned by the user) so a named volume mounted there by the mlflow service is writable.
RUN groupadd --system --gid 10001 qerberos \
 && useradd --system --uid 10001 --gid qerberos --home-dir /var/lib/qerberos --shell /usr/sbin/nologin qerberos \
 && install -d -o qerberos -g qerberos -m 0750 /var/lib/qerberos /mlartifacts
COPY --from=build /opt/qerberos /opt/qerberos
WORKDIR /var/lib/qerberos
VOLUME ["/var/lib/qerberos"]
USER 10001:10001
EXPOSE 3000
# Liveness only (no dependency checks): the process answers HTTP. Python is in the image; curl is not.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('QERBEROS_PORT', '3000') + '/health/live', timeout=2)"]
CMD ["qerberos", "serve"]
