# minios-lab: the two commands of the quick start, and a few more.
# `make` alone lists them (the `##` comments below are that list).
#
# Set-up is idempotent and starts with the system: `python3 -m
# minios_lab.build.sysdeps` installs the Debian packages the kit needs (as root;
# otherwise it names the one command to run and stops). Then a Python
# virtual environment in .venv, then `minios-lab setup` fetches the Xen
# hypervisor, Xen's headers and the Linux dom0 that domU boots run beside.
# A step that fails leaves nothing half-made.

# Debian's own Python: python3-venv and python3-dev (installed by sysdeps)
# belong to it, and the stored notebooks record its version, so JupyterLab
# finds nothing to rewrite when a learner on Debian 12 opens one.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV := .venv
# Python's bytecode cache on, even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE=1): test workers, grader workers, the CLI and
# Jupyter kernels each start a Python that would otherwise compile the kit
# and pytest's rewritten tests anew (about 2 s per test worker). Empty
# counts as unset.
export PYTHONDONTWRITEBYTECODE :=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 -p no:cacheprovider
# Unit tests: three workers on two cores, test by test (many tests wait
# for QEMU, gcc or a Jupyter kernel, so a third keeps both cores busy); a
# worker that runs out takes half of another's queue (worksteal: 163 s
# here against 183 s for xdist's default, whose last worker ran on alone
# for 40 s); what several tests only read (a booted guest, a graded
# hand-out, the site) is made once per run and shared by the workers
# (tests/conftest.py, made_once). Notebooks: one whole notebook per worker
# (cells run in order), three workers alone (45 s here against 57 s for
# two); `make test` runs them beside the unit tests with two workers
# (scripts/run_tests.py), as it ends sooner than one run after the other.
UNIT_WORKERS := -n 3 --dist worksteal
NB_WORKERS := -n 3 --dist loadfile
NB_BESIDE_WORKERS := -n 2 --dist loadfile

.PHONY: help system setup lab test test-unit test-notebooks boot debug kernel format format-check clean bench notebooks site

help: ## list the targets (this)
	@sed -n 's/^\([a-z-]*\):.*## \(.*\)$$/  make \1\t\2/p' $(MAKEFILE_LIST) | expand -t 24

lab: setup ## set up everything, then start JupyterLab on notebooks/
	$(BIN)/minios-lab lab

test: setup ## set up everything, then run every test and nbval beside them (CI runs this)
	$(BIN)/python scripts/run_tests.py \
	  $(BIN)/pytest $(UNIT_WORKERS) $(PYTEST_ARGS) tests --- \
	  $(BIN)/pytest $(NB_BESIDE_WORKERS) $(NBVAL) $(PYTEST_ARGS) notebooks/*.ipynb

test-unit: setup ## the pytest tests only, not the notebooks
	$(BIN)/pytest $(UNIT_WORKERS) $(PYTEST_ARGS) tests

test-notebooks: setup ## nbval over every notebook only
	$(BIN)/pytest $(NB_WORKERS) $(NBVAL) $(PYTEST_ARGS) notebooks/*.ipynb

boot: setup ## build the guest and boot it on Xen in QEMU, streaming its console
	$(BIN)/minios-lab boot

debug: setup ## boot the guest under gdb (minios-lab debug)
	$(BIN)/minios-lab debug

kernel: setup ## build the guest image kernel/build/minios.elf
	$(MAKE) -C kernel

format: ## format the kernel's C with clang-format
	$(MAKE) -C kernel $@

format-check: ## check the kernel's C formatting (clang-format)
	$(MAKE) -C kernel $@

bench: setup ## the benchmark scripts behind the README's numbers
	$(BIN)/python scripts/bench_boot.py
	$(BIN)/python scripts/bench_cbuild.py
	$(BIN)/python scripts/bench_page_alloc.py

clean: ## remove the guest build and .venv
	$(MAKE) -C kernel clean
	rm -rf $(VENV) .pytest_cache

# The system packages (root: installed; otherwise: the command to run).
system: ## install the Debian packages the kit needs (root or sudo)
	@$(PYTHON) -m minios_lab.build.sysdeps

setup: ## set up .venv, the Python packages, Xen, its headers, the domU's dom0; build the guest and host units once
	@$(PYTHON) -m minios_lab.build.sysdeps
	@[ ! -x $(BIN)/python ] || [ "$$($(BIN)/python -c 'import sys; print(sys.version)')" = "$$($(PYTHON) -c 'import sys; print(sys.version)')" ] || { \
	  echo "minios-lab: $(VENV) was made by another Python than $(PYTHON); making it again"; rm -rf $(VENV); }
	@$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/minios-lab setup

# The virtual environment; a failed step removes what it half-made (the
# stamp is written last, so a failed install is retried by the next make).
$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || rm -rf $(VENV)
	@echo "minios-lab: installing the kit into $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "minios-lab: '$(PYTHON) -m venv' failed; removed the half-made $(VENV). Fix the cause above, then make again." >&2; exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip && \
	 $(BIN)/python -m pip install --quiet -e '.[test]' || { rm -f $@; \
	  echo "minios-lab: pip install failed (above); make again retries it." >&2; exit 1; }
	@touch $@

# The course as a static website (stored notebooks, nothing executed).
site: setup ## build the course as a static website in site/ (open site/index.html)
	$(BIN)/python -m minios_lab.notebook.site site

# Re-run every notebook from notebooks/src/ and store it with its outputs.
notebooks: setup ## re-run every notebook from notebooks/src/, store outputs
	$(BIN)/python scripts/nbgen.py

# --- grading (engineer D): xv6-style `make grade`, `make grade-03`.
# Grades the tree you are in with the kit's own checks; GRADE_ARGS adds
# options, e.g. make grade GRADE_ARGS="--json grade.json".
GRADE_ARGS ?=
.PHONY: grade
grade: setup ## grade the tree you are in, like the instructor (make grade-03: one chapter)
	$(BIN)/minios-lab grade $(GRADE_ARGS)

grade-%: setup
	$(BIN)/minios-lab grade --chapter $* $(GRADE_ARGS)
