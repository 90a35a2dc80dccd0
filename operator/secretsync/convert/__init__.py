"""`secretsync convert`: External Secrets Operator manifests to secretsync manifests."""
