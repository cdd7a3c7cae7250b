# minios-lab: the two commands of the quick start, and a few more.
#
#   make lab    set up everything, then start JupyterLab on notebooks/
#   make test   set up everything, then run every test (CI runs this)
#   make boot   build the guest and boot it on Xen in QEMU
#
# Set-up is idempotent: a Python virtual environment in .venv, then
# `minios-lab setup` fetches QEMU, the Xen hypervisor and Xen's headers.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 -p no:cacheprovider

.PHONY: setup lab test test-unit test-notebooks boot kernel format format-check clean bench notebooks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(STAMP)
	$(BIN)/minios-lab setup

lab: setup
	$(BIN)/minios-lab lab

test: setup
	$(BIN)/pytest -n 2 $(PYTEST_ARGS) tests
	$(BIN)/pytest $(NBVAL) $(PYTEST_ARGS) notebooks/*.ipynb

test-unit: setup
	$(BIN)/pytest -n 2 $(PYTEST_ARGS) tests

test-notebooks: setup
	$(BIN)/pytest $(NBVAL) $(PYTEST_ARGS) notebooks/*.ipynb

boot: setup
	$(BIN)/minios-lab boot

kernel: setup
	$(MAKE) -C kernel

format format-check:
	$(MAKE) -C kernel $@

bench: setup
	$(BIN)/python scripts/bench_boot.py
	$(BIN)/python scripts/bench_cbuild.py
	$(BIN)/python scripts/bench_page_alloc.py

clean:
	$(MAKE) -C kernel clean
	rm -rf $(VENV) .pytest_cache

# Re-run every notebook from notebooks/src/ and store it with its outputs.
notebooks: setup
	$(BIN)/python scripts/nbgen.py
