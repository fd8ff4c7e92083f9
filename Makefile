# Everything installs itself: a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo crds bench soak clean control-plane helm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Go helpers for the tests (a real kube-apiserver, kstatus, the Argo CD health runner): built when Go is
# on PATH and their sources changed; without Go the tests that need them skip with a message.
HAVE_GO := $(shell command -v go 2>/dev/null)
GO_TOOLS := $(if $(HAVE_GO),control-plane gitops-tools gitops-go-test helm)

test: $(STAMP) lint typecheck $(GO_TOOLS) pytest

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/runnet demo

# The CRDs from the models, and their copy in the Helm chart (Helm installs a chart's crds/ as they are).
crds: $(STAMP)
	$(BIN)/runnet crds
	cp crds/*.runnet.dev.yaml deploy/helm/runnet/crds/

# Not part of make test. BENCH_SCALE sizes the scale run (issue 11 asks for 1,000 gateways + 300 pairs:
# make bench BENCH_SCALE="--gateways 1000 --pairs 300", about 16 minutes on a 2-core machine).
BENCH_SCALE ?= --gateways 62 --pairs 19
bench: $(STAMP)
	$(BIN)/python benchmarks/reconcile.py
	$(BIN)/python -u benchmarks/scale.py $(BENCH_SCALE)

# The state machines for much longer than make test runs them (for the benchmark machine).
soak: $(STAMP)
	RUNNET_SOAK=1 $(BIN)/pytest -q -s tests/operator/test_state_machine.py

# A real kube-apiserver + etcd in one binary, for the tests under tests/realkube (needs Go;
# they skip without it). Rebuilt only when its sources change.
CONTROL_PLANE := tools/bin/kube-control-plane
CONTROL_PLANE_SRC := $(wildcard tools/control-plane/*.go) tools/control-plane/go.mod tools/control-plane/go.sum
# /version reports the release go.mod requires (a plain go build would say v0.0.0-master).
KUBE_VERSION = $(shell awk '$$1 == "k8s.io/kubernetes" && $$2 ~ /^v1[.]/ { print $$2; exit }' tools/control-plane/go.mod)
KUBE_VERSION_PKG := k8s.io/component-base/version

control-plane: $(CONTROL_PLANE)

$(CONTROL_PLANE): $(CONTROL_PLANE_SRC)
	@command -v go >/dev/null || { echo "make control-plane: needs Go (https://go.dev/dl), not found on PATH" >&2; exit 1; }
	cd tools/control-plane && go build -trimpath -o ../bin/kube-control-plane -ldflags "-s -w \
		-X $(KUBE_VERSION_PKG).gitVersion=$(KUBE_VERSION) -X $(KUBE_VERSION_PKG).gitTreeState=clean \
		-X $(KUBE_VERSION_PKG).gitMajor=$(word 1,$(subst ., ,$(KUBE_VERSION:v%=%))) \
		-X $(KUBE_VERSION_PKG).gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION:v%=%)))" .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(TOOLS_BIN)

# GitOps health tooling (Go, built only when its sources change; see README "GitOps"):
# tools/bin/kstatus computes Flux's kstatus of objects, tools/bin/argo-health runs Argo CD health
# scripts in Argo CD's sandbox. tests/gitops builds them through tests/support/gotools.py.
GO ?= go
TOOLS_BIN := tools/bin
GO_SOURCES = $(filter-out %_test.go,$(wildcard tools/$(1)/*.go)) tools/$(1)/go.mod tools/$(1)/go.sum

.PHONY: kstatus argo-health gitops-tools gitops-go-test argocd-health

kstatus: $(TOOLS_BIN)/kstatus
argo-health: $(TOOLS_BIN)/argo-health
gitops-tools: kstatus argo-health

$(TOOLS_BIN)/kstatus: $(call GO_SOURCES,kstatus)
	cd tools/kstatus && $(GO) build -trimpath -o ../bin/kstatus .

$(TOOLS_BIN)/argo-health: $(call GO_SOURCES,argo-health)
	cd tools/argo-health && $(GO) build -trimpath -o ../bin/argo-health .

# The tools' own Go tests (the sandbox has no string/math library, a timeout, List decoding...).
gitops-go-test:
	cd tools/kstatus && $(GO) test -trimpath ./...
	cd tools/argo-health && $(GO) test -trimpath ./...

# Rewrites deploy/argocd/runnet.dev/*/health.lua and argocd-cm-patch.yaml from runnet-health.lua.
argocd-health: $(STAMP)
	$(BIN)/python -m tests.support.argocd

# The real helm CLI for tests/helm (chart lint, template, apply to the real API server): built from its Go
# module at the version tools/helm/go.mod requires (a `tool` directive), only when go.mod changes.
HELM_VERSION = $(shell awk '$$1 == "helm.sh/helm/v3" { print $$2; exit }' tools/helm/go.mod)
# As helm's own Makefile does: the Kubernetes version it assumes (helm template, lint) is client-go's.
HELM_KUBE_MINOR = $(shell awk '$$1 == "k8s.io/client-go" { split($$2, v, "."); print v[2]; exit }' tools/helm/go.mod)
HELM_PKG := helm.sh/helm/v3

helm: $(TOOLS_BIN)/helm

$(TOOLS_BIN)/helm: tools/helm/go.mod tools/helm/go.sum
	@command -v $(GO) >/dev/null || { echo "make helm: needs Go (https://go.dev/dl), not found on PATH" >&2; exit 1; }
	cd tools/helm && $(GO) build -trimpath -o ../bin/helm -ldflags "-s -w -X $(HELM_PKG)/internal/version.version=$(HELM_VERSION) \
		-X $(HELM_PKG)/pkg/chartutil.k8sVersionMajor=1 -X $(HELM_PKG)/pkg/chartutil.k8sVersionMinor=$(HELM_KUBE_MINOR) \
		-X $(HELM_PKG)/pkg/lint/rules.k8sVersionMajor=1 -X $(HELM_PKG)/pkg/lint/rules.k8sVersionMinor=$(HELM_KUBE_MINOR)" \
		$(HELM_PKG)/cmd/helm
