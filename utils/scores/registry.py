"""The one score registry: every per-sample score of the toolkit, declared once, before any experiment looks at it.

Each :class:`Score` says which family computes it, which end is suspicious (``"higher"`` or ``"lower"``: the end
where hard, rare, mislabeled, out-of-distribution or redundant samples should sit), whether it needs labels,
and what it measures, in one line. Like the issue managers cleanlab's Datalab registers, every table, report,
README list and evaluation derives from this registry: :func:`oriented` (higher = more suspicious everywhere),
:func:`direction`, :func:`family`, :func:`label_free`, and :func:`utils.scores.evaluate.detection_table`.

Families: ``pixels`` (model-free, label-free), ``supervised`` (a K-fold pass of classifiers: training dynamics and
confident learning), ``ssft`` (second-split forgetting of a classifier), ``autoencoder`` (label-free),
``self-supervised`` (label-free embedding of a BarlowTwins encoder), and ``baseline`` (what a score must beat).
The model-free image battery (``stat_*`` columns, :mod:`utils.scores.battery`) has no orientation: it feeds the
cross-validated ``battery_cv`` baseline. Boolean ``flag_*`` columns are decisions, not scores
(:mod:`utils.scores.flags`).

This module imports nothing but pandas: any layer may read it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

FAMILIES = ("pixels", "supervised", "ssft", "autoencoder", "self-supervised")
LABEL_FREE_FAMILIES = ("pixels", "autoencoder", "self-supervised")
DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class Score:
    name: str
    family: str
    direction: str        # the suspicious end: "higher" or "lower"
    needs_labels: bool | None   # None: reads labels exactly when its learned rule does (see the table below)
    meaning: str          # one line: what it measures

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction must be 'higher' or 'lower', got {self.direction!r}.")
        if self.family not in (*FAMILIES, "baseline"):
            raise ValueError(f"{self.name}: unknown family {self.family!r}.")


SCORES: dict[str, Score] = {}


def register(name: str, family: str, direction: str, needs_labels: bool | None, meaning: str) -> Score:
    """Declare a score once; a second declaration of the same name is refused."""
    if name in SCORES:
        raise ValueError(f"Score {name!r} is already registered; every score is declared once.")
    SCORES[name] = Score(name, family, direction, needs_labels, meaning)
    return SCORES[name]


# Every score, declared once: name | family | suspicious end | needs labels | what it measures. "rule" in the labels
# column: a learning / forgetting time of utils.scores.ssft, which reads labels exactly when its "learned" rule does
# (correct, prob: yes; the autoencoder's SSIM or correlation in the unsupervised two-split studies: no); in
# score_dataset the supervised family always reads them (its learned = the argmax is the label). The geometry rows
# ({space}) stand for the three embeddings px_ (raw pixels), ae_ (the autoencoder's codes) and bt_ (the BarlowTwins
# features, cosine geometry).
_DECLARED = """
{p}_prototype_distance | {f} | higher | no | distance to the nearest k-means centroid in {space} (Sorscher et al. 2022's prototypes)
{p}_knn_distance | {f} | higher | no | mean distance to the k nearest other samples in {space}: high = sparse neighbourhood, outlier
{p}_nn_distance | {f} | lower | no | distance to the nearest other sample in {space}: low = near-duplicate (0 = exact copy)
px_cos_knn_distance | pixels | higher | no | mean cosine distance (1 - cos, Datalab's metric) to the k nearest other images in raw pixels: high = an image of another kind, whatever its brightness
bt_knn_disagreement | self-supervised | higher | yes | share of the k nearest neighbours in the BarlowTwins features whose label differs from the sample's
mean_loss | supervised | higher | yes | cross-entropy averaged over the epochs of the runs
el2n | supervised | higher | yes | ||softmax - onehot(label)|| at an early epoch (Paul et al. 2021)
el2n_lower | supervised | higher | yes | 1 - p(label) at the EL2N epoch, a lower bound of EL2N
aum | supervised | lower | yes | area under the margin: given logit - largest other, mean over epochs
confidence | supervised | lower | yes | cartography confidence: mean p(label) over epochs
variability | supervised | higher | yes | cartography variability: std of p(label) over epochs
correctness | supervised | lower | yes | share of epochs at which the sample is classified correctly
forgetting_events | supervised | higher | rule | learned -> not-learned transitions between epochs (Toneva et al. 2019)
forgetting_toneva | supervised | higher | yes | forgetting events, never-learned samples counted as the number of epochs (Toneva's ranking)
never_learned | supervised | higher | rule | share of runs in which the sample was never correct
learning_time | supervised | higher | rule | epochs after which the sample stays learned ((log + 1) / logs per epoch; not learned at the end: horizon + 1)
learning_fraction | supervised | higher | rule | learning time in 0-based logs / the run's logs (1 = not learned)
last_margin | supervised | lower | yes | given logit - largest other logit at the last epoch
cl_label_quality | supervised | lower | yes | out-of-sample probability of the given label (cleanlab self-confidence, K-fold)
cl_normalized_margin | supervised | lower | yes | out-of-sample p(label) - largest other p, mapped to [0, 1] (cleanlab)
ssft_forgetting_time | ssft | lower | yes | epochs of fine-tuning on the other half after which the sample stays forgotten (early = mislabeled)
ssft_second_split_area | ssft | lower | yes | mean correctness while fine-tuning on the other half
forgetting_time | ssft | lower | rule | SSFT forgetting time of a two-split study (utils.scores.ssft)
forgetting_fraction | ssft | lower | rule | forgetting time / the stage's logs (1 = never forgotten)
never_forgotten | ssft | lower | rule | share of seeds in which the sample was never forgotten
second_split_area | ssft | lower | rule | the learned measurement averaged over stage 2 (threshold-free SSFT)
first_split_area | ssft | lower | rule | the learned measurement averaged over stage 1
ae_loss_last | autoencoder | higher | no | reconstruction error after the last epoch
ae_loss_mean | autoencoder | higher | no | reconstruction error averaged over epochs
ae_ssim_last | autoencoder | lower | no | reconstruction SSIM after the last epoch
ae_ssft_forgetting_time | autoencoder | lower | no | the autoencoder's SSFT: epochs after which the reconstruction stays below its learned SSIM
ae_ssft_second_split_area | autoencoder | lower | no | mean reconstruction SSIM during stage 2
random | baseline | higher | no | a seeded uniform score: AUROC 0.5, AP = prevalence
battery_cv | baseline | higher | no | out-of-fold probability of a classifier on the image battery trained ON THE TARGET (a ceiling)
"""
_SPACES = {"px": ("pixels", "raw pixels"), "ae": ("autoencoder", "the autoencoder's codes"),
           "bt": ("self-supervised", "the BarlowTwins features (cosine geometry)")}


def _declare() -> None:
    rows = []
    for line in _DECLARED.strip().splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        variants = [{"p": p, "f": f, "space": s} for p, (f, s) in _SPACES.items()] if "{p}" in cells[0] else [{}]
        rows += [[c.format(**v) for c in cells] for v in variants]
    order = [*FAMILIES, "baseline"]   # tables list the scores family by family, in declaration order within one
    for name, fam, end, labels, meaning in sorted(rows, key=lambda r: order.index(r[1])):
        register(name, fam, end, {"yes": True, "no": False, "rule": None}[labels], meaning)


_declare()


# ---------------------------------------------------------------------------------- derived views
def _get(name: str) -> Score:
    if name not in SCORES:
        raise ValueError(f"{name!r} is not a registered score (utils.scores.registry.SCORES); register it first.")
    return SCORES[name]


def direction(name: str) -> str:
    return _get(name).direction


def family(name: str) -> str:
    return _get(name).family


def label_free(name: str) -> bool:
    """Computed without labels: a label-free family and not a column that reads the labels."""
    s = _get(name)
    return s.family in LABEL_FREE_FAMILIES and s.needs_labels is False


def registered(columns) -> list[str]:
    """The registered scores among ``columns``, in the registry's order (every table lists them alike)."""
    present = set(columns)
    return [c for c in SCORES if c in present]


def oriented(scores: pd.DataFrame) -> pd.DataFrame:
    """The registered columns of ``scores`` as float64, the "lower" ones negated: higher = more suspicious."""
    cols = registered(scores.columns)
    return pd.DataFrame({c: scores[c].astype(float) * (1 if direction(c) == "higher" else -1) for c in cols},
                        index=scores.index)


# scores with few distinct values (counts, epochs) -> the continuous score that breaks their ties, so a top-k list
# does not depend on the order of the rows: the same family's closest continuous measurement
TIE_BREAK = {"forgetting_events": "mean_loss", "forgetting_toneva": "mean_loss", "never_learned": "mean_loss",
             "learning_time": "mean_loss", "learning_fraction": "mean_loss", "correctness": "mean_loss",
             "ssft_forgetting_time": "ssft_second_split_area", "forgetting_time": "second_split_area",
             "forgetting_fraction": "second_split_area", "never_forgotten": "second_split_area",
             "ae_ssft_forgetting_time": "ae_ssft_second_split_area"}


def ranked(scores: pd.DataFrame, name: str) -> pd.Index:
    """The sample ids of ``scores`` from the most to the least suspicious by the registered score ``name``; ties
    broken by its :data:`TIE_BREAK` score (when the table has it), then by sample id."""
    keys = [name] + ([TIE_BREAK[name]] if TIE_BREAK.get(name) in scores.columns else [])
    o = oriented(scores[keys])
    frame = pd.DataFrame({f"k{i}": -o[k].to_numpy() for i, k in enumerate(keys)}, index=scores.index)
    frame["_id"] = scores.index
    return frame.sort_values([*frame.columns[:-1], "_id"], kind="stable").index


def table() -> pd.DataFrame:
    """The registry as a table (name, family, direction, needs_labels, meaning): what the README lists."""
    return pd.DataFrame([vars(s) for s in SCORES.values()])
