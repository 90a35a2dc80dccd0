"""`secretsync audit`: a read-only scan of a cluster for secret anti-patterns."""
