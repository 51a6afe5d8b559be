# Two commands do everything on a fresh machine with Python >= 3.10:
#   make demo   create .venv, install retinaseg, run the demo on synthetic OCT data
#   make test   install the test extras and run the test suite
# GPU users pick their PyTorch build, e.g.
#   make demo TORCH="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files make re-runs instant until pyproject.toml or TORCH changes.
$(VENV)/.installed-torch: | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	echo "$(TORCH)" > $@

$(VENV)/.installed: pyproject.toml $(VENV)/.installed-torch
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/retinaseg demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_output .pytest_cache
