# trapflow: `make demo` installs everything and runs the pipeline on the sample images;
# `make test` runs the whole test suite and `make lint` the linters (CI runs both).

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV_VERSION := 0.13.8
# onnxruntime build: cpu (default) or gpu (onnxruntime-gpu, CUDA)
ORT     ?= cpu
# Sample images: any folder works, e.g. make demo SOURCE=/data/card-042
SOURCE  ?= $(abspath ../shared/data/camtrap)
LAYOUT  ?=

# Models come from the mirror; this repo's checkouts use ../shared/models when it exists.
ifneq ($(wildcard ../shared/models),)
export TRAPFLOW_MODEL_MIRROR ?= $(abspath ../shared/models)
endif
export TRAPFLOW_HOME        ?= $(CURDIR)/.trapflow
export PREFECT_HOME         ?= $(CURDIR)/.trapflow/prefect
# Telemetry off for every process (see ../shared/docs/stack-notes.md §0)
export DO_NOT_TRACK=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
export ORT_DISABLE_TELEMETRY=1
export STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

.PHONY: install install-edge demo run test lint marts dashboard prefect-ui deploy worker clean lake-up lake-down

install: $(VENV)/.installed

# uv installs the exact versions of uv.lock (pip would need minutes for the same set).
$(VENV)/.installed: pyproject.toml uv.lock
	@test -x .uv-bootstrap/bin/uv || { $(PYTHON) -m venv .uv-bootstrap && \
	  .uv-bootstrap/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	UV_PROJECT_ENVIRONMENT=$(VENV) .uv-bootstrap/bin/uv sync --frozen --extra $(ORT) --compile-bytecode \
	  --python $(PYTHON)
	@touch $@

# The edge box (docs/edge.md): trapflow without its dependencies, plus exactly the `edge` extra's
# (and `edge-s3`'s with EDGE_S3=1) into EDGE_VENV: no Prefect, dbt, DuckDB or Streamlit.
EDGE_VENV ?= .venv-edge
EDGE_S3   ?=
install-edge:
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(EDGE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $$($(PYTHON) -c \
	  "import tomllib; x = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']; \
	  print(' '.join(x['edge'] + (x['edge-s3'] if '$(EDGE_S3)' else [])))")

# The labelling loop: the run brings in the labels people gave (camtrapR's XMP species tags in
# the sample; {species} folders with LAYOUT), a species head is trained from them and labels
# the photos already stored (docs/training.md).
demo: install
	$(BIN)/trapflow models pull mdlite_yolox_tiny yolox_nano_coco mobilenetv2_12_int8_imagenet \
	  ppocrv4_ocr mobilenetv2_imagenet_features
	$(BIN)/trapflow run --source "$(SOURCE)" --once $(if $(LAYOUT),--layout '$(LAYOUT)',)
	$(BIN)/trapflow train --warehouse "$(TRAPFLOW_HOME)/warehouse.duckdb" --relabel --if-labelled
	$(BIN)/trapflow summary

run: demo

test: install
	$(BIN)/pytest

# What CI runs before the tests: ruff, ruff format and mypy --strict over the three packages
# (models_ml, flows, dashboard: [tool.mypy] packages in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

marts: install
	$(BIN)/trapflow marts

dashboard: install
	$(BIN)/trapflow dashboard

prefect-ui: install
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

# Register the deployments of prefect.yaml on the server at PREFECT_API_URL (start it first:
# `make prefect-ui` in another shell), then run `make worker`.
deploy: install
	-$(BIN)/prefect work-pool create trapflow --type process
	-$(BIN)/prefect concurrency-limit create trapflow-inference 1
	TRAPFLOW_REPO_DIR=$(CURDIR) TRAPFLOW_SOURCE="$(SOURCE)" \
	  TRAPFLOW_WAREHOUSE=$${TRAPFLOW_WAREHOUSE:-$(TRAPFLOW_HOME)/warehouse.duckdb} \
	  $(BIN)/prefect --no-prompt deploy --all

worker: install
	$(BIN)/prefect worker start --pool trapflow

# A PostgreSQL for a DuckLake's catalog (docs/scaling.md): Debian's package
# (apt-get install postgresql), its data in .trapflow/pg, listening on 127.0.0.1:$(LAKE_PG_PORT)
# only, trust authentication for the local user trapflow. Then every worker and the marts
# builder use TRAPFLOW_LAKE='ducklake:postgres:dbname=trapflow_lake host=127.0.0.1
# port=$(LAKE_PG_PORT) user=trapflow' and TRAPFLOW_LAKE_DATA_PATH (a folder or s3:// prefix).
# For other machines, set listen_addresses and password authentication in .trapflow/pg yourself.
LAKE_PG_PORT ?= 5433
LAKE_PG_DIR  := $(abspath $(TRAPFLOW_HOME))/pg
PG_BIN       ?= $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin)))
PG_AS        := $(if $(filter 0,$(shell id -u)),runuser -u postgres --,)

lake-up:
	@test -x "$(PG_BIN)/initdb" || { echo "PostgreSQL is not installed: apt-get install postgresql"; exit 2; }
	@mkdir -p "$(LAKE_PG_DIR)"
	@$(if $(PG_AS),chown postgres "$(LAKE_PG_DIR)",true)
	@test -f "$(LAKE_PG_DIR)/data/PG_VERSION" || $(PG_AS) "$(PG_BIN)/initdb" -D "$(LAKE_PG_DIR)/data" \
	  -A trust -U trapflow -E UTF8 >/dev/null
	@$(PG_AS) "$(PG_BIN)/pg_ctl" -D "$(LAKE_PG_DIR)/data" status >/dev/null || \
	  $(PG_AS) "$(PG_BIN)/pg_ctl" -D "$(LAKE_PG_DIR)/data" -l "$(LAKE_PG_DIR)/server.log" -w \
	  -o "-c listen_addresses=127.0.0.1 -p $(LAKE_PG_PORT) -k $(LAKE_PG_DIR)" start
	@"$(PG_BIN)/psql" -h 127.0.0.1 -p $(LAKE_PG_PORT) -U trapflow -d postgres -tAc \
	  "select 1 from pg_database where datname = 'trapflow_lake'" | grep -q 1 || \
	  "$(PG_BIN)/createdb" -h 127.0.0.1 -p $(LAKE_PG_PORT) -U trapflow trapflow_lake
	@echo "TRAPFLOW_LAKE='ducklake:postgres:dbname=trapflow_lake host=127.0.0.1 port=$(LAKE_PG_PORT) user=trapflow'"

lake-down:
	$(PG_AS) "$(PG_BIN)/pg_ctl" -D "$(LAKE_PG_DIR)/data" -w stop

clean:
	rm -rf .trapflow .pytest_cache .mypy_cache .ruff_cache
