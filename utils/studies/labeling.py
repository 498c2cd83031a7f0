"""The labeling study: which images of an unlabeled pool to label first, at budgets from 0.1 % to 50 %.

Pool = a training split without its labels; each selector of :mod:`utils.scores.labeling` picks ``b`` images,
they are labeled (the true labels), a fresh CNN is trained on them under one protocol (:func:`protocol`: a fixed
number of optimizer steps whatever ``b``, batch ``min(batch_size, b)``, the paper recipe) and measured on the
official test split, paired by seed against a static random draw. What runs (:func:`plan`):

* baselines: ``random`` and ``balanced_random`` (quotas per k-means cluster of the self-supervised features) at
  every budget, ``full`` (every label) once per seed;
* low budgets (``typical_upto``): ``typiclust_pixels`` (TypiClust on PCA-50 pixels, the issue's quick check),
  ``typiclust`` and ``probcover`` on the self-supervised features;
* ``elfs``: k-means pseudo-labels of the self-supervised features, a long proxy run on them
  (:func:`utils.scores.families.label_dynamics`), double-end by pseudo-label AUM inside each pseudo-class;
* the calibration (USES LABELS: the ceiling, not a label-free method): ``ccs_aum`` / ``ccs_el2n`` = CCS (Zheng et
  al. 2023: hard cut ``beta``, 50 strata) inside each class with proportional quotas, on the dynamics of a long
  proxy run on the true labels, and a ``beta`` grid at one budget (``ccs_aum_beta<b>``).

Everything is cached under ``results``: the encoders, the proxy runs, the selections and every retrain (its own
folder), so a killed study resumes. :func:`representations` measures the embeddings with labels (evaluation only);
:func:`accuracy_summary`, :func:`paired`, :func:`headline` and :func:`goals` condense the table.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.samples import Samples
from utils.engine import cache
from utils.scores import labeling as L
from utils.studies import outputs

BUDGETS = (60, 120, 300, 600, 1200, 3000, 6000, 12000, 18000, 30000)
LABEL_FREE = ("random", "balanced_random", "typiclust_pixels", "typiclust", "probcover", "elfs")
SUPERVISED = ("ccs_aum", "ccs_el2n")   # calibration: uses the labels of the whole pool


def _default_plan() -> dict:
    return {"random": BUDGETS, "balanced_random": BUDGETS,
            "typiclust": (60, 120, 300, 600, 1200), "typiclust_pixels": (60, 120, 300, 600, 1200),
            "probcover": (60, 120, 300, 600, 1200), "elfs": (600, 3000, 6000, 12000, 30000),
            "ccs_aum": (3000, 6000, 30000), "ccs_el2n": (6000,)}


@dataclass(frozen=True)
class LabelingConfig:
    """The study of ``labeling/choose-what-to-label.ipynb``; ``plan``: ``{method: budgets}``; ``beta_grid`` runs
    ``ccs_aum`` with each beta at ``beta_budget``. ``steps``: optimizer steps of every final model."""

    dataset: str = "fashion-mnist"
    train_split: str = "train"
    test_split: str = "test"
    n: int | None = None              # a seeded subset of the pool (quick mode)
    n_test: int | None = None
    plan: dict = field(default_factory=_default_plan)
    seeds: tuple = (0, 1, 2, 3, 4)
    steps: int = 300
    batch_size: int = 256
    lr: float = 0.1
    arch: str = "cnn"
    clusters: int = 10
    encoder_epochs: int = 20
    encoder_batch: int = 256
    old_encoder_epochs: int = 15      # today's scoring encoder: BarlowTwins on 10,000 images
    old_encoder_pool: int = 10000
    ae_epochs: int = 5
    proxy_epochs: int = 10
    beta_grid: tuple = (0.1, 0.2, 0.4)
    beta_budget: int = 6000
    workers: int = 2

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "beta_grid", tuple(float(b) for b in self.beta_grid))
        object.__setattr__(self, "plan", {m: tuple(int(b) for b in bs) for m, bs in dict(self.plan).items()})
        unknown = set(self.plan) - set(LABEL_FREE) - set(SUPERVISED)
        if unknown:
            raise ValueError(f"Unknown methods {sorted(unknown)}: choose from {', '.join(LABEL_FREE + SUPERVISED)}.")
        if not self.seeds or self.steps < 1:
            raise ValueError("give at least one seed and a positive number of steps.")

    def to_dict(self) -> dict:
        return asdict(self)


def protocol(recipe, n_kept: int, steps: int):
    """``(recipe, epoch_size)`` of the final model on ``n_kept`` images: exactly ``steps`` optimizer steps whatever
    ``n_kept``, batch b = min(recipe batch, n_kept). An epoch is m steps, m the largest divisor of ``steps`` not
    above ceil(n_kept / b), i.e. ``epoch_size`` = min(n_kept, m * b) samples (the loop's ``epoch_size``: slices of
    per-pass permutations, so every image is seen equally often), and ``steps / m`` epochs; the triangle schedule
    spans them. ``epoch_size`` is None when an epoch is the whole subset."""
    batch = int(min(recipe.batch_size, n_kept))
    per_pass = math.ceil(n_kept / batch)
    m = max(d for d in range(1, min(per_pass, steps) + 1) if steps % d == 0)
    size = int(min(n_kept, m * batch))
    return replace(recipe, batch_size=batch, max_epochs=steps // m), (None if size == n_kept else size)


# ---------------------------------------------------------------------------------------------- inputs
def _load(config: LabelingConfig, root):
    from utils.studies.pruning import load_pool

    return load_pool(config, root)


def embeddings(config: LabelingConfig, pool: Samples, info, results: Path, progress: bool = False) -> dict:
    """``{name: [N, D] features}`` of the pool, label-free, each cached: PCA-50 pixels, the autoencoder code,
    today's encoder (BarlowTwins on ``old_encoder_pool`` images) and the new one (BarlowTwins on the whole pool)."""
    import torch
    from sklearn.decomposition import PCA

    from utils.scores.families import embed, train_encoder

    x = pool.images
    out = {"pca_pixels": PCA(50, random_state=0).fit_transform(x.flatten(1).numpy().astype(np.float64)),
           "ae_code": ae_code(pool, info, config.ae_epochs, results / "autoencoder", progress)}
    old_rows = torch.from_numpy(np.sort(np.random.default_rng(0).permutation(len(x))[:config.old_encoder_pool]))
    old = train_encoder(x[old_rows], info, config.old_encoder_epochs, seed=0, folder=results / "encoder_old",
                        progress=progress)
    out["bt_10k"] = embed(old, x, info)
    new = train_encoder(x, info, config.encoder_epochs, seed=0, folder=results / "encoder",
                        batch_size=config.encoder_batch, progress=progress)
    out["bt_pool"] = embed(new, x, info)
    return out


def ae_code(pool: Samples, info, epochs: int, folder: Path, progress: bool = False) -> np.ndarray:
    """The code ``[N, D]`` of every pool image under an autoencoder trained on the pool (MSE, batch 256, seed 0;
    cached and resumable in ``folder``): the study's ``ae_code`` embedding."""
    import torch

    from utils.engine.loop import train
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import AutoencoderTask

    recipe = get_recipe("autoencoder", max_epochs=epochs, batch_size=256)
    run = train(AutoencoderTask(info, loss="mse"), recipe, pool.unlabeled(), seed=0, record=False, folder=folder,
                progress=progress, desc="autoencoder", checkpoint_every=1)
    x = pool.images
    with torch.no_grad():
        net = run.model.eval()
        return torch.cat([net(info.standardize(x[i:i + 1024]))[1] for i in range(0, len(x), 1024)]).double().numpy()


def write_probe(table: pd.DataFrame, out: Path, representations: pd.DataFrame | None = None) -> None:
    """A labeling probe's retrains (``probe.csv``) and embeddings table (``representations.csv``) in ``out``, for
    :func:`utils.report.sections.label_probe_markdown`; prints the mean accuracy and the paired differences."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "probe.csv", index=False)
    if representations is not None:
        representations.to_csv(out / "representations.csv")
    print(table.groupby(["budget", "method"])["test_acc"].agg(["mean", "std", "count"]).round(4).to_string())
    print(paired(table).round(4).to_string())


def representations(features: dict, labels: np.ndarray, clusters: int = 10, seed: int = 0) -> pd.DataFrame:
    """One row per embedding (labels for evaluation only): kNN-20 accuracy and k-means(``clusters``) accuracy
    (:mod:`utils.metrics.representation`), each in the space the selectors use (:func:`space_of`)."""
    from utils.metrics.representation import cluster_accuracy, knn_accuracy

    rows = []
    for name, z in features.items():
        s = space_of(name, z)
        rows.append({"embedding": name, "dims": z.shape[1], "knn20_acc": knn_accuracy(s, labels, 20),
                     "kmeans_acc": cluster_accuracy(labels, L.kmeans(L.unit(s), clusters, seed))})
    return pd.DataFrame(rows)


def space_of(name: str, z: np.ndarray) -> np.ndarray:
    """PCA pixels as they are (the quick check's TypiClust space); learned features L2-normalised, PCA-64."""
    return z if name == "pca_pixels" else L.selection_space(z, seed=0)


# ---------------------------------------------------------------------------------------------- selections
GOAL_BUDGETS = (60, 300, 600, 3000, 6000, 30000)       # the budgets the goals name
GOAL_METHODS = ("random", "balanced_random", "typiclust", "typiclust_pixels", "elfs", "ccs_aum")


def _priority(run) -> tuple:
    """Retrains in order of what the goals need, so that a study cut short has whole seeds of them: ``full``; the
    goals' cells; TypiClust and random up to 1,200 (what select_to_label ships); the other low-budget baselines;
    the rest — each tier seed by seed."""
    method, budget, seed = run
    if method == "full":
        tier = 0
    elif method in GOAL_METHODS and budget in GOAL_BUDGETS:
        tier = 1
    elif method in ("typiclust", "random") and budget <= 1200:
        tier = 2
    elif method in ("typiclust_pixels", "balanced_random") and budget <= 1200:
        tier = 3
    else:
        tier = 4
    return tier, seed, budget


def plan(config: LabelingConfig, n: int) -> list[tuple[str, int, int]]:
    """(method, budget, seed) of every retrain, most important first (:func:`_priority`); budgets above the pool
    are skipped."""
    runs = [("full", n, s) for s in config.seeds]
    methods = dict(config.plan)
    if "ccs_aum" in methods and config.beta_grid and config.beta_budget < n:
        methods.update({f"ccs_aum_beta{b:g}": (config.beta_budget,) for b in config.beta_grid})
    for method, budgets in methods.items():
        runs += [(method, b, s) for b in budgets if b < n for s in config.seeds]
    return sorted(runs, key=_priority)


def by_class(hardness: pd.Series, classes: pd.Series, b: int, pick) -> np.ndarray:
    """``b`` sample ids, proportional quotas per class (:func:`utils.scores.labeling.quotas`): ``pick(h, q)`` chooses
    ``q`` ids from the class's ``hardness`` (classes in sorted order, empty quotas skipped)."""
    sizes = classes.value_counts().sort_index()
    return np.concatenate([pick(hardness[classes == c], q)
                           for c, q in zip(sizes.index, L.quotas(sizes.to_numpy(), b)) if q])


def _ccs(hardness: pd.Series, classes: pd.Series, b: int, seed: int, beta: float | None) -> np.ndarray:
    """CCS inside each class with proportional quotas (:func:`utils.scores.selection.select`, 50 strata)."""
    from utils.scores.selection import select

    beta = L.elfs_beta(b / len(hardness)) if beta is None else beta
    return by_class(hardness, classes, b,
                    lambda h, q: select(h, q / len(h), "ccs", seed, beta=min(beta, 1 - q / len(h))))


def selections(config: LabelingConfig, pool: Samples, spaces: dict, dynamics: dict, pseudo: pd.Series) -> pd.DataFrame:
    """Every (method, budget, seed) selection of :func:`plan`: long table (method, budget, seed, order, sample_id,
    cluster, why)."""
    ids = pool.ids
    ssl = spaces["bt_pool"]
    classes = pd.Series(pool.labels.numpy(), index=ids)
    graph = L.ball_graph(ssl) if any(m == "probcover" for m, _, _ in plan(config, len(ids))) else None
    groups = {}
    parts = []
    for method, b, seed in plan(config, len(ids)):
        if method == "full":
            continue
        if seed not in groups:
            groups[seed] = L.kmeans(L.unit(ssl), config.clusters, seed)
        if method == "random":
            p = L.random_draw(ids, b, seed, clusters=groups[seed])
        elif method == "balanced_random":
            p = L.balanced_random(ssl, b, ids, seed, clusters=groups[seed])
        elif method == "typiclust_pixels":
            p = L.typiclust(spaces["pca_pixels"], b, ids, seed)
        elif method == "typiclust":
            p = L.typiclust(ssl, b, ids, seed)
        elif method == "probcover":
            p = L.probcover(ssl, b, ids, seed, n_pseudo=config.clusters, graph=graph)
        elif method == "elfs":
            p = L.double_end(-dynamics["pseudo"]["aum"], pseudo, b, seed=seed)
        else:   # ccs_aum, ccs_el2n, ccs_aum_beta<b>
            score = "el2n_lower" if method == "ccs_el2n" else "aum"
            h = dynamics["true"][score] * (-1 if score == "aum" else 1)
            beta = float(method.removeprefix("ccs_aum_beta")) if "beta" in method else None
            kept = _ccs(h, classes, b, seed, beta)
            p = L.picks(kept, classes.reindex(kept).to_numpy(), method, "ccs stratum")
        parts.append(p.assign(method=method, budget=b, seed=seed))
    cols = ["method", "budget", "seed", "order", "sample_id", "cluster", "why"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------------------------------------- retrains
def _retrain_shard(jobs, pool: Samples, test: Samples, config: LabelingConfig, info, folder: Path,
                   shard=(0, 1), train: bool = True) -> list[dict]:
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import make_task
    from utils.studies.pruning import RESULT, retrain

    task = make_task(config.arch, info)
    base = get_recipe("paper", batch_size=config.batch_size, lr=config.lr, patience=None)
    rows = []
    for i, (method, b, seed, kept) in enumerate(jobs):
        if i % shard[1] != shard[0]:
            continue
        recipe, size = protocol(base, len(kept), config.steps)
        where = folder / method / f"b{b}" / f"seed{seed}"
        if not train and not (where / f"{RESULT}.parquet").is_file():
            continue
        out = retrain(task, recipe, pool, kept, test=test, seed=seed, per_epoch=size, folder=where)
        rows.append({"method": method, "budget": b, "seed": seed, **out, "kept": len(kept)})
    return rows


def run(config: LabelingConfig, results, root=None, progress: bool = False, train: bool = True) -> dict:
    """The whole study; returns ``{"table", "representations", "selections", "timings", "pseudo_accuracy",
    "planned"}`` (every part cached under ``results``, so a second call reads them and a killed one resumes).
    ``train=False`` trains no final model: the table holds the retrains already cached (a study still running in
    another process, or one cut short), ``planned`` says how many the plan has."""
    from utils.engine.workers import run_then_read
    from utils.scores.families import label_dynamics

    results = Path(results)
    pool, test, info = _load(config, root)
    timings = {}
    tic = time.perf_counter()
    feats = embeddings(config, pool, info, results, progress)
    timings["embeddings_s"] = time.perf_counter() - tic
    spaces = {name: space_of(name, z) for name, z in feats.items()}
    reps = cache.step(results, "representations", {"data": pool.fingerprint(), "config": config.to_dict()},
                      lambda: representations(feats, pool.labels.numpy(), config.clusters))
    tic = time.perf_counter()
    pseudo = pd.Series(L.kmeans(L.unit(spaces["bt_pool"]), config.clusters, 0), index=pool.ids, name="pseudo")
    dyn = {"pseudo": label_dynamics(Samples(pool.images, pseudo.to_numpy(), pool.ids), info, config.proxy_epochs,
                                    folder=results / "proxy_pseudo", progress=progress),
           "true": label_dynamics(pool, info, config.proxy_epochs, folder=results / "proxy_true", progress=progress)}
    timings["proxies_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    chosen = cache.step(results, "selections", {"data": pool.fingerprint(), "config": config.to_dict()},
                        lambda: selections(config, pool, spaces, dyn, pseudo))
    timings["selections_s"] = time.perf_counter() - tic
    by = {k: g["sample_id"].to_numpy() for k, g in chosen.groupby(["method", "budget", "seed"], sort=False)}
    jobs = [(m, b, s, pool.ids if m == "full" else by[(m, b, s)]) for m, b, s in plan(config, len(pool))]
    tic = time.perf_counter()
    kwargs = dict(pool=pool, test=test, config=config, info=info, folder=results / "runs")
    rows = run_then_read(_retrain_shard, config.workers if train else 1, jobs, train=train, **kwargs)
    timings["retrains_s"] = time.perf_counter() - tic
    timings.update(_training_seconds(results))
    for b in (300, 6000):   # the shipped selector from features to picks, timed in every execution
        if b < len(pool):
            tic = time.perf_counter()
            L.select_to_label(feats["bt_pool"], b, pool.ids, n_clusters=config.clusters)
            timings[f"select_to_label_{b}_s"] = time.perf_counter() - tic
    table = pd.DataFrame(rows)
    table["label_free"] = table["method"].isin(LABEL_FREE)
    return {"table": table, "representations": reps, "selections": chosen, "timings": timings,
            "pseudo_accuracy": _pseudo_accuracy(pseudo, pool), "planned": len(jobs)}


def _training_seconds(results: Path) -> dict:
    """Seconds the cached trainings took when they ran (the loop's history): the pool encoder, both proxies."""
    out = {}
    for name in ("encoder", "proxy_pseudo", "proxy_true"):
        history = results / name / "history.csv"
        if history.is_file():
            out[f"{name}_train_s"] = float(pd.read_csv(history)["seconds"].sum())
    return out


def _pseudo_accuracy(pseudo: pd.Series, pool: Samples) -> float:
    from utils.metrics.representation import cluster_accuracy

    return cluster_accuracy(pool.labels.numpy(), pseudo.to_numpy())


# ---------------------------------------------------------------------------------------------- summaries
def accuracy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and runs of test accuracy per (method, budget)."""
    g = table.groupby(["method", "budget"])["test_acc"]
    return g.agg(acc_mean="mean", acc_std="std", runs="count").reset_index()


def paired(table: pd.DataFrame, baseline: str = "random", confidence: float = 0.95) -> pd.DataFrame:
    """Each (method, budget) minus ``baseline`` at the same budget, paired by seed: mean difference, its
    ``confidence`` interval (Student t over the seeds), and the share of the baseline-to-full gap it closes."""
    from scipy import stats

    base = table[table["method"] == baseline].set_index(["budget", "seed"])["test_acc"]
    full = table.loc[table["method"] == "full", "test_acc"].mean()
    rows = []
    for (method, b), g in table[~table["method"].isin(["full", baseline])].groupby(["method", "budget"]):
        ref = base.reindex(pd.MultiIndex.from_arrays([np.full(len(g), b), g["seed"].to_numpy()]))
        ok = ~np.isnan(ref.to_numpy())
        d = g["test_acc"].to_numpy()[ok] - ref.to_numpy()[ok]
        if not len(d):
            continue
        half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 \
            else np.nan
        gap = full - ref.to_numpy()[ok].mean()
        rows.append({"method": method, "budget": b, "seeds": len(d), "diff_mean": d.mean(), "ci_low": d.mean() - half,
                     "ci_high": d.mean() + half, "gap_closed": d.mean() / gap if gap > 0 else np.nan})
    return pd.DataFrame(rows, columns=["method", "budget", "seeds", "diff_mean", "ci_low", "ci_high", "gap_closed"])


def shipped(table: pd.DataFrame, n_clusters: int = 10) -> pd.DataFrame:
    """The rows :func:`utils.scores.labeling.select_to_label` would have run: at each budget, the method its
    regime names (``method`` = ``select_to_label``)."""
    parts = []
    for b in sorted(table["budget"].unique()):
        m = L.regime(int(b), n_clusters)
        parts.append(table[(table["method"] == m) & (table["budget"] == b)].assign(method="select_to_label"))
    return pd.concat(parts, ignore_index=True) if parts else table.iloc[:0]


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """Per budget: random, balanced random, the best label-free method, what select_to_label ships, and the
    supervised CCS calibration (mean test accuracy, paired difference to random in pt)."""
    full = table[table["method"] == "full"]
    rest = table[table["method"] != "full"]
    both = pd.concat([rest, shipped(rest)], ignore_index=True)
    s = accuracy_summary(both).set_index(["method", "budget"])["acc_mean"]
    p = paired(both).set_index(["method", "budget"])["diff_mean"]
    rows = []
    for b in sorted(rest["budget"].unique()):
        at = lambda m: (s.get((m, b), np.nan), p.get((m, b), np.nan))  # noqa: E731
        free = [m for m in LABEL_FREE if m not in ("random", "balanced_random") and (m, b) in s.index]
        best = max(free, key=lambda m: s[(m, b)]) if free else None
        ccs = [m for m in s.index.get_level_values(0).unique() if m.startswith("ccs") and (m, b) in s.index]
        ccs_best = max(ccs, key=lambda m: s[(m, b)]) if ccs else None
        fmt = lambda v: "" if v[0] != v[0] else f"{v[0]:.4f}" + ("" if v[1] != v[1] else f" ({v[1] * 100:+.2f})")  # noqa
        rows.append({"budget": b, "random": fmt((s.get(("random", b), np.nan), np.nan)),
                     "balanced random": fmt(at("balanced_random")),
                     "best label-free": "" if best is None else f"{fmt(at(best))} {best}",
                     "select_to_label": fmt(at("select_to_label")),
                     "supervised CCS": "" if ccs_best is None else f"{fmt(at(ccs_best))} {ccs_best}"})
    out = pd.DataFrame(rows)
    out.attrs["full"] = float(full["test_acc"].mean()) if len(full) else np.nan
    return out


GOALS = ((60, 0.08), (300, 0.05), (600, 0.03), (3000, 0.011), (6000, 0.010))


def goals(table: pd.DataFrame) -> pd.DataFrame:
    """Each goal of the issue, measured on ``table``: met / not met (NA when not run) and the numbers."""
    rest = table[table["method"] != "full"]
    p = paired(pd.concat([rest, shipped(rest)], ignore_index=True))
    s = accuracy_summary(table).set_index(["method", "budget"])["acc_mean"]
    full = table.loc[table["method"] == "full", "test_acc"].mean()
    rows = []
    free = p[p["method"].isin([*LABEL_FREE, "select_to_label"]) & (p["method"] != "balanced_random")]
    for b, need in GOALS:
        at = free[free["budget"] == b]
        if at.empty:
            rows.append({"goal": f"{b} labels: >= random + {need * 100:g} pt", "met": pd.NA, "detail": "not run"})
            continue
        top = at.loc[at["diff_mean"].idxmax()]
        pix = at.loc[at["method"] == "typiclust_pixels", "diff_mean"]
        beats_pix = "" if pix.empty or top.method == "typiclust_pixels" else \
            f"; vs TypiClust on PCA pixels {(top.diff_mean - pix.iloc[0]) * 100:+.2f} pt"
        rows.append({"goal": f"{b} labels: >= random + {need * 100:g} pt", "met": bool(top.diff_mean >= need),
                     "detail": f"best {top.method} {top.diff_mean * 100:+.2f} pt "
                               f"[{top.ci_low * 100:+.2f}, {top.ci_high * 100:+.2f}]{beats_pix}"})
    half = s.loc[[k for k in s.index if k[1] == 30000 and k[0] in LABEL_FREE]] if len(s) else pd.Series(dtype=float)
    if len(half) and full == full:
        best = half.idxmax()
        rows.append({"goal": "30,000 labels: within 0.2 pt of full data", "met": bool(full - half.max() <= 0.002),
                     "detail": f"best {best[0]} {half.max():.4f} vs full {full:.4f}"})
    ship = p[p["method"] == "select_to_label"]
    if len(ship):
        worst = ship.loc[ship["diff_mean"].idxmin()]
        rows.append({"goal": "select_to_label never below random by more than 0.1 pt",
                     "met": bool(worst.diff_mean >= -0.001),
                     "detail": f"worst {worst.diff_mean * 100:+.2f} pt at {int(worst.budget)} labels"})
    ccs = p[p["method"].str.startswith("ccs") & (p["budget"] == 6000)]
    if len(ccs):
        top = ccs.loc[ccs["diff_mean"].idxmax()]
        rows.append({"goal": "calibration: supervised CCS >= random + 1.5 pt at 10 %", "met": bool(top.diff_mean >= 0.015),
                     "detail": f"best {top.method} {top.diff_mean * 100:+.2f} pt"})
    return pd.DataFrame(rows, columns=["goal", "met", "detail"])


def load(results) -> dict:
    """The study's published tables in ``results`` (its tables folder, e.g. ``results/label/labeling``): ``table``
    (one row per retrain), ``summary``, ``paired``, ``representations``, ``headline`` and ``goals`` (the notebook's
    CSVs) and ``run`` (the execution: planned retrains, each stage's seconds, pseudo-label accuracy)."""
    results = Path(results)
    names = {"table": outputs.LABELING_TABLE, "summary": outputs.LABELING_SUMMARY, "paired": outputs.LABELING_PAIRED,
             "representations": outputs.LABELING_REPS, "headline": outputs.LABELING_HEADLINE,
             "goals": outputs.LABELING_GOALS}
    return {**{k: pd.read_csv(results / name) for k, name in names.items()},
            "run": json.loads((results / outputs.LABELING_RUN).read_text())}
