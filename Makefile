# blockwise.ebs — every target bootstraps the virtualenv it needs (.venv), from pinned requirements.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv demo test pytest unit sanity lint molecule ee build release-gate bench clean

help:
	@echo "make demo    start the local AWS endpoint, run the demo playbooks against it, stop it"
	@echo "make test    unit + local-endpoint + functional tests (incl. build + install), sanity, lint"
	@echo "make bench   run the benchmarks and regenerate docs/performance.md"
	@echo "make pytest  unit, local-endpoint and functional tests (pytest -n 2)"
	@echo "make sanity  ansible-test sanity (offline)"
	@echo "make lint    ansible-lint --profile production, changelog fragments"
	@echo "make molecule  role scenarios (molecule) against the local AWS endpoint"
	@echo "make ee      write and check the execution environment build context (.build/ee)"
	@echo "make build   ansible-galaxy collection build into .build/dist"
	@echo "make release-gate  galaxy-importer (the Galaxy / Automation Hub import checks) on the built tarball"

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	touch $@

venv: $(STAMP)
	@$(BIN)/python -m tools.collection_link

demo: venv
	$(BIN)/python -m tools.demo

test: venv
	$(MAKE) --no-print-directory pytest sanity lint molecule ee release-gate

pytest: venv
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

unit: venv
	$(BIN)/python -m pytest -q tests/unit

sanity: venv
	$(BIN)/python tools/sanity.py

lint: venv
	$(BIN)/ansible-lint --profile production --offline -q
	$(BIN)/antsibull-changelog lint

molecule: venv
	$(BIN)/python tools/molecule.py

ee: venv
	$(BIN)/python tools/ee_check.py

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist

# galaxy-importer pins its own dependencies: it gets a virtualenv of its own, from
# tools/requirements/importer.txt. Configuration (no containers): tools/galaxy-importer.cfg.
IMPORTER := .build/venv-importer
$(IMPORTER)/.installed: tools/requirements/importer.txt
	test -x $(IMPORTER)/bin/python || $(PYTHON) -m venv $(IMPORTER)
	$(IMPORTER)/bin/python -m pip install --quiet -r tools/requirements/importer.txt
	touch $@

release-gate: build $(IMPORTER)/.installed
	GALAXY_IMPORTER_CONFIG=tools/galaxy-importer.cfg $(IMPORTER)/bin/python -m galaxy_importer.main \
	    $$(ls -t .build/dist/blockwise-ebs-*.tar.gz | head -1) > .build/importer.log 2>&1 \
	    || { cat .build/importer.log; exit 1; }
	@if grep -E "^(WARNING|ERROR)" .build/importer.log; then echo "galaxy-importer: fix the findings above"; exit 1; fi
	@echo "galaxy-importer: the tarball imports cleanly (log: .build/importer.log)"

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf .build tests/output *.tar.gz
