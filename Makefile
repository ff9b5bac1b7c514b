# Two commands for a newcomer: `make demo` and `make test`. Everything else here serves them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-nodeps.txt | cksum | cut -d' ' -f1)
# llama.cpp compiles from source once; use both cores
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# packages whose declared dependencies we don't want (see the file's comments)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/doppel reply --audio assets/question.ogg --user demo --out out/demo-reply.ogg

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) out var
