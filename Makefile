.PHONY: run test lint bench bench-ml loadtest replica

run:  ## set up and run web + Celery worker + beat on local defaults
	scripts/run

test:  ## lint, migration and schema checks, tests with coverage (what CI runs)
	scripts/test

bench:  ## seed a large world (own database) and measure home (linear, learned), ingestion, ceiling
	bench/run.sh

bench-ml:  ## the learned models' costs: embeddings, rerank vs ceiling, ALS/LightGBM training
	bench/run.sh ml

loadtest:  ## simulated readers against a running `make run` (LOADTEST_*; docs/BENCHMARKS.md)
	scripts/loadtest

replica:  ## a private primary (127.0.0.1:5442) and its streaming replica (5443) in var/replica
	scripts/replica.sh start && scripts/replica.sh env

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
