"""The local environment shared by the tests and the demo: a real control plane
(etcd, kube-apiserver, kube-controller-manager), OpenBao and moto."""
