.PHONY: run test lint

run:  ## set up and run web + Celery worker + beat on local defaults
	scripts/run

test:  ## lint, migration and schema checks, tests with coverage (what CI runs)
	scripts/test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
