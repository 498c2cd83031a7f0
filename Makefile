# Two commands set everything up on a fresh machine: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATASET ?= mnist
SPLIT   ?= test
EPOCHS  ?= 200

.PHONY: run test reproduce scoreboard pruning benchmark clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -c "import os, site; open(os.path.join(site.getsitepackages()[0], 'hardrare-repo.pth'), 'w').write(os.getcwd())"
	touch $(STAMP)

## Quick mode on the embedded MNIST-5k: executes every notebook (ssl-ae, ssft, scoreboard, pruning) into results/, prints the tables.
run: $(STAMP)
	rm -rf results/quick  # quick mode starts fresh: a cache left by another version of the code would be refused
	$(PY) -m utils.report.run_notebooks --mode quick --out results/quick

## The test suite, notebooks in quick mode included.
test: $(STAMP)
	$(PY) -m pytest -q

## Full study (DATA_ROOT must hold the data): autoencoder + SSFT; rewrites the committed notebooks, images/ and the README sections.
reproduce: $(STAMP)
	$(PY) -m utils.report.run_notebooks --mode full --study seed --dataset $(DATASET) --split $(SPLIT) --epochs $(EPOCHS) --out results/full --commit

## The hardness scoreboard (MNIST test split via DATA_ROOT, Fashion-MNIST test; 3 seeds; resumable, cached in results/board).
scoreboard: $(STAMP)
	$(PY) -m utils.report.run_notebooks --mode full --study scoreboard --out results/board --commit

## The pruning curves on Fashion-MNIST (60,000 train / 10,000 test; resumable, cached in results/prune).
pruning: $(STAMP)
	$(PY) -m utils.report.run_notebooks --mode full --study pruning --out results/prune --commit

## Speed measured side by side; rewrites the README's performance section.
benchmark: $(STAMP)
	mkdir -p results
	$(PY) -m benchmarks.bench_training --json results/bench_training.json
	$(PY) -m benchmarks.bench_metrics --json results/bench_metrics.json
	$(PY) -m utils.report.sections --performance results/bench_training.json results/bench_metrics.json

clean:
	rm -rf results .pytest_cache
