"""Benchmarks of secretsync: how fast, how cheap, how big (`make bench`, `make bench-smoke`).

The operator runs as a separate process against the local control plane, moto and
OpenBao (tests/harness). Nothing is taken from the operator's own metrics: provider
calls are counted by recording proxies in front of moto and OpenBao, Kubernetes
requests by kube-apiserver's audit log and, independently, by watches on the
resourceVersions of SecretSyncs and managed Secrets; CPU and memory are read from
/proc through psutil. `python -m bench.run --help` lists the options.
"""
