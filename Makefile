# chainsync — run `make help` for the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

IMG ?= chainsync:dev
BIN ?= bin/chainsync
CONTROLLER_GEN := go tool controller-gen
# Directory holding kube-apiserver, etcd and kubectl for envtest; built on first use.
ENVTEST_ASSETS = $(shell hack/envtest.sh | tail -n 1)

.PHONY: all
all: build

##@ Development

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: manifests
manifests: ## Generate the CRDs and the manager's RBAC role from the API and controller markers.
	$(CONTROLLER_GEN) crd rbac:roleName=chainsync-manager paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: ## Generate the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: chart
chart: ## Copy into charts/chainsync what it shares with config/: the CRDs, the roles, the ServiceMonitor.
	cp config/crd/bases/*.yaml charts/chainsync/crds/
	cp config/rbac/role.yaml charts/chainsync/files/manager-role.yaml
	cp config/rbac/cycle_role.yaml charts/chainsync/files/cycle-role.yaml
	cp config/prometheus/monitor.yaml charts/chainsync/files/monitor.yaml

.PHONY: helm
helm: ## Build (or reuse) the pinned helm the chart's tests run; prints its path last.
	@hack/helm.sh

.PHONY: envtest
envtest: ## Build (or reuse) kube-apiserver and etcd; prints the KUBEBUILDER_ASSETS directory last.
	@hack/envtest.sh

.PHONY: test
test: ## Run every test: unit, generated-output staleness, PostgreSQL and envtest integration.
	@hack/ensure-postgres.sh
	@hack/ensure-slapd.sh
	@hack/ensure-radicale.sh
	@hack/ensure-json-server.sh >/dev/null
	@assets=$$(hack/envtest.sh | tail -n 1); \
	KUBEBUILDER_ASSETS="$$assets" go test -count=1 -timeout 30m ./... $(TESTFLAGS)

USERS ?= 10000

PROCS ?= 64

.PHONY: bench-store
bench-store: ## Measure PROCS (64) cycle processes claiming targets in one record store's registry at once.
	go run ./hack/benchstore -procs $(PROCS) $(BENCHFLAGS)

.PHONY: bench-scale
bench-scale: ## Measure N users (USERS=10000, or a sweep: USERS=1000,10000) through a 3-step chain on the local control plane.
	@assets=$$(hack/envtest.sh | tail -n 1); \
	KUBEBUILDER_ASSETS="$$assets" go run ./hack/benchscale -users $(USERS) $(BENCHFLAGS)

ROWS ?= 1000000

.PHONY: bench-items
bench-items: ## Measure one user's export of ROWS rows (ROWS=1000000) against csvdiff and psql \copy (ARGS="-runs 1 -profile DIR").
	@hack/ensure-postgres.sh
	go run ./hack/benchitems -rows $(ROWS) $(ARGS)

##@ Build and run

.PHONY: build
build: ## Build the chainsync binary into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN) .

.PHONY: run-local
run-local: ## Try chainsync: a local control plane, the operator and a demo (ARGS="--fresh --no-demo ...").
	@assets=$$(hack/envtest.sh | tail -n 1); \
	KUBEBUILDER_ASSETS="$$assets" go run . local $(ARGS)

PLUGIN_DIR ?= $(HOME)/.local/bin

.PHONY: install-plugin
install-plugin: build ## Install bin/chainsync into PLUGIN_DIR (~/.local/bin) as kubectl-chainsync, with its completion (kubectl_complete-chainsync).
	install -d $(PLUGIN_DIR)
	install -m 0755 $(BIN) $(PLUGIN_DIR)/chainsync
	ln -sf chainsync $(PLUGIN_DIR)/kubectl-chainsync
	ln -sf chainsync $(PLUGIN_DIR)/kubectl_complete-chainsync

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubeconfig.
	kubectl apply --server-side --field-manager=chainsync-install -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every chainsync object) from the cluster of the current kubeconfig.
	kubectl delete --ignore-not-found -k config/crd

.PHONY: run
run: ## Run the operator against the cluster of the current kubeconfig.
	go run . manager

.PHONY: deploy
deploy: ## Deploy the operator with config/default into the cluster of the current kubeconfig.
	kubectl apply --server-side --field-manager=chainsync-install -k config/default

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .
