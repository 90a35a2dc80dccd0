"""The only place the Kubernetes API is called."""

from secretsync.kube.client import Kube, Owner, SecretObject
from secretsync.kube.leases import LeaseRecord

__all__ = ["Kube", "LeaseRecord", "Owner", "SecretObject"]
