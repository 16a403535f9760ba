# The two ways in (see README): `make demo` and `make test`. Both build their own
# virtual environment in .venv from PyPI on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test lint install system-packages clean

$(VENV)/.installed: pyproject.toml extension/package.json $(wildcard extension/src/*.ts)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,examples,jupyter]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/nbflow graph notebooks/wine_classifier.ipynb
	$(VENV)/bin/nbflow plan notebooks/wine_classifier.ipynb

lint: install
	$(VENV)/bin/ruff check nbflow tests benchmarks

system-packages:
	.ci/install-system-packages

test: system-packages install lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache notebooks/.nbflow
