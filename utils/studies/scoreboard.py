"""The hardness scoreboard: every score of :func:`utils.scores.dataset.score_dataset` against every injected hardness type.

For a dataset (e.g. the MNIST or Fashion-MNIST test split, 10,000 images), each hardness type of
:mod:`utils.data.inject` is injected into its own copy, at ``fraction`` of the samples (rare class: one class cut
to ``rare_fraction`` of its size), for each seed; the copy is scored by :func:`utils.scores.dataset.score_dataset`
(the same call a user makes on their own data), and every score is evaluated by the one evaluation
(:func:`utils.scores.evaluate.detection_table`) in the orientation the registry fixed (:mod:`utils.scores.registry`)
against the injected flags: AUROC and average precision with the injected samples as positives.

Beside the scores, two baselines per copy:

* ``random`` — a seeded uniform score (AUROC about 0.5, AP about the prevalence);
* ``battery_cv`` — the strongest model-free competitor: a gradient-boosted classifier on the image-statistics
  battery, trained out-of-fold ON THE INJECTED FLAGS (:func:`utils.scores.battery.cross_validated_baseline`); a
  supervised ceiling of what image statistics reveal, which a label-free score must beat to be worth a network.

Label-free scores get an encoder trained once per dataset on a disjoint clean pool (:data:`ENCODER_POOL`), as a
user would use an encoder pretrained on unlabeled data of the same domain; the autoencoder family trains on
each copy itself. Each copy's scores and evaluation are cached under ``folder/<type>/seed<s>/`` by the one cache
(:mod:`utils.engine.cache`), keyed by the copy's full-content fingerprint and every setting (the scoring
configuration included): a killed study resumes, in this session or a later one, and a changed setting is
refused instead of silently reusing old results.

The SSFT claim (Maini et al. 2022: second-split forgetting separates mislabeled from rare / atypical samples,
where first-split scores cannot) is tested on extra copies with uniform label noise AND atypical samples
injected together (:func:`claim_table`): the AUROC of mislabeled (positive) against atypical (negative).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from utils.data.datasets import dataset_info, load_dataset
from utils.data.inject import HARDNESS_TYPES, from_arrays, inject
from utils.data.samples import Samples
from utils.engine import cache
from utils.engine.workers import run_then_read
from utils.scores.dataset import ScoringConfig, score_dataset
from utils.scores.evaluate import detection_table
from utils.scores.families import train_encoder
from utils.scores.flags import ISSUES
from utils.metrics.detection import precision_recall
from utils.scores.registry import label_free
from utils.studies import outputs

# far-OOD images come from the other dataset (a garment in MNIST, a digit in Fashion-MNIST)
OOD_POOL = {"mnist": ("fashion-mnist", "train"), "mnist-5k": ("fashion-mnist", "test"),
            "fashion-mnist": ("mnist-5k", "train"), "cifar10": None}
# the clean, disjoint, unlabeled pool the self-supervised encoder is trained on, per scored dataset and split
ENCODER_POOL = {("mnist", "test"): ("mnist-5k", ("train", "test")),
                ("fashion-mnist", "test"): ("fashion-mnist", ("train",)),
                ("mnist-5k", "train"): ("mnist-5k", ("test",))}
CLAIM_TYPES = ("uniform_noise", "atypical")
WALL_LOG = "wall.csv"   # <dataset folder>/wall.csv: one row per run_board call that scored copies (wall time)


@dataclass(frozen=True)
class BoardConfig:
    """One dataset's scoreboard. ``n``: score a seeded subset of that many images (None: the whole split)."""

    dataset: str = "mnist"
    split: str = "test"
    n: int | None = None
    types: tuple = tuple(HARDNESS_TYPES)
    seeds: tuple = (0, 1, 2)
    fraction: float = 0.1
    rare_fraction: float = 0.02
    claim: bool = True                 # also the uniform-noise + atypical copies of the SSFT claim
    encoder_pool_size: int = 10000     # images of ENCODER_POOL the BarlowTwins encoder trains on
    encoder_epochs: int = 15
    scoring: ScoringConfig = field(default_factory=lambda: ScoringConfig.tier("thorough"))   # every family

    def __post_init__(self):
        unknown = [t for t in self.types if t not in HARDNESS_TYPES]
        if unknown:
            raise ValueError(f"Unknown hardness types {unknown}: choose from {', '.join(HARDNESS_TYPES)}.")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one (the scoreboard reports mean +- std over 3).")
        if not 0 < self.fraction < 0.5 or not 0 < self.rare_fraction < 1:
            raise ValueError(f"fraction must lie in (0, 0.5) and rare_fraction in (0, 1), got {self.fraction} and "
                             f"{self.rare_fraction}.")
        if isinstance(self.scoring, dict):
            object.__setattr__(self, "scoring", ScoringConfig.tier("thorough", **self.scoring))
        object.__setattr__(self, "types", tuple(self.types))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["types"], d["seeds"] = list(self.types), list(self.seeds)
        return d


# ------------------------------------------------------------------------------------------------ data
def base_data(config: BoardConfig, root=None) -> Samples:
    images, labels, info = load_dataset(config.dataset, config.split, root)
    ids = np.arange(len(labels))
    if config.n is not None and config.n < len(labels):
        rows = np.sort(np.random.default_rng(12345).permutation(len(labels))[:config.n])
        images, labels, ids = images[rows], labels[rows], ids[rows]
    return from_arrays(images, labels, ids, name=config.dataset, num_classes=info.num_classes)


def ood_images(config: BoardConfig, root=None) -> torch.Tensor | None:
    pool = OOD_POOL.get(config.dataset)
    if pool is None:
        return None
    try:
        images, _, _ = load_dataset(*pool, root=root)
    except (FileNotFoundError, OSError, RuntimeError) as err:
        raise ValueError(f"far_ood on {config.dataset} takes its images from {pool[0]} ({pool[1]}), which is not "
                         f"available here ({err}); install it or drop far_ood from the types.") from err
    return images


def ood_available(dataset: str, root=None) -> bool:
    """Whether the far-OOD pool of ``dataset`` can be loaded on this machine."""
    pool = OOD_POOL.get(dataset)
    if pool is None:
        return False
    try:
        load_dataset(*pool, root=root)
    except Exception:
        return False
    return True


def make_copy(base: Samples, kinds, seed: int, config: BoardConfig, ood=None) -> Samples:
    """``base`` with each type of ``kinds`` injected in turn (seed-dependent, non-overlapping)."""
    data = base
    for j, kind in enumerate(kinds):
        s = 1000 * seed + j
        if kind == "rare_class":
            data = inject(data, kind, config.rare_fraction, s)
        elif kind == "far_ood":
            if ood is None:
                raise ValueError(f"far_ood needs images of another dataset and {config.dataset!r} has none in "
                                 "OOD_POOL; drop the type or add a pool.")
            data = inject(data, kind, config.fraction, s, ood_images=ood)
        else:
            data = inject(data, kind, config.fraction, s)
    return data


def encoder_for(config: BoardConfig, folder: Path, root=None, progress: bool = False):
    """The BarlowTwins encoder of the label-free family, trained once on the dataset's disjoint clean pool."""
    key = (config.dataset, config.split)
    if key not in ENCODER_POOL or not config.encoder_epochs:
        return None
    name, splits = ENCODER_POOL[key]
    images = torch.cat([load_dataset(name, s, root)[0] for s in splits])
    if len(images) > config.encoder_pool_size:
        rows = np.sort(np.random.default_rng(0).permutation(len(images))[:config.encoder_pool_size])
        images = images[torch.from_numpy(rows)]
    return train_encoder(images, dataset_info(config.dataset), config.encoder_epochs, seed=0,
                         folder=folder / "encoder", progress=progress)


# ------------------------------------------------------------------------------------------------ study
BOARD = "board"   # <copy folder>/board.parquet: the copy's evaluation, a cached step


def evaluate_copy(scores: pd.DataFrame, flags: pd.DataFrame, kinds, seed: int) -> pd.DataFrame:
    """One row per (target, score): every registered score and the ``random`` / ``battery_cv`` baselines against
    each injected type, and for a pair of types (the SSFT claim) the first (positives) against the second."""
    parts = [detection_table(scores, flags[kind], baselines=True, seed=seed).assign(target=kind) for kind in kinds]
    if len(kinds) == 2:
        parts.append(detection_table(scores, flags[kinds[0]], flags[kinds[1]], baselines=True, seed=seed)
                     .assign(target=f"{kinds[0]}_vs_{kinds[1]}"))
    return pd.concat(parts).reset_index()


def _copy_table(kinds, seed, config, base, ood, encoder, folder: Path, progress: bool) -> pd.DataFrame:
    """Score one copy and evaluate it (a cached step keyed by the copy's content and every setting)."""
    data = make_copy(base, kinds, seed, config, ood)
    scoring = replace(config.scoring, seed=seed)
    settings = {"kinds": list(kinds), "seed": seed, "fraction": config.fraction, "rare_fraction": config.rare_fraction,
                "scoring": scoring.to_dict(), "data": data.fingerprint(),
                "encoder": None if encoder is None else cache.module_sha256(encoder)}

    def compute():
        tic = time.perf_counter()
        scores = score_dataset(data.images, data.labels, data.ids, info=dataset_info(config.dataset), config=scoring,
                               folder=folder / "scores", encoder=encoder, progress=progress)
        table = evaluate_copy(scores, data.meta.reindex(scores.index), kinds, seed)
        # compute time of the copy: its steps' own times (kept beside their caches) + this evaluation; the wall time
        # of this call when a step's time is unknown
        steps, wall = scores.attrs["seconds"], time.perf_counter() - tic
        seconds = sum(steps.values()) + wall - sum(steps[s] for s in scores.attrs["fresh"]) \
            if all(np.isfinite(v) for v in steps.values()) else wall
        return table.assign(seed=seed, seconds=seconds, n_samples=len(scores))

    return cache.step(folder, BOARD, settings, compute)


def _copies(config: BoardConfig) -> list:
    copies = [((t,), t) for t in config.types]
    if config.claim:
        copies.append((CLAIM_TYPES, "claim"))
    return [(kinds, name, seed) for kinds, name in copies for seed in config.seeds]


def _done(folder: Path) -> bool:
    return (folder / f"{BOARD}.parquet").is_file() and (folder / f"{BOARD}.json").is_file()


def _score_copies(config: BoardConfig, folder: Path, root, progress: bool = False, log=None,
                  shard=(0, 1)) -> list:
    """Score and evaluate this shard's copies (every ``shard[1]``-th from ``shard[0]``), each cached."""
    base = base_data(config, root)
    ood = ood_images(config, root) if any("far_ood" in k for k, _, _ in _copies(config)) else None
    encoder = encoder_for(config, folder, root)
    parts = []
    for kinds, name, seed in _copies(config)[shard[0]::shard[1]]:
        cached = _done(folder / name / f"seed{seed}")
        table = _copy_table(kinds, seed, config, base, ood, encoder, folder / name / f"seed{seed}", progress)
        parts.append(table.assign(type=name))
        if log is not None:
            log(f"{config.dataset} {name} seed {seed}: {table['seconds'].iloc[0]:.0f} s of compute"
                + (" (loaded from the cache)" if cached else ""))
    return parts


def run_board(config: BoardConfig, folder, root=None, progress: bool = False, log=print,
              workers: int = 1) -> pd.DataFrame:
    """Every (type, seed) copy of ``config``, scored and evaluated (cached under ``folder``); one long table:
    dataset, type, target, seed, score, family, direction, auroc, ap, positives, negatives, prevalence, seconds.

    ``workers`` > 1 scores the copies in that many processes of one thread each (:mod:`utils.engine.workers`),
    then reads them back."""
    folder = Path(folder)
    tic = time.perf_counter()
    # the copies and the encoder; the scoring settings are part of each copy's cached step
    cache.check_settings(folder, {"board": {k: v for k, v in config.to_dict().items() if k != "scoring"}})
    todo = sum(not _done(folder / name / f"seed{seed}") for _, name, seed in _copies(config))
    encoder_for(config, folder, root, progress)     # once, before any worker needs it
    parts = run_then_read(_score_copies, workers if todo else 1, config, folder, root,
                          here=dict(progress=progress, log=log))
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "dataset", config.dataset)
    if todo:   # the wall time of every call that scored something, encoder pretraining included
        row = pd.DataFrame([dict(dataset=config.dataset, copies=len(_copies(config)), scored=todo, workers=workers,
                                 threads=torch.get_num_threads(), wall_seconds=time.perf_counter() - tic,
                                 finished=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"))])
        log_path = folder / WALL_LOG
        row.to_csv(log_path, mode="a", header=not log_path.is_file(), index=False)
    return out


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of AUROC and AP per (dataset, type, target, score)."""
    g = table.groupby(["dataset", "type", "target", "family", "score"], sort=False)
    out = g.agg(auroc=("auroc", "mean"), auroc_std=("auroc", "std"), ap=("ap", "mean"), ap_std=("ap", "std"),
                prevalence=("prevalence", "mean"), seeds=("seed", "nunique")).reset_index()
    return out


def detection(summary: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Scores x hardness types (one type per copy) of one metric's mean, per dataset (columns: dataset, type)."""
    single = summary[summary["type"] == summary["target"]]
    wide = single.pivot_table(index=["family", "score"], columns=["dataset", "type"], values=metric, sort=False)
    return wide


def best_per_type(summary: pd.DataFrame, margin: float = 0.02) -> pd.DataFrame:
    """Per (dataset, type): the best score overall, the best supervised (incl. SSFT) and the best label-free
    score by mean AUROC, and whether the label-free one comes within ``margin`` of the supervised one."""
    single = summary[(summary["type"] == summary["target"]) & ~summary["family"].isin(["baseline"])]
    rows = []
    for (dataset, kind), g in single.groupby(["dataset", "type"], sort=False):
        g = g.sort_values("auroc", ascending=False)
        sup = g[g["family"].isin(["supervised", "ssft"])]
        free = g[g["score"].map(label_free)]
        base = summary[(summary["dataset"] == dataset) & (summary["type"] == kind) & (summary["target"] == kind)]
        battery = base.loc[base["score"] == "battery_cv", "auroc"]
        row = dict(dataset=dataset, type=kind, best=g.iloc[0]["score"], best_auroc=g.iloc[0]["auroc"],
                   best_supervised=sup.iloc[0]["score"] if len(sup) else None,
                   supervised_auroc=sup.iloc[0]["auroc"] if len(sup) else np.nan,
                   best_label_free=free.iloc[0]["score"] if len(free) else None,
                   label_free_auroc=free.iloc[0]["auroc"] if len(free) else np.nan,
                   battery_cv_auroc=battery.iloc[0] if len(battery) else np.nan)
        row["label_free_gap"] = row["supervised_auroc"] - row["label_free_auroc"]
        row["label_free_within"] = bool(row["label_free_gap"] <= margin)
        rows.append(row)
    return pd.DataFrame(rows)


def claim_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The SSFT claim: per dataset and score, AUROC of mislabeled vs atypical, and each type vs the clean rest."""
    claim = summary[summary["type"] == "claim"]
    wide = claim.pivot_table(index=["family", "score"], columns=["dataset", "target"], values="auroc", sort=False)
    return wide


def goal_statement(best: pd.DataFrame, margin: float = 0.02, need: int = 2) -> dict:
    """Whether a label-free score comes within ``margin`` AUROC of the best supervised one on >= ``need`` types,
    per dataset (computed, never typed)."""
    out = {}
    for dataset, g in best.groupby("dataset", sort=False):
        types = g.loc[g["label_free_within"], "type"].tolist()
        out[dataset] = dict(types_within=types, met=len(types) >= need)
    return out


def save(table: pd.DataFrame, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def load_config(folder) -> BoardConfig:
    settings = json.loads((Path(folder) / "settings.json").read_text())
    return BoardConfig(**settings["board"])


def load(results) -> dict:
    """The scoreboard's published tables in ``results`` (its tables folder, e.g. ``results/board/scoreboard``):
    ``table``, ``summary`` and ``best`` (the notebook's CSVs), ``claim`` (:func:`claim_table` of the summary; None
    unless the notebook ran the claim copies), ``flags`` (per dataset, type, seed and flag: flagged, precision,
    recall; None where not written) and ``walls`` (``{dataset: its run_board calls' wall-time log}`` in dataset
    order; None unless every dataset has one)."""
    results = Path(results)
    table, summary, best = (pd.read_csv(results / name) for name in (
        outputs.SCOREBOARD_TABLE, outputs.SCOREBOARD_SUMMARY, outputs.SCOREBOARD_BEST))
    flags = results / outputs.SCOREBOARD_FLAGS
    walls = {d: results / d / WALL_LOG for d in sorted(table["dataset"].unique())}
    return {"table": table, "summary": summary, "best": best,
            "claim": claim_table(summary) if (results / outputs.SCOREBOARD_CLAIM).is_file() else None,
            "flags": pd.read_csv(flags) if flags.is_file() else None,
            "walls": {d: pd.read_csv(p) for d, p in walls.items()} if all(p.is_file() for p in walls.values())
            else None}


# ------------------------------------------------------------------------------------------------ flags
# flag -> the injected types it is meant to find (near-duplicates: the copies and the samples they copy), as each
# issue type declares them (utils.scores.flags.ISSUES)
FLAG_TARGETS = {i.flag: i.targets for i in ISSUES.values() if i.targets}


def flag_quality(config: BoardConfig, folder, root=None) -> pd.DataFrame:
    """How the flags of :func:`utils.scores.flags.add_flags` do on every cached copy: per (type, seed, flag) the
    number flagged, and where the copy holds samples the flag is meant to find (:data:`FLAG_TARGETS`) its precision
    and recall against them. Reads the copies' cached scores (rebuilding each copy to check its fingerprint)."""
    folder = Path(folder)
    base = base_data(config, root)
    ood = ood_images(config, root) if any("far_ood" in k for k, _, _ in _copies(config)) else None
    encoder = encoder_for(config, folder, root)
    rows = []
    for kinds, name, seed in _copies(config):
        data = make_copy(base, kinds, seed, config, ood)
        scores = score_dataset(data.images, data.labels, data.ids, info=dataset_info(config.dataset),
                               config=replace(config.scoring, seed=seed), encoder=encoder,
                               folder=folder / name / f"seed{seed}" / "scores",
                               families=("pixels", "supervised", "self-supervised"))
        meta = data.meta.reindex(scores.index)
        for flag, targets in FLAG_TARGETS.items():
            f = scores[flag].to_numpy(bool)
            row = dict(dataset=config.dataset, type=name, seed=seed, flag=flag, flagged=int(f.sum()), n=len(f))
            present = [k for k in targets if k in meta.columns]
            if present:
                pos = meta[present].to_numpy(bool).any(axis=1)
                if "near_duplicates" in present:     # a pair is two flags: the copy and the sample it copies
                    pos |= scores.index.isin(meta.loc[meta["near_duplicates"].astype(bool), "source_id"])
                precision, recall = precision_recall(f, pos)
                row.update(positives=int(pos.sum()), precision=precision, recall=recall)
            rows.append(row)
    return pd.DataFrame(rows)
