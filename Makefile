# The README's commands. Everything the project needs is built by these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CLUSTER := tests/cluster

.PHONY: help demo test crds bench cluster-build cluster-up cluster-down

help:
	@echo "make demo           local cluster + controller + an example rollout walking its steps, then rolled back by a failing metric"
	@echo "make test           build what is missing, start a fresh cluster, run every test, stop it"
	@echo "make bench          memory, latency and API cost at ROLLOUTS=1000 (quick: make bench ROLLOUTS=100 IDLE=60)"
	@echo "make crds           regenerate crds/*.yaml from the Rust types"
	@echo "make cluster-build  build the pinned control plane into ~/.cache/rollouts-testbin"
	@echo "make cluster-up     start the local cluster (kubeconfig: target/cluster/kubeconfig)"
	@echo "make cluster-down   stop it"

cluster-build:
	$(CLUSTER)/build.sh

cluster-up: cluster-build
	$(CLUSTER)/up.sh

cluster-down:
	$(CLUSTER)/down.sh

# The main job: a local cluster, the controller, and an example rollout walking its steps.
demo: cluster-build
	cargo build -p rollouts-controller -p kubectl-rollouts
	$(CLUSTER)/demo.sh

crds:
	cargo build --quiet -p rollouts-controller
	for name in rollout analysisrun analysistemplate clusteranalysistemplate experiment; do target/debug/rollouts-controller crd $$name > crds/$$name.yaml; done

# A fresh cluster for every run, always torn down; the exit code is the tests'. End-to-end tests
# mostly wait on the cluster, so four run at once per test binary (189 s for the suite with two,
# 164-167 s with four, on 2 cores); each has its own namespace and controller.
test: cluster-build
	@$(CLUSTER)/down.sh
	@$(CLUSTER)/up.sh
	@set -o pipefail; status=0; \
	  KUBECONFIG=$(CURDIR)/target/cluster/kubeconfig cargo test --workspace --no-fail-fast -- --include-ignored --test-threads 4 || status=$$?; \
	  $(CLUSTER)/down.sh; \
	  exit $$status

# The benchmark on a fresh local cluster, always torn down; results in target/bench/.
ROLLOUTS ?= 1000
IDLE ?= 300
bench: cluster-build
	cargo build --release -p rollouts-controller -p e2e --bin rollouts-controller --bin bench
	@$(CLUSTER)/down.sh
	@$(CLUSTER)/up.sh
	@status=0; \
	  KUBECONFIG=$(CURDIR)/target/cluster/kubeconfig target/release/bench --rollouts $(ROLLOUTS) --idle-seconds $(IDLE) || status=$$?; \
	  $(CLUSTER)/down.sh; \
	  exit $$status
