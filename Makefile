# The two README commands: `make run` (example project on the embedded S3 server)
# and `make test` (ruff, mypy and the whole pytest suite, real S3 server included).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest matrix wheel s3server clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@test -f .env || { cp .env.example .env && echo "Created .env from .env.example (local demo values; edit .env to change them)."; }
	$(PY) manage.py rundemo

s3server: $(STAMP)
	$(PY) manage.py dualstorage_localserver

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy dual_storage_app example_project tests bench scripts

# The whole suite on SQLite, then its database tests on PostgreSQL when a server is
# available (scripts/pytest_on_postgres.py says which database each pass ran on). First,
# django-storages' sdist (its own S3 tests, run against our storages) is fetched from
# PyPI, so no test makes a request beyond loopback.
pytest: $(STAMP)
	$(PY) scripts/fetch_django_storages_tests.py
	$(VENV)/bin/pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)
	$(PY) scripts/pytest_on_postgres.py $(PYTEST_ARGS)

test: lint typecheck pytest

# The version matrix (noxfile.py): each (Python, Django) combination, the floors (every
# runtime dependency at its declared lower bound) and the wheel check; `$(VENV)/bin/nox -l`
# lists the sessions. NOX_ARGS picks some, e.g. NOX_ARGS="-t ci" (all but `make test`'s).
matrix: $(STAMP)
	$(VENV)/bin/nox $(NOX_ARGS)

# Build the sdist and wheel, check them and run a user's project on the installed wheel.
wheel: $(STAMP)
	$(VENV)/bin/nox -s wheel

clean:
	rm -rf $(VENV) var .nox .pytest_cache .mypy_cache .ruff_cache .coverage
