# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# TORCH picks the torch build: the default is a plain pin (a CPU wheel where one is cached locally;
# on a GPU machine use e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/syncos: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev,diffusers]"
	touch $@

# One thread: toyworld's and the tiny test models' operations are too small to gain from more,
# and on a shared 2-core machine extra threads cost up to 10x.
demo: $(BIN)/syncos
	OMP_NUM_THREADS=1 $(BIN)/syncos generate examples/ball_story.yaml -o out/demo --gif

test: $(BIN)/syncos
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(BIN)/syncos
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) out
