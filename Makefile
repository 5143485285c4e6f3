# orca — the two commands: `make sandbox` runs the sandbox cluster, `make test`
# runs every check. Both install what a fresh Debian machine lacks.

CARGO ?= cargo

.PHONY: all build install deps test fmt-check clippy unit test-chaos sandbox crds deploy image clean

all: build

# The product alone: the orca binary, no sandbox code in it.
build:
	$(CARGO) build -p orca --release

# Installs the release binary as $(DESTDIR)$(PREFIX)/bin/orca, with the
# kubectl plugin beside it: kubectl-orca (what `kubectl orca` runs) and
# kubectl_complete-orca (what kubectl >= 1.26 runs to complete `kubectl
# orca <TAB>`), both symlinks to orca, which acts by the name it is run as.
PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin
RELEASE_BIN = $(or $(CARGO_TARGET_DIR),target)/release/orca

install: build
	install -d $(BINDIR)
	install -m 0755 $(RELEASE_BIN) $(BINDIR)/orca
	ln -sf orca $(BINDIR)/kubectl-orca
	ln -sf orca $(BINDIR)/kubectl_complete-orca

# The schemathesis CLI that tests/api_schemathesis.rs runs against the
# API's OpenAPI document, in a venv of its own (gitignored). The test
# checks this version.
SCHEMATHESIS_VERSION = 4.32.5
TEST_VENV = .venv-test
# Real Helm (v4, its Go library) for tests/chart.rs and `make deploy`.
HELM_SDK_VERSION = 0.2.2

# Installs MariaDB (server, client, and mariadb-backup with mbstream for
# the physical copies of tests/replica_repair.rs), nftables (the network-cut
# test), Prometheus with promtool (the metrics test), and Chromium with
# Node.js and npm (the web test, which drives Chromium with
# playwright-core from tests/web/package-lock.json) when missing, and schemathesis in $(TEST_VENV)/ (python3-venv
# from apt when `python3 -m venv` cannot make one). Root runs apt-get
# directly; other users go through sudo.
deps:
	@missing=""; \
	command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server"; \
	command -v mariadb >/dev/null 2>&1 || missing="$$missing mariadb-client"; \
	command -v mariadb-backup >/dev/null 2>&1 && command -v mbstream >/dev/null 2>&1 || missing="$$missing mariadb-backup"; \
	command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing="$$missing nftables"; \
	command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v buildah >/dev/null 2>&1 || missing="$$missing buildah"; \
	command -v umoci >/dev/null 2>&1 || missing="$$missing umoci"; \
	command -v skopeo >/dev/null 2>&1 || missing="$$missing skopeo"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
	  { echo "could not install$$missing"; exit 1; }; \
	fi
	@command -v mariadb-install-db >/dev/null 2>&1 || { echo "mariadb-install-db missing after install"; exit 1; }
	@command -v kubectl >/dev/null 2>&1 || echo "kubectl not found: tests/sandbox_apiserver_kubectl.rs needs it on PATH"
	@if ! $(TEST_VENV)/bin/st --version 2>/dev/null | grep -qF "$(SCHEMATHESIS_VERSION)"; then \
	  echo "installing schemathesis $(SCHEMATHESIS_VERSION) in $(TEST_VENV)/"; \
	  rm -rf $(TEST_VENV); \
	  if ! python3 -m venv $(TEST_VENV) >/dev/null 2>&1; then \
	    rm -rf $(TEST_VENV); \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null && \
	    python3 -m venv $(TEST_VENV) || { echo "could not make a venv in $(TEST_VENV)"; exit 1; }; \
	  fi; \
	  $(TEST_VENV)/bin/pip install -q --disable-pip-version-check "schemathesis==$(SCHEMATHESIS_VERSION)" || \
	    { echo "could not install schemathesis $(SCHEMATHESIS_VERSION)"; exit 1; }; \
	fi
	@if ! $(TEST_VENV)/bin/pip show helm-python-sdk 2>/dev/null | grep -qx "Version: $(HELM_SDK_VERSION)"; then \
	  echo "installing helm-python-sdk $(HELM_SDK_VERSION) in $(TEST_VENV)/"; \
	  $(TEST_VENV)/bin/pip install -q --disable-pip-version-check "helm-python-sdk==$(HELM_SDK_VERSION)" || \
	    { echo "could not install helm-python-sdk $(HELM_SDK_VERSION)"; exit 1; }; \
	fi

	@if [ ! -f tests/web/node_modules/playwright-core/package.json ]; then \
	  echo "installing playwright-core (tests/web/package-lock.json) for the web test"; \
	  (cd tests/web && npm ci --no-audit --no-fund --loglevel=error) || \
	    { echo "could not install playwright-core in tests/web"; exit 1; }; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The whole workspace. The tests that start the sandbox cluster run the
# orca-sandbox binary beside orca, which `cargo test` alone does not
# build: build it first, so it is never missing or stale.
unit:
	$(CARGO) build -p orca-sandbox --bin orca-sandbox
	$(CARGO) test --workspace --all-targets

# The operator's HA tests (tests/operator_ha.rs): minutes long and timing
# bound (leases, kills, a cut proxy), so `#[ignore]`d in the plain run and
# run here one at a time.
test-chaos:
	$(CARGO) build -p orca-sandbox --bin orca-sandbox
	$(CARGO) test --test operator_ha -- --ignored --test-threads=1

test: deps fmt-check clippy unit test-chaos

# The sandbox cluster with the orca operator: a Kubernetes API server, the StatefulSet controller
# and a kubelet running real mariadbd, with a kubeconfig in
# .orca-sandbox/kubeconfig for kubectl. Ctrl-C stops it and every mariadbd
# it started. (`cargo run -p orca-sandbox -- local` runs a bare
# replication topology.)
sandbox: deps
	$(CARGO) build --release -p orca
	$(CARGO) run --release -p orca-sandbox -- --dir .orca-sandbox $(SANDBOX_ARGS)

# Regenerates the CRDs from the Rust types: crds/, the chart's crds/ and
# deploy/crds/.
crds:
	$(CARGO) run -p orca -- crds --write crds/
	$(CARGO) run -p orca -- crds --write charts/orca/crds/
	$(CARGO) run -p orca -- crds --write deploy/crds/

# The plain manifests for `kubectl apply -f deploy/` (and -f deploy/crds/
# first): the chart's defaults rendered by Helm's library, as release
# `orca` in namespace `orca`. tests/chart.rs fails when they are stale.
deploy: deps
	@mkdir -p deploy/crds
	$(CARGO) run -q -p orca -- crds --write deploy/crds/
	@printf '%s\n' '# The orca operator with the chart'"'"'s defaults (make deploy renders it).' \
	  '# kubectl apply -f deploy/crds/ && kubectl apply -f deploy/' \
	  'apiVersion: v1' 'kind: Namespace' 'metadata:' '  name: orca' '---' > deploy/orca.yaml.tmp
	$(TEST_VENV)/bin/python tests/helm/driver.py template charts/orca orca orca '{}' deploy/orca.body.tmp >/dev/null
	@cat deploy/orca.body.tmp >> deploy/orca.yaml.tmp && rm deploy/orca.body.tmp && mv deploy/orca.yaml.tmp deploy/orca.yaml
	@echo "deploy/orca.yaml and deploy/crds/ written"

# The container image from the release binary, built offline with
# buildah (scripts/image.sh, the Dockerfile's `prebuilt` target): an OCI
# layout in target/image/oci, tags dev and the crate version; prints its
# size. (`docker build .` builds the image from the sources instead.)
image:
	$(CARGO) build -p orca --release
	scripts/image.sh target/release/orca

clean:
	$(CARGO) clean
