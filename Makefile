.PHONY: run test lint bench

run:  ## set up and run web + Celery worker + beat on local defaults
	scripts/run

test:  ## lint, migration and schema checks, tests with coverage (what CI runs)
	scripts/test

bench:  ## seed a large world (own database) and measure home, ingestion, ceiling (~3-6 min)
	bench/run.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
