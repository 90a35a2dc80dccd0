"""secretsync: keeps Kubernetes Secrets in sync with external secret managers."""

from importlib import metadata

try:
    __version__ = metadata.version("secretsync")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
