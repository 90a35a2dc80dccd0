# Placeholder image: installs the package. Hardened (multi-stage, wheel-only,
# read-only root) with the delivery work.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir . && rm -rf /src
USER 65532:65532
ENTRYPOINT ["secretsync"]
CMD ["run", "--all-namespaces"]
