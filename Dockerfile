# call-monitor in a container: `docker compose up` (docker-compose.yml) builds it from here.
#
# Two stages: the first installs call-monitor and its dependencies into a virtualenv (`pip
# install .`), the second copies that virtualenv into a clean slim image (the same Python at
# the same path), so no source tree, pip cache or build tool is left in what runs. Plain
# COPY, no BuildKit-only syntax: Compose v1 builds with the classic builder.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/call-monitor
WORKDIR /src
# What `pip install .` needs: the project metadata (its readme included) and the package.
COPY pyproject.toml README.md ./
COPY call_monitor ./call_monitor
RUN /opt/call-monitor/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/call-monitor/bin:$PATH PYTHONUNBUFFERED=1
COPY --from=build /opt/call-monitor /opt/call-monitor
# A user of its own, no login shell; /var/lib/call-monitor is where the SQLite store goes
# when no store.url is given (platformdirs: $XDG_DATA_HOME/call-monitor).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/call-monitor \
        --create-home --shell /usr/sbin/nologin callmon
ENV XDG_DATA_HOME=/var/lib \
    CALLMON_WEB__HOST=0.0.0.0 \
    CALLMON_WEB__PORT=8089
# Numeric, so a runtime that checks "not root" (Kubernetes' runAsNonRoot) can tell.
USER 10001:10001
WORKDIR /var/lib/call-monitor
EXPOSE 8089
# Ready means the AMI link is up (/readyz answers 503 otherwise). The slim image has no curl:
# Python's urllib raises on a non-2xx answer or a refused connection, and the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CALLMON_WEB__PORT', '8089')}/readyz\", timeout=4)"]
ENTRYPOINT ["call-monitor"]
CMD ["run"]
