# Set-up is part of every target: a fresh clone needs only `make bench` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The nvcc on PATH here is a wrapper script: torch guesses the toolkit folder wrong without this.
export CUDA_HOME ?= /usr/local/cuda
export TORCH_CUDA_ARCH_LIST ?= 8.0;9.0
export MAX_JOBS ?= 2

.PHONY: install test test-all bench
.DEFAULT_GOAL := test

$(VENV)/.deps:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 numpy ninja pytest hypothesis expecttest tqdm matplotlib
	touch $@

# pip rebuilds the extension when csrc/ changes.
install: $(VENV)/.deps
	$(PY) -m pip install -q --no-build-isolation -e .

# pytest exits 5 when a selection runs no test: not a failure.
test: install
	$(PY) -m pytest -q -m "not slow" tests || [ $$? -eq 5 ]

test-all: install
	$(PY) -m pytest -q tests || [ $$? -eq 5 ]

bench: install
	$(PY) -m fastrnn.bench
