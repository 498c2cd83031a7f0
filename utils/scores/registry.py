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
    needs_labels: bool
    meaning: str          # one line: what it measures

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction must be 'higher' or 'lower', got {self.direction!r}.")
        if self.family not in (*FAMILIES, "baseline"):
            raise ValueError(f"{self.name}: unknown family {self.family!r}.")


SCORES: dict[str, Score] = {}


def register(name: str, family: str, direction: str, needs_labels: bool, meaning: str) -> Score:
    """Declare a score once; a second declaration of the same name is refused."""
    if name in SCORES:
        raise ValueError(f"Score {name!r} is already registered; every score is declared once.")
    SCORES[name] = Score(name, family, direction, needs_labels, meaning)
    return SCORES[name]


# ---------------------------------------------------------------------------------- geometry (3 embeddings)
for _prefix, _family, _space in (("px", "pixels", "raw pixels"), ("ae", "autoencoder", "the autoencoder's codes"),
                                 ("bt", "self-supervised", "the BarlowTwins features (cosine geometry)")):
    register(f"{_prefix}_prototype_distance", _family, "higher", False,
             f"distance to the nearest k-means centroid in {_space} (Sorscher et al. 2022's prototypes)")
    register(f"{_prefix}_knn_distance", _family, "higher", False,
             f"mean distance to the k nearest other samples in {_space}: high = sparse neighbourhood, outlier")
    register(f"{_prefix}_nn_distance", _family, "lower", False,
             f"distance to the nearest other sample in {_space}: low = near-duplicate (0 = exact copy)")
register("bt_knn_disagreement", "self-supervised", "higher", True,
         "share of the k nearest neighbours in the BarlowTwins features whose label differs from the sample's")

# ---------------------------------------------------------------------------------- supervised dynamics
register("mean_loss", "supervised", "higher", True, "cross-entropy averaged over the epochs of the runs")
register("el2n", "supervised", "higher", True, "||softmax - onehot(label)|| at an early epoch (Paul et al. 2021)")
register("el2n_lower", "supervised", "higher", True, "1 - p(label) at the EL2N epoch, a lower bound of EL2N")
register("aum", "supervised", "lower", True, "area under the margin: given logit - largest other, mean over epochs")
register("confidence", "supervised", "lower", True, "cartography confidence: mean p(label) over epochs")
register("variability", "supervised", "higher", True, "cartography variability: std of p(label) over epochs")
register("correctness", "supervised", "lower", True, "share of epochs at which the sample is classified correctly")
register("forgetting_events", "supervised", "higher", True,
         "learned -> not-learned transitions between epochs (Toneva et al. 2019)")
register("forgetting_toneva", "supervised", "higher", True,
         "forgetting events, never-learned samples counted as the number of epochs (Toneva's ranking)")
register("never_learned", "supervised", "higher", True, "share of runs in which the sample was never correct")
register("learning_time", "supervised", "higher", True, "first epoch from which the sample stays learned")
register("learning_fraction", "supervised", "higher", True, "learning time / the run's epochs (1 = not learned)")
register("last_margin", "supervised", "lower", True, "given logit - largest other logit at the last epoch")
register("cl_label_quality", "supervised", "lower", True,
         "out-of-sample probability of the given label (cleanlab self-confidence, K-fold)")
register("cl_normalized_margin", "supervised", "lower", True,
         "out-of-sample p(label) - largest other p, mapped to [0, 1] (cleanlab)")

# ---------------------------------------------------------------------------------- SSFT (Maini et al. 2022)
register("ssft_forgetting_time", "ssft", "lower", True,
         "epochs of fine-tuning on the other half after which the sample stays forgotten (early = mislabeled)")
register("ssft_second_split_area", "ssft", "lower", True, "mean correctness while fine-tuning on the other half")
register("forgetting_time", "ssft", "lower", True, "SSFT forgetting time of a two-split study (utils.scores.ssft)")
register("forgetting_fraction", "ssft", "lower", True, "forgetting time / the stage's logs (1 = never forgotten)")
register("never_forgotten", "ssft", "lower", True, "share of seeds in which the sample was never forgotten")
register("second_split_area", "ssft", "lower", True,
         "the learned measurement averaged over stage 2 (threshold-free SSFT)")
register("first_split_area", "ssft", "lower", True, "the learned measurement averaged over stage 1")

# ---------------------------------------------------------------------------------- autoencoder
register("ae_loss_last", "autoencoder", "higher", False, "reconstruction error after the last epoch")
register("ae_loss_mean", "autoencoder", "higher", False, "reconstruction error averaged over epochs")
register("ae_ssim_last", "autoencoder", "lower", False, "reconstruction SSIM after the last epoch")
register("ae_ssft_forgetting_time", "autoencoder", "lower", False,
         "the autoencoder's SSFT: epochs after which the reconstruction stays below its learned SSIM")
register("ae_ssft_second_split_area", "autoencoder", "lower", False, "mean reconstruction SSIM during stage 2")

# ---------------------------------------------------------------------------------- baselines
register("random", "baseline", "higher", False, "a seeded uniform score: AUROC 0.5, AP = prevalence")
register("battery_cv", "baseline", "higher", False,
         "out-of-fold probability of a classifier on the image battery trained ON THE TARGET (a ceiling)")


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
    return s.family in LABEL_FREE_FAMILIES and not s.needs_labels


def registered(columns) -> list[str]:
    """The registered scores among ``columns``, in the registry's order (every table lists them alike)."""
    present = set(columns)
    return [c for c in SCORES if c in present]


def oriented(scores: pd.DataFrame) -> pd.DataFrame:
    """The registered columns of ``scores`` as float64, the "lower" ones negated: higher = more suspicious."""
    cols = registered(scores.columns)
    return pd.DataFrame({c: scores[c].astype(float) * (1 if direction(c) == "higher" else -1) for c in cols},
                        index=scores.index)


def table() -> pd.DataFrame:
    """The registry as a table (name, family, direction, needs_labels, meaning): what the README lists."""
    return pd.DataFrame([vars(s) for s in SCORES.values()])
