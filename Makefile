# The two commands of the README: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

# the main job: build the base and the shipped tuned model, compare them (grouped table, test splits),
# then fine-tune `quick` yourself, which ends with the same base-vs-tuned table
demo: install
	$(VENV)/bin/anlam base build
	$(VENV)/bin/anlam models
	$(VENV)/bin/anlam demo
	$(VENV)/bin/anlam eval base anlam-ml-tr-small --out runs/shipped-eval --overwrite
	$(VENV)/bin/anlam train --preset quick --out runs/quick --overwrite

# types first (seconds), then the tests
test: install
	$(PY) -m mypy
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/encode.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
