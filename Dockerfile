# Images of modelfleet, built by `make image` (podman) or any OCI image builder:
#
#   default target     the operator and the fleet API: `modelfleet operator ...`,
#                      `modelfleet fleet-api ...` (extras operator + fleet; no git, no GitPython)
#   --target agent     the gateway agent alone: `modelfleet-agent --config FILE` (extra agent:
#                      no kopf, no Kubernetes client, no GitPython)
#
# Both run as uid/gid 65532, work with a read-only root filesystem and need no shell at run
# time: the entrypoint is the console script, exec form (its #! line starts the venv's python).
#
# BASE: any Debian-like image with python3 (>= 3.11) and its venv module. The default is the
# upstream one; `make image` passes a base made from Debian's packages (hack/base-image.sh) where
# no image registry is reachable. BUILD_CA: optional CA bundle (a path inside the build, e.g. a
# mounted file) for pip behind a TLS-inspecting proxy.
ARG BASE=python:3.11-slim

# --- the modelfleet wheel, and the requirement list of each image (from pyproject.toml alone)
FROM ${BASE} AS wheel
ARG BUILD_CA
WORKDIR /src
COPY pyproject.toml hack/requirements.py ./
RUN python3 requirements.py pyproject.toml operator fleet >server.txt \
 && python3 requirements.py pyproject.toml agent >agent.txt
RUN python3 -m venv /opt/pip
COPY README.md ./
COPY crds ./crds
COPY operator ./operator
RUN if [ -n "${BUILD_CA:-}" ]; then export PIP_CERT="$BUILD_CA"; fi \
 && /opt/pip/bin/pip wheel --disable-pip-version-check --quiet --no-deps --wheel-dir /wheels .

# --- one virtualenv per image: dependencies first (cached while pyproject.toml is unchanged)
FROM ${BASE} AS server-venv
ARG BUILD_CA
COPY --from=wheel /src/server.txt /tmp/requirements.txt
RUN if [ -n "${BUILD_CA:-}" ]; then export PIP_CERT="$BUILD_CA"; fi \
 && python3 -m venv /opt/modelfleet \
 && /opt/modelfleet/bin/pip install --disable-pip-version-check --quiet -r /tmp/requirements.txt
COPY --from=wheel /wheels /wheels
RUN /opt/modelfleet/bin/pip install --disable-pip-version-check --quiet --no-deps /wheels/*.whl \
 && /opt/modelfleet/bin/pip uninstall --quiet --yes pip setuptools

FROM ${BASE} AS agent-venv
ARG BUILD_CA
COPY --from=wheel /src/agent.txt /tmp/requirements.txt
RUN if [ -n "${BUILD_CA:-}" ]; then export PIP_CERT="$BUILD_CA"; fi \
 && python3 -m venv /opt/modelfleet \
 && /opt/modelfleet/bin/pip install --disable-pip-version-check --quiet -r /tmp/requirements.txt
COPY --from=wheel /wheels /wheels
RUN /opt/modelfleet/bin/pip install --disable-pip-version-check --quiet --no-deps /wheels/*.whl \
 && /opt/modelfleet/bin/pip uninstall --quiet --yes pip setuptools

# --- what both images share: a non-root user, no bytecode writes, the venv on PATH
FROM ${BASE} AS runtime
RUN echo 'modelfleet:x:65532:65532:modelfleet:/home/modelfleet:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'modelfleet:x:65532:' >>/etc/group \
 && mkdir -p /home/modelfleet && chown 65532:65532 /home/modelfleet
ENV PATH=/opt/modelfleet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/modelfleet \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /home/modelfleet
USER 65532:65532

FROM runtime AS agent
COPY --from=agent-venv /opt/modelfleet /opt/modelfleet
ENTRYPOINT ["/opt/modelfleet/bin/modelfleet-agent"]
CMD ["--help"]

# The default target (last): the operator and the fleet API.
FROM runtime AS server
COPY --from=server-venv /opt/modelfleet /opt/modelfleet
ENTRYPOINT ["/opt/modelfleet/bin/modelfleet"]
CMD ["--help"]
