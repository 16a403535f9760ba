# The two ways in (see README): `make demo` and `make test`. Both build their own
# virtual environment in .venv from PyPI on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test lint install system-packages clean

# The studio's canvas and the JupyterLab extension are bundled from npm during the install
# (hatch_build.py and hatch-jupyter-builder).
JS_SOURCES := hatch_build.py extension/studio-canvas/package.json extension/studio-canvas/package-lock.json \
	$(wildcard extension/studio-canvas/src/*.js) extension/package.json $(wildcard extension/src/*.ts)

$(VENV)/.installed: pyproject.toml $(JS_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,examples,report,studio,dask,jupyter,scheduler]"
	touch $@

install: $(VENV)/.installed

# Runs the example pipeline, then serves the studio on its folder (Ctrl-C stops it).
demo: system-packages install
	$(VENV)/bin/nbflow run notebooks/wine_classifier.ipynb
	$(VENV)/bin/nbflow studio notebooks

lint: install
	$(VENV)/bin/ruff check nbflow tests benchmarks

system-packages:
	.ci/install-system-packages

test: system-packages install lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache notebooks/.nbflow
