# The two commands a newcomer runs: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing else is assumed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint bench bench-peers mutants clean

$(VENV)/.base: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "casstore needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	@touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) -e '.[test]'
	@touch $@

demo: $(VENV)/.base
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

bench: $(VENV)/.test
	$(PY) -m benchmarks

# Mutation testing of the modules that guard bytes ([tool.mutmut] in pyproject.toml,
# docs/MUTANTS.md): every mutant run against the fast tests that reach it. A mutant that
# hangs a test counts as killed (the suite noticed); one no test reaches counts against it.
mutants: $(VENV)/.test
	$(PIP) -e '.[mutants]'
	rm -rf mutants
	$(VENV)/bin/mutmut run
	$(VENV)/bin/mutmut export-cicd-stats >/dev/null
	@$(PY) -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); \
		print("killed %d of %d (%d survived, %d reached by no test; list: mutmut results)" \
		% (s["killed"] + s["timeout"], s["total"], s["survived"], s["no_tests"]))'

# The peers benchmarks compare with: restic and borg from Debian, DVC from PyPI in its
# own environment (.venv-peers). Optional: `make bench` skips peers that are missing.
bench-peers:
	@command -v restic >/dev/null && command -v borg >/dev/null || \
		{ $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q restic borgbackup || \
		  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q && \
		    $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q restic borgbackup; }; }
	@test -x .venv-peers/bin/dvc || { $(PYTHON) -m venv .venv-peers && \
		.venv-peers/bin/python -m pip install --quiet --disable-pip-version-check dvc; }
	@restic version && borg --version && .venv-peers/bin/dvc --version

clean:
	rm -rf $(VENV) .cas .pytest_cache .mypy_cache .ruff_cache mutants
