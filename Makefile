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
DEMO_IMAGES := src/crdr/package_data/images
CRDR := $(VENV)/bin/crdr
# crdr-tiny (shipped, docs/models/crdr-tiny.md) on the three demo Kodak images, CPU, about 2 minutes:
# real bitstreams at q 0 and 4 decoded at beta 0 and 5.12; an evaluation of q 0..4 x beta {0, 2.56, 5.12}
# with its RD plot and a q x beta grid of a 256 x 384 crop of kodim03 (wall and shadow, at native size);
# then 200 stage-3 iterations fine-tuning crdr-tiny.
quickstart: setup
	rm -rf $(QUICKSTART)
	$(CRDR) models
	$(CRDR) compress $(DEMO_IMAGES) --checkpoint crdr-tiny -q 0 -o $(QUICKSTART)/streams/q0
	$(CRDR) compress $(DEMO_IMAGES) --checkpoint crdr-tiny -q 4 -o $(QUICKSTART)/streams/q4
	$(CRDR) decompress $(QUICKSTART)/streams --checkpoint crdr-tiny --beta 0,5.12 -o $(QUICKSTART)/decoded
	$(CRDR) evaluate checkpoint=crdr-tiny dataset=$(DEMO_IMAGES) dataset_name=kodak3 \
		'grid.q=[0,1,2,3,4]' 'grid.beta=[0,2.56,5.12]' 'plots.grid_q=[0,2,4]' 'plots.grid_crop=[256,0,256,384]' \
		metrics.random_backbones=true \
		metrics.dists=false metrics.fid=false output_dir=$(QUICKSTART)/evaluate
	$(CRDR) data photos --root $(QUICKSTART)/data
	$(VENV)/bin/crdr-train experiment=finetune_crdr_tiny paths.data_root=$(QUICKSTART)/data \
		hydra.run.dir=$(QUICKSTART)/finetune
	@echo
	@echo "Look at: $(QUICKSTART)/evaluate/rd_curves.png (rate by q), $(QUICKSTART)/evaluate/grid.png"
	@echo "(a crop of kodim03; rows q: detail by rate, columns beta: grain by beta), $(QUICKSTART)/evaluate/results.csv,"
	@echo "the streams and their decodings in $(QUICKSTART)/streams and $(QUICKSTART)/decoded, the fine-tune's"
	@echo "validation in $(QUICKSTART)/finetune/csv/metrics.csv (its discriminators start fresh: beta's effect"
	@echo "fades over these 200 iterations). LPIPS there uses a random AlexNet: not comparable with papers."

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
