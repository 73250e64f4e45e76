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

.PHONY: help venv demo test pytest unit sanity lint molecule ee build bench clean

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
	$(MAKE) --no-print-directory pytest sanity lint molecule ee

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

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf .build tests/output *.tar.gz
