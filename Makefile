# The README's two commands: `make train` and `make test`. Each sets up .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train test test-fast lint bench wheel-smoke docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	# torch first, pinned: a bare range would pull gigabytes of CUDA packages here.
	$(PY) -m pip install --quiet torch==2.13.0
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(PY) experiments/train.py $(ARGS)

test: $(STAMP) lint
	$(PY) -m pytest $(ARGS)

# The inner loop: every test not marked slow (a few minutes); `make test` still runs them all.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/world_step.py

wheel-smoke: $(STAMP)
	bash .ci/wheel_smoke.sh

# The manual: reference pages written from the code, then the site built strictly into site/.
docs: $(STAMP)
	$(PY) docs/generate.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
