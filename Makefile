.PHONY: run test demo-load bench-core loadtest httpbench httpbench-e2e httpbench-batch lint

# Development, said explicitly: unset, manage.py and celery load the production settings.
export DJANGO_SETTINGS_MODULE ?= settings.dev

run:            ## the whole exchange with demo data (Ctrl-C stops it)
	scripts/run.sh

test:           ## the whole test suite (as CI runs it)
	scripts/test.sh

demo-load:      ## a gentle stream of random orders for the running demo
	.venv/bin/python manage.py demo_load --rate 20

bench-core:     ## the matching core micro-benchmark
	.venv/bin/python bench/core_bench.py --commands 200000

loadtest:       ## the pipeline benchmark against the naive pipeline (see docs/BENCHMARKS.md)
	.venv/bin/python manage.py loadtest --orders 50000 --rate 0 --compare naive --json var/loadtest.json

httpbench:      ## orders over HTTP, signed, against gunicorn and a matcher (see docs/BENCHMARKS.md)
	.venv/bin/python manage.py httpbench --rates 500,0 --duration 20 --profile --json var/httpbench.json

httpbench-e2e:  ## single-order POSTs, open loop at 500/s: HTTP and end-to-end (commit) latency per order
	.venv/bin/python manage.py httpbench --open-loop --rates 500 --duration 20 --json var/http-e2e.json --plot var/http-e2e.png

httpbench-batch: ## batches of 50 over HTTP, open loop: accepted orders/s through the batch route
	.venv/bin/python manage.py httpbench --open-loop --batch 50 --rates 40,100 --duration 20 --connections 16 --json var/http-batch.json --plot var/http-batch.png

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports
