# Two commands do everything on a fresh machine with Python >= 3.11:
#   make demo   create .venv, install retinaseg, run the demo on synthetic OCT data
#   make test   install the test extras, check lint/format/types, run the test suite
# Both install the exact versions in requirements.lock (the ones the tests passed with).
# GPU users pick their PyTorch build, e.g.
#   make demo TORCH="torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cu128"
# (torch itself is not in the lock; one whose requirements disagree with it needs make lock TORCH=...)
# Maintainers:
#   make lock          rewrite requirements.lock with the newest versions pyproject.toml allows
#   make test-latest   run the tests on the newest allowed versions (.venv-latest), to see drift early
# PYTEST_ARGS selects tests, e.g. make test PYTEST_ARGS=tests/test_io_oct_files.py

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin
LOCK := requirements.lock
LOCK_VENV := .venv-lock
LATEST_VENV := .venv-latest
# Left out of the lock: pip (the installer), torch (comes from TORCH) and CUDA-only packages
# (only GPU builds have them).
UNLOCKED := ^(pip|torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==
# The pinned numpy and scipy need Python 3.11; say so before pip fails on a missing wheel.
CHECK_PYTHON := $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	|| { echo "retinaseg needs Python >= 3.11: pass one with PYTHON=python3.11" >&2; exit 1; }

.PHONY: demo test lint install lock test-latest clean

# A different TORCH than the one installed redoes the torch step (and so the install after it).
ifneq ($(strip $(shell cat $(VENV)/.installed-torch 2>/dev/null)),$(strip $(TORCH)))
.PHONY: $(VENV)/.installed-torch
endif

%/bin/python:
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $*

# Stamp files make re-runs instant until pyproject.toml, requirements.lock or TORCH changes.
# torch itself is not in the lock, but the packages it pulls in (sympy, networkx ...) are.
$(VENV)/.installed-torch: $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(LOCK) $(TORCH)
	echo "$(TORCH)" > $@

$(VENV)/.installed: pyproject.toml $(LOCK) $(VENV)/.installed-torch
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev,dask,onnx]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/retinaseg demo

# Lint, format and type checks run first: CI calls make test.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# $(call fresh_venv,DIR): a new venv with TORCH and the newest versions pyproject.toml allows.
# New each time, as an upgrade in place (--upgrade-strategy eager) would also replace TORCH.
define fresh_venv
	rm -rf $(1)
	$(MAKE) --no-print-directory $(1)/bin/python
	$(1)/bin/python -m pip install --quiet $(TORCH)
	$(1)/bin/python -m pip install --quiet -e ".[dev,dask,onnx]"
endef

# The lock is a freeze of such a venv; .venv is not touched.
lock:
	$(call fresh_venv,$(LOCK_VENV))
	$(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable > $(LOCK_VENV)/freeze.txt
	{ echo "# Exact versions of every retinaseg dependency, transitive included, as a pip constraints"; \
	  echo "# file (pip install -c requirements.lock ...) for make demo, make test and CI."; \
	  echo "# Made by make lock with TORCH=$(TORCH) on $$($(LOCK_VENV)/bin/python -c \
	    'import platform as p; print(p.python_implementation(), p.python_version() + ",", p.system(), p.machine())')"; \
	  echo "# from a fresh venv with the newest versions pyproject.toml allows (pip freeze --all),"; \
	  echo "# less pip, torch itself and CUDA-only packages (nvidia-*, triton, cuda-*), so any TORCH build"; \
	  echo "# whose own requirements allow these pins installs with it. Do not edit by hand."; \
	  grep -v -i -E '$(UNLOCKED)' $(LOCK_VENV)/freeze.txt; \
	} > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf $(LOCK_VENV)

# Not in CI: the tests on the newest allowed versions, in a .venv-latest made anew on every run.
test-latest:
	$(call fresh_venv,$(LATEST_VENV))
	$(LATEST_VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV) demo_output .pytest_cache
