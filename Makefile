.PHONY: run test demo-load bench-core loadtest httpbench lint

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

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports
