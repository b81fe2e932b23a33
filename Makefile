# The two commands: `make run` (the whole stack on this machine) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test package bench clean

$(STAMP): requirements.txt requirements-dev.txt client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip < 26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m infra.local

# One embedded stack per worker (each binds a free port); whole files per worker keep
# module fixtures (a served API, a `make run` process) started once. Three workers on two cores:
# tests wait on polls, retries and subprocesses often enough that a third keeps both cores busy.
test: $(STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile

package: $(STAMP)
	$(BIN)/python -m infra.package build/package

bench: $(STAMP)
	$(BIN)/python -m bench $(NAMES)

clean:
	rm -rf build .pytest_cache
