# make setup : create .venv/ with the package, its CPU runtime and the test tools
# make lab   : setup, then JupyterLab on notebooks/
# make test  : setup, the import contracts (lint-imports), then the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# cpu -> onnxruntime, gpu -> onnxruntime-gpu (they install the same module; pick one)
ORT    ?= cpu
PYTEST_ARGS ?=

.PHONY: setup lab test test-fast clean

$(VENV)/.installed-$(ORT): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	@if [ "$(ORT)" = "gpu" ]; then $(PY) -m pip uninstall --quiet -y onnxruntime || true; fi
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(ORT),test]"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(VENV)/.installed-$(ORT)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache
