# syntax=docker/dockerfile:1
# kubestash image: `kubestash serve` as user 10001 on a slim Python base.
#
# The base is pinned to a full Python and Debian release. For reproducible builds, pin the
# digest as well: --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY renderer/ renderer/
COPY templates/ templates/
# The kubestash wheel (templates included) and a wheel for each dependency, resolved with
# the constraints that CI installs with, so that the final stage needs neither a compiler
# nor the network.
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt .

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels /wheels/*.whl \
    && groupadd --system --gid 10001 kubestash \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin kubestash
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["kubestash"]
CMD ["serve"]
