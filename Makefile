# crdr: `make quickstart` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: setup test test-fast quickstart lint format bench clean

setup: $(STAMP)

# torch/torchvision are pinned in pyproject.toml; on our machines pip takes them from local disk.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -n $(JOBS) tests

test-fast: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow" tests

QUICKSTART := runs/quickstart
DEMO_IMAGES := tests/data/kodim03.png tests/data/kodim15.png tests/data/kodim23.png

# Trains a small CRDR on the bundled images (stage-3 recipe, ~2-3 min on 2 CPU cores), validates
# it, exports it, compresses the demo images at q=2 and decodes them at three realism levels
# (runs/quickstart/train/demo), then draws a q x beta grid with the real codec's CLI.
quickstart: setup
	rm -rf $(QUICKSTART)/train
	$(VENV)/bin/crdr-train experiment=quickstart
	$(VENV)/bin/crdr reconstruct $(DEMO_IMAGES) --checkpoint $(QUICKSTART)/train/generator.safetensors \
		-q 0,2,4 --beta 0,5.12 -o $(QUICKSTART)/grid

lint: setup
	$(VENV)/bin/ruff check src tests bench fuzz experiments
	$(VENV)/bin/ruff format --check src tests bench fuzz experiments

format: setup
	$(VENV)/bin/ruff check --fix src tests bench fuzz experiments
	$(VENV)/bin/ruff format src tests bench fuzz experiments

bench: setup
	$(PY) bench/forward.py
	$(PY) bench/codec.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
