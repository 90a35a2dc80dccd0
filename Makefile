# The front door: each target is a thin call into a script or pytest.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/tests

.PHONY: setup tools node-debs test faults unit lint crds manifests image-check demo bench bench-smoke devenv-up devenv-down clean

## setup: the virtualenv with the package (editable) and the test tools, pinned by constraints.txt
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=25.1'
	$(PY) -m pip install --quiet -c constraints.txt -e . --group dev
	touch $@

## tools: build (or find cached) kube-apiserver, kube-controller-manager, kubectl, etcd, helm,
## and the node's kubelet, kube-scheduler, containerd and pause
tools:
	bash tools/build.sh --node >/dev/null

## node-debs: the Debian packages the node and the image build need (root; tools/node/install-debs.sh)
node-debs:
	bash tools/node/install-debs.sh

## flux-tools: build (or find cached) Flux's source-controller, kustomize-controller and
## tools/flux/kstatus, with the Flux CRDs (tests/integration/test_flux.py)
.PHONY: flux-tools
flux-tools:
	bash tools/flux/build.sh >/dev/null

## sops-tools: build (or find cached) the sops CLI that encrypts every SOPS test fixture
.PHONY: sops-tools
sops-tools:
	bash tools/sops/build.sh >/dev/null

## test: every test, against a local control plane, OpenBao and moto started for the run (and
## a node running the operator's image; the fault suite at CI size)
test: setup tools flux-tools sops-tools image
	$(PY) -m pytest

## faults: the fault suite at full size and length (about 30 minutes), then docs/reliability.md
faults: setup tools
	SECRETSYNC_FAULTS=full $(PY) -m pytest tests/faults
	$(PY) -m faults.report

## unit: the fast tests only
unit: setup
	$(PY) -m pytest tests/unit

## plugin-example: the example provider plug-in (examples/plugins/secretsync-httpjson), installed
## into the virtualenv (editable) and checked: its own tests, which run the conformance kit
## (secretsync.testing) against its reference server, and mypy --strict over it
.PHONY: plugin-example
plugin-example: setup
	$(PY) -m pip install --quiet --no-deps -e examples/plugins/secretsync-httpjson
	cd examples/plugins/secretsync-httpjson && PYTHONPATH= $(CURDIR)/$(PY) -m pytest
	cd examples/plugins/secretsync-httpjson && $(CURDIR)/$(VENV)/bin/mypy

## lint: ruff, formatting, mypy --strict, import-linter contracts, CRDs up to date
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/crds.py --check

## secret-scan: detect-secrets over every tracked file against the reviewed .secrets.baseline
## (tools/secretscan.py; --update to refresh it, then `detect-secrets audit .secrets.baseline`)
.PHONY: secret-scan
secret-scan: setup
	$(PY) tools/secretscan.py

## crds: regenerate crds/ from tools/crds.py
crds: setup
	$(PY) tools/crds.py

## manifests: regenerate the kustomize base in deploy/ from the Helm chart
manifests: setup tools
	$(PY) tools/manifests.py

## image-check: install the wheel into a fresh virtualenv as the image does, run it; hadolint
image-check: setup
	PYTHON=$(PY) HADOLINT=$(VENV)/bin/hadolint sh tools/image/check.sh

## image: build the operator's image from the Dockerfile with buildah (no Docker daemon; root),
## check it and export it for the local node (tools/image/build.sh; packages:
## tools/node/install-debs.sh)
.PHONY: image
image: setup node-debs
	bash tools/image/build.sh

## demo: the product end to end on the local environment (or SECRETSYNC_TEST_KUBECONFIG's cluster);
## NODE=1: the chart's Pods on a local node do it (root; tools/node/install-debs.sh); KEEP=1:
## leave the environment running
demo: setup tools node-debs
	$(PY) -m harness.demo $(if $(NODE),--node) $(if $(KEEP),--keep)

## bench: every benchmark at full size (N = 1,000, 10,000 and 30,000, one process and sharded;
## about 35 minutes on two cores);
## writes bench/results.json, docs/benchmarks.md and docs/benchmarks/*.png
bench: setup tools node-debs
	$(PY) -m bench.run --size full
	$(PY) -m bench.leases --size full

## bench-smoke: every benchmark at N = 50 (a few minutes; CI): asserts the results are right,
## not fast; writes build/bench/smoke/results.json (and leases.json: issued credentials)
bench-smoke: setup tools node-debs
	$(PY) -m bench.run --size smoke
	$(PY) -m bench.leases --size smoke

## devenv-up: start the local environment in the background; `source .devenv/env` to use it
devenv-up: setup tools
	$(PY) -m harness.devenv up --dir .devenv

## devenv-down: stop exactly what devenv-up started
devenv-down: setup
	$(PY) -m harness.devenv down --dir .devenv

clean:
	rm -rf $(VENV) .devenv .mypy_cache .pytest_cache .ruff_cache build dist
