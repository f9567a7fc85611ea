# Set-up-and-go targets for a fresh machine (README.md shows the two that matter).
#   make demo   install into .venv, then run the main job (the Micius link budget along a pass)
#   make test   install into .venv, then lint and run the test suite
#   make bench  install into .venv, then run the performance benchmarks
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

# torch is pinned to the CPU build that lies on local disk (2.13.0); installing it first keeps
# pip from resolving an unpinned torch to a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/qntwin link-budget --preset micius-2017 --range-km 600,800,1000,1200

lint: install
	$(BIN)/ruff check twin actors tests benchmarks

test: install lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

bench: install
	OMP_NUM_THREADS=1 $(BIN)/qntwin bench physics
	OMP_NUM_THREADS=1 $(BIN)/qntwin bench engine
	OMP_NUM_THREADS=1 $(BIN)/qntwin bench bus
	OMP_NUM_THREADS=1 $(BIN)/qntwin bench runtime

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
