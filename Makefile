# The two commands of the README: `make serve` and `make test`. Both install what they need.
.PHONY: serve test lint format typecheck pytest bootstrap

bootstrap:
	@scripts/bootstrap.sh

serve: bootstrap
	.venv/bin/viewfinder serve

# Every check: lint, formatting, types, then the tests.
test: bootstrap
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/mypy
	.venv/bin/pytest

format: bootstrap
	.venv/bin/ruff format src tests benchmarks
	.venv/bin/ruff check --fix src tests benchmarks
