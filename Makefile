# The two commands of the README: `make serve` and `make test`. Both install what they need.
.PHONY: serve test lint format typecheck pytest bootstrap

bootstrap:
	@scripts/bootstrap.sh

serve: bootstrap
	.venv/bin/viewfinder serve

# Every check: lint, formatting, types, then the tests.
test: lint typecheck
	.venv/bin/pytest

lint: bootstrap
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

typecheck: bootstrap
	.venv/bin/mypy

format: bootstrap
	.venv/bin/ruff format src tests benchmarks
	.venv/bin/ruff check --fix src tests benchmarks

# Seed 001's face pipelines, with its variables: LIMIT, PERSON_THRESHOLD, UNKNOWN_METHOD,
# MAX_FACES, EPOCHS, MARGIN.
VF := .venv/bin/viewfinder
DUAL_ARGS = $(if $(PERSON_THRESHOLD),--person-threshold $(PERSON_THRESHOLD)) $(if $(UNKNOWN_METHOD),--unknown-method $(UNKNOWN_METHOD)) $(if $(MAX_FACES),--max-faces $(MAX_FACES))
TRAIN_ARGS = $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(MARGIN),--margin $(MARGIN))
.PHONY: faces-backfill faces-cluster-dual faces-assign faces-train-matching faces-stats faces-pipeline-dual faces-pipeline-full

faces-backfill: bootstrap
	$(VF) faces backfill $(if $(LIMIT),--limit $(LIMIT))

faces-cluster-dual: bootstrap
	$(VF) faces cluster-dual $(DUAL_ARGS)

faces-assign: bootstrap
	$(VF) faces assign $(if $(PERSON_THRESHOLD),--person-threshold $(PERSON_THRESHOLD)) $(if $(MAX_FACES),--max-faces $(MAX_FACES))

faces-train-matching: bootstrap
	$(VF) faces train $(TRAIN_ARGS)

faces-stats: bootstrap
	$(VF) faces stats

# detect -> cluster -> stats
faces-pipeline-dual: faces-backfill faces-cluster-dual faces-stats

# detect -> cluster -> train -> re-cluster -> stats
faces-pipeline-full: faces-backfill
	$(VF) faces cluster-dual $(DUAL_ARGS)
	$(VF) faces train $(TRAIN_ARGS)
	$(VF) faces cluster-dual $(DUAL_ARGS)
	$(VF) faces stats

# Seed 001's other targets. `worker` runs background work without an HTTP server (KINDS=embed,faces
# THREADS=2); `db-up` starts compose.yaml's PostgreSQL and S3 server for a Viewfinder run from
# .venv (docs/deployment.md), `db-down` stops the stack.
.PHONY: worker migrate db-up db-down

worker: bootstrap
	$(VF) worker $(if $(KINDS),--kinds $(KINDS)) $(if $(THREADS),--threads $(THREADS))

migrate: bootstrap
	$(VF) db upgrade

db-up:
	docker compose up -d --wait postgres s3

db-down:
	docker compose down
