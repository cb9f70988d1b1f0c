# attnrnn: `make demo` and `make test` work on a fresh machine from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := attnrnn tests benchmarks

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

# torch is installed first and pinned by constraints.txt: a bare `torch`
# requirement would make pip download a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,word2vec]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/attnrnn demo

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy attnrnn

test: lint
	$(BIN)/pytest

# benchmarks/results/speed.json: the speed figures of issue 6, attnrnn beside a plain
# reference in one run. They need the trained Multi30k De->En run (the first line reuses
# it when benchmarks/cache holds it, otherwise trains it: about 90 minutes) and the data
# in ../shared/data. Run it alone on the machine.
bench: $(STAMP)
	@# the trained Multi30k run that the speed benchmark decodes with (trained once)
	test -d benchmarks/cache/multi30k_de_en/run/best || $(BIN)/python benchmarks/multi30k.py --direction de-en
	$(BIN)/python benchmarks/speed.py --threads 1

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache
