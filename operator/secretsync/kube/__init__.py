"""The only place the Kubernetes API is called."""

from secretsync.kube.client import Kube, Owner, SecretObject

__all__ = ["Kube", "Owner", "SecretObject"]
