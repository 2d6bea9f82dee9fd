# Everything a newcomer needs: `make run` serves the API locally, `make test` runs all tests.
# Both create the virtualenv (.venv, Python 3.13 like the Lambda runtime) on first use.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
PY := $(BIN)/python
PORT ?= 3000
MOTO_PORT ?= 5055
PYTEST_ARGS ?=

export PATH := $(CURDIR)/$(BIN):$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv checkov run test bench bulk bulk-job build validate deploy events models text-model publish-models rollout-report smoke clean docs docs-build

help:
	@echo "make run             serve the API on http://127.0.0.1:$(PORT) (S3 emulated by moto)"
	@echo "make test            run every test"
	@echo "make checkov         install checkov (the template scan) in .venv-checkov; make test does it"
	@echo "make bench           run the benchmarks, print their tables, chart docs/performance.png"
	@echo "make bulk [MODEL=user_churn ROWS=100000]  a bulk scoring job on moto's Step Functions, the worker in Docker"
	@echo "make bulk-job STACK=onnx-prediction-api BULK_ARGS='--model ... --input s3://... --output s3://...'  a job on a deployed stack"
	@echo "make build           sam build"
	@echo "make validate        sam validate --lint"
	@echo "make events          regenerate events/ from sam local generate-event"
	@echo "make models          rebuild models/ (installs the training-only requirements)"
	@echo "make text-model      convert all-MiniLM-L6-v2 to ONNX (FP32 + INT8) in .local/text-model/ (cached)"
	@echo "make deploy          sam build + sam deploy --guided (asks, then saves answers in samconfig.toml)"
	@echo "make publish-models [STACK=onnx-prediction-api | BUCKET=name] [PREFIX=models/]  upload models/"
	@echo "make rollout-report [STACK=onnx-prediction-api | BUCKET=name] [SINCE=YYYY-MM-DD]  the run records, per model version"
	@echo "make smoke URL=http://127.0.0.1:3000 TOKEN=... [SMOKE_ARGS=--sam-local]  check a running API (make run, sam local, deployed)"
	@echo "make docs            serve the documentation site on http://127.0.0.1:8000 (mkdocs serve, reloads on edits)"
	@echo "make docs-build      build the documentation site with mkdocs build --strict into .local/site"

$(BIN)/.installed: requirements-dev.txt layers/prediction/requirements.txt requirements-docs.txt
	@test -x $(PY) || "$$(scripts/find-python.sh 3.13)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements-docs.txt
	@touch $@

venv: $(BIN)/.installed

# checkov (template scan, tests/template) pins a boto3 that aws-sam-cli's pin excludes: own venv.
$(CHECKOV_VENV)/bin/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || "$$(scripts/find-python.sh 3.13)" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

checkov: $(CHECKOV_VENV)/bin/.installed

run: venv
	$(PY) scripts/local_api.py --port $(PORT) --moto-port $(MOTO_PORT)

test: venv checkov
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) -m pip install --quiet -r bench/requirements.txt
	cd bench && ../$(PY) run_all.py

# A demo bulk job locally: the state machine on moto's Step Functions interpreter, the real functions in
# Docker (scripts/local_bulk.py), a dataset of ROWS rows built from the shipped models' data.
MODEL ?= user_churn
ROWS ?= 100000
bulk: venv
	$(PY) scripts/local_bulk.py --model "$(MODEL)" --rows "$(ROWS)"

# A bulk job on a deployed stack (scripts/bulk.py --help lists BULK_ARGS), followed with a progress bar.
bulk-job: venv
	$(PY) scripts/bulk.py --stack "$(STACK)" $(BULK_ARGS)

build: venv
	sam build

validate: venv
	sam validate --lint

events: venv
	$(PY) scripts/generate_events.py

models: venv
	$(PY) -m pip install --quiet -r models/requirements-train.txt
	$(PY) models/build_models.py
	$(PY) models/build_text_model.py

text-model: venv
	$(PY) models/build_text_model.py

deploy: venv
	sam build
	sam deploy --guided

STACK ?= onnx-prediction-api
publish-models: venv text-model
	$(PY) scripts/publish_models.py $(if $(BUCKET),--bucket "$(BUCKET)",--stack "$(STACK)") --prefix "$(or $(PREFIX),models/)" \
		--text-models .local/text-model

# Requests, errors, latency and shadow disagreement per model version, from the run records in S3.
rollout-report: venv
	$(PY) scripts/rollout_report.py $(if $(BUCKET),--bucket "$(BUCKET)",--stack "$(STACK)") $(if $(SINCE),--since "$(SINCE)")

# The seed documents' requests and the v2 protocol (tritonclient) against any running API
# (SMOKE_ARGS: more options of scripts/smoke.py, e.g. --sam-local, --record). The token is not echoed.
smoke: venv
	@test -n "$(URL)" || { echo "make smoke needs URL=<base URL>, e.g. URL=http://127.0.0.1:3000 or URL=https://<id>.execute-api.<region>.amazonaws.com" >&2; exit 2; }
	@test -n "$(TOKEN)" || { echo "make smoke needs TOKEN=<bearer token>, e.g. TOKEN=\$$(cat .local/api-token) for make run" >&2; exit 2; }
	@$(PY) scripts/smoke.py --url "$(URL)" --token "$(TOKEN)" $(SMOKE_ARGS)

clean:
	rm -rf .aws-sam .local .pytest_cache

# The documentation site (mkdocs.yml, docs/); docs/benchmarks.md is written by make bench.
docs: venv
	mkdocs serve -a 127.0.0.1:8000

docs-build: venv
	mkdocs build --strict --site-dir .local/site
