# The two commands a newcomer runs: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing else is assumed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint bench bench-peers clean

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
	rm -rf $(VENV) .cas .pytest_cache .mypy_cache .ruff_cache
