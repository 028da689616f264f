# One command to try it, one to test it. Nothing here needs PostgreSQL or Redis.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= amazon,google,azure,snowflake,postgres,celery,sandbox,test,segment,alerts,salesforce,databricks,zendesk
PYTEST_ARGS ?=

.PHONY: venv demo demo-stop test lint bench clean

$(BIN)/airflow: pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(PYTHON) -m uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(PYTHON) -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[$(EXTRAS)]"
	touch $(BIN)/airflow

venv: $(BIN)/airflow

demo: venv
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf .demo build dist *.egg-info
