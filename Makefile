# modelfleet: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
include operator/modelfleet/devcluster/envtest.versions
export KUBERNETES_VERSION ETCD_VERSION

# `make image`: the tags built, and the base ("local": made from Debian's packages by
# hack/base-image.sh, for machines without a registry; or e.g. docker.io/library/python:3.11-slim).
IMAGE ?= localhost/modelfleet:dev
AGENT_IMAGE ?= localhost/modelfleet-agent:dev
IMAGE_BASE ?= local

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install modelfleet with its dev extras

envtest: ## build etcd, kube-apiserver and kubectl from Go modules (cached under ~/.cache/modelfleet)
	@if [ "$${USE_EXISTING_CLUSTER:-}" = "true" ] || [ -n "$${KUBEBUILDER_ASSETS:-}" ]; then \
	  echo "envtest: using $${KUBEBUILDER_ASSETS:-the current kubeconfig}"; \
	else bash operator/modelfleet/devcluster/build-envtest.sh >/dev/null; fi

podman: ## install podman, runc and debootstrap with apt-get when missing (the image tests need them)
	@bash hack/ensure-podman.sh

image: ## build the container images with podman: operator + fleet API, and the agent
	@IMAGE=$(IMAGE) AGENT_IMAGE=$(AGENT_IMAGE) IMAGE_BASE=$(IMAGE_BASE) bash hack/image.sh >/dev/null

prometheus: ## install Debian's prometheus (prometheus + promtool) with apt-get when missing (monitoring tests)
	@bash hack/ensure-prometheus.sh

harnesses: ## compile the Go test harnesses (Argo CD's Lua engine, kstatus) into Go's build cache
	@nice -n 5 bash hack/build-go-harnesses.sh

# apt-get takes one lock: the packages are installed one after the other, then the image base.
packages:
	@bash hack/ensure-podman.sh
	@bash hack/ensure-prometheus.sh
	@bash hack/base-image.sh >/dev/null

prepare: install ## everything the tests need, built side by side (each cached outside the clone)
	@$(MAKE) --no-print-directory -j3 --output-sync=target envtest harnesses packages

# The suite runs in PYTEST_WORKERS processes (pytest-xdist), a test file per worker at a time:
# most tests wait on real processes and timers, so two workers keep two cores busy. Each worker
# starts its own control plane. PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2

test: prepare ## run the whole test suite (unit, integration on a real API server, e2e)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: install ## run only the fast unit tests
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff + mypy --strict on the package, and the import contract of every package
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q tests/unit/test_layering.py -k contract

fmt: install ## format the code
	$(VENV)/bin/ruff format operator tests bench
	$(VENV)/bin/ruff check --fix operator tests bench

demo: install envtest ## the whole loop in one command: Git commit -> verified rollout -> revert
	$(PY) -m modelfleet demo

deploy-local: install envtest podman ## manifests/ + operator and fleet API as containers (in-cluster tokens), then rollout -> abort -> revert
	IMAGE=$(IMAGE) AGENT_IMAGE=$(AGENT_IMAGE) IMAGE_BASE=$(IMAGE_BASE) \
	  $(PY) -m pytest tests/e2e/test_deploy_local.py -q $(PYTEST_ARGS)

kind-e2e: install ## the e2e suite on kind with the same Dockerfile and manifests (needs Docker; not run here)
	bash hack/kind-e2e.sh

docs-images: install ## redraw docs/img/*.png (status view, drill chart) from the inputs beside them
	$(PY) -m modelfleet.drill.docimages docs/img

clean: ## remove the venv and caches inside the clone
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install envtest podman prometheus harnesses packages prepare image test unit lint fmt demo deploy-local kind-e2e docs-images clean
