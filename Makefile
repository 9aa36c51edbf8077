# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install retro if needed.
VENV ?= .venv
PYTHON ?= python3
# The CPU build of PyTorch (on this project's machines pip takes it from local disk); override for CUDA.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.retro-installed

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(STAMP)
	# --overwrite: each run replaces the previous run's table and plot in demo-output
	$(BIN)/retro demo --out demo-output --overwrite

test: $(STAMP) lint
	# One worker per core of the 2-core CI machine, one thread each (two threads per worker oversubscribe it).
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
