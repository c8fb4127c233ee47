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

DEMO_CKPT := tests/data/golden_tiny/official_ckpt.pth
DEMO_IMAGES := tests/data/kodim03.png tests/data/kodim15.png tests/data/kodim23.png

quickstart: setup
	$(VENV)/bin/crdr compress $(DEMO_IMAGES) --checkpoint $(DEMO_CKPT) -q 2 -o runs/quickstart/streams
	$(VENV)/bin/crdr decompress runs/quickstart/streams --checkpoint $(DEMO_CKPT) --beta 0,2.56,5.12 \
		-o runs/quickstart/decoded
	$(VENV)/bin/crdr reconstruct $(DEMO_IMAGES) --checkpoint $(DEMO_CKPT) -q 0,2,4 --beta 0,5.12 \
		-o runs/quickstart/grid

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: setup
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

bench: setup
	$(PY) bench/forward.py
	$(PY) bench/codec.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
