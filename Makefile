# Two commands set everything up on a fresh machine: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATASET ?= mnist
SPLIT   ?= test
EPOCHS  ?= 200

.PHONY: run test test-fast report reproduce scoreboard pruning labeling scoring benchmark clean

# a full study: its notebook executed and committed (cached in OUT, resumable), then its README sections rewritten
# $(call study,NAME,OUT[,more run_notebooks options])
define study
$(PY) -m utils.report.run_notebooks --mode full --study $(1)$(if $(3), $(3)) --out $(2) --commit
$(PY) -m utils.report --only $(1)
endef

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -c "import os, site; open(os.path.join(site.getsitepackages()[0], 'hardrare-repo.pth'), 'w').write(os.getcwd())"
	touch $(STAMP)

## Quick mode on the embedded MNIST-5k: executes every notebook (ssl-ae, ssft, scoreboard, pruning, labeling, scoring) into results/, prints the tables.
run: $(STAMP)
	rm -rf results/quick  # quick mode starts fresh: a score_dataset step cached by another version of its code would be refused (utils/scores/steps.py), and the training runs under it are keyed by their settings only
	$(PY) -m utils.report.run_notebooks --mode quick --out results/quick

## The test suite, notebooks in quick mode included (the 15 slowest tests are listed at the end).
test: $(STAMP)
	$(PY) -m pytest -q --durations=15

## The test suite without the notebook tests (marker `notebooks`): a few minutes.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not notebooks" --durations=15

## Every generated README section, from the caches of the full runs on this machine (studies without one are skipped).
report: $(STAMP)
	$(PY) -m utils.report

## Full study (DATA_ROOT must hold the data): autoencoder + SSFT; rewrites the committed notebooks, images/ and their README sections.
reproduce: $(STAMP)
	$(call study,seed,results/full,--dataset $(DATASET) --split $(SPLIT) --epochs $(EPOCHS))

## The hardness scoreboard (MNIST test split via DATA_ROOT, Fashion-MNIST test; 3 seeds; resumable, cached in results/board).
scoreboard: $(STAMP)
	$(call study,scoreboard,results/board)

## The pruning curves on Fashion-MNIST (60,000 train / 10,000 test; resumable, cached in results/prune).
pruning: $(STAMP)
	$(call study,pruning,results/prune)

## Choosing what to label on Fashion-MNIST (60,000-image pool, 10 budgets, 5 seeds; resumable, cached in results/label).
labeling: $(STAMP)
	$(call study,labeling,results/label)

## Score your own data, committed run: the 10,000 Fashion-MNIST test images with the default ScoringConfig.
scoring: $(STAMP)
	$(PY) -m utils.report.run_notebooks --mode full --study scoring --out results/scoring --commit

## Speed measured side by side, score_dataset's scale curve on Fashion-MNIST 5k-70k, the label-issue rules on
## small sets and the planted folder against Datalab + CleanVision (about an hour on 2 cores, DATA_ROOT for the
## IDX files or the Debian package); rewrites benchmarks/README.md.
benchmark: $(STAMP)
	mkdir -p results
	$(PY) -m benchmarks.bench_training --json results/bench_training.json
	$(PY) -m benchmarks.bench_metrics --json results/bench_metrics.json
	$(PY) -m benchmarks.bench_scale --json results/bench_scale.json
	$(PY) -m benchmarks.bench_label_filter --json results/bench_label_filter.json
	$(PY) -m benchmarks.bench_planted --json results/bench_planted.json
	$(PY) -m benchmarks.bench_outlier --json results/bench_outlier.json
	$(PY) -m utils.report --only performance scale label-filter planted outlier

clean:
	rm -rf results .pytest_cache
