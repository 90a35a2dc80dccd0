# The operator's image, in three stages: build the wheel and install it into a
# virtualenv (tools/image/install.sh, which `make image-check` also runs without
# Docker), then copy only that virtualenv onto a clean Python base that keeps no pip,
# no compiler and no source tree. It runs as an unprivileged user and needs no writable
# path but /tmp (the Helm chart mounts a small emptyDir there and makes the root
# filesystem read-only).
#
#   docker build -t secretsync:dev .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY operator ./operator
COPY tools/image/install.sh ./tools/image/install.sh
RUN sh tools/image/install.sh /src /opt/secretsync

FROM ${PYTHON_IMAGE}
# The base image's own installers are not needed at run time.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
 && groupadd --gid 65532 secretsync \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin secretsync
COPY --from=build /opt/secretsync /opt/secretsync
ENV PATH=/opt/secretsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080 8081 8443
ENTRYPOINT ["secretsync"]
CMD ["run", "--all-namespaces"]
