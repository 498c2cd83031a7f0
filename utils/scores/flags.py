"""Boolean flags and duplicate groups on a score table: decisions with documented thresholds taken from cleanlab's
Datalab (not tuned on the scoreboard; their precision and recall on its injected copies are measured by
:func:`utils.studies.scoreboard.flag_quality` and stated in ``scoreboard/README.md``).

Every issue type is declared once, in :data:`ISSUES` (an :class:`Issue`: its flag rule and default settings, the
score that ranks its rows, its title, its rule and what to do about it in words, and the scoreboard's injected
types it is meant to find); :func:`add_flags`, the report (:mod:`utils.report.dataset_report`), the action lists
and the scoreboard's flag quality loop over it. The settings of a rule are Datalab's defaults, overridden per issue
in :attr:`utils.scores.dataset.ScoringConfig.issue_types` (e.g. ``{"outlier": {"threshold": 0.2}}``), as Datalab's
``find_issues(issue_types=...)``:

* ``label_issue`` — cleanlab's ``find_label_issues`` on the K-fold out-of-sample probabilities (computed by
  :func:`utils.scores.label_quality.label_quality` in a cached step; its setting is
  ``ScoringConfig.label_filter``).
* ``near_duplicate`` — pixel nearest-neighbour distance (``px_nn_distance``) below ``threshold`` = 0.13 times its
  median over the dataset (Datalab's near-duplicate threshold), or exactly 0 (an exact copy, flagged even when most
  images are copies and the median is 0 itself); both members of a pair are flagged, and
  ``duplicate_group`` numbers the connected groups of flagged samples and their nearest neighbours (-1: none), so
  a triple of copies is one group.
* ``class_imbalance`` — the members of the rarest class when its share is below ``threshold`` / K (K classes):
  Datalab's class-imbalance rule (threshold 0.1).
* ``outlier`` — mean distance to the k nearest neighbours above Q3 + (1 / ``threshold`` - 1) IQR of its
  distribution, in any of three spaces (``spaces``): the raw pixels with Euclidean distance (``px_knn_distance``:
  images far in intensity, e.g. noise) and the self-supervised embedding (``bt_knn_distance``), each with
  Datalab's fence (threshold 0.37037, i.e. 1.7 IQR), and the raw pixels with cosine distance
  (``px_cos_knn_distance``, Datalab's own metric: images of another kind whatever their brightness, e.g. digits
  among clothes) with Tukey's far-out fence (``cos_threshold`` 0.25, i.e. 3 IQR); a sample is flagged when any
  space calls it an outlier. Why two fences (measured by ``benchmarks/bench_outlier.py``, its table in
  benchmarks/README.md): on the planted folders of ``benchmarks/bench_planted.py`` (3,000 Fashion-MNIST images, 8
  foreign digits; seeds 0 and 1) Datalab's fence in the cosine space catches every digit but flags several times as
  many images as the far-out fence, which catches every digit too; in the Euclidean space the far-out fence would
  lose the scoreboard's near-OOD copies (10 % noised images), which the cosine space misses at either fence. A
  kNN-density rule cannot see a second distribution that is not rare (10 % of another dataset forms its own dense
  cluster: the scoreboard's far-OOD copies are mostly missed by every rule, and more so with the far-out fence).
  The autoencoder's codes are not used: on the scoreboard's copies their kNN distances rank clean samples as far as
  injected ones.
* CleanVision's image checks (``dark``, ``light``, ...; :mod:`utils.scores.image_checks`), flagged by their step
  with CleanVision's own thresholds. A check that fires on more than :data:`WIDESPREAD` of the images describes the
  dataset rather than its issues (CleanVision's low-information check flags most MNIST digits): the flags are
  kept, and the report says so once, in the words of the issue's ``widespread``.

Each issue also carries the report's ``action`` (what to do, in a few words) and its ``order`` in the report's
"start here" block: fix the labels, drop the exact copies, then the near-duplicates, look at the outliers, then
the image checks and the class balance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from utils.metrics.checks import is_number
from utils.scores.image_checks import CHECKS


def outlier_fence(values, threshold: float = 0.37037) -> float:
    """Q3 + (1 / threshold - 1) IQR of ``values``: Datalab's outlier threshold on average kNN distances (its
    default 0.37037: 1.7 IQR)."""
    q1, q3 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q3 + (1 / threshold - 1) * (q3 - q1))


def duplicate_groups(nearest_id: pd.Series, flagged: pd.Series) -> pd.Series:
    """Connected components of the graph linking every flagged sample to its nearest neighbour (scipy's
    ``connected_components``), numbered 0.. in order of their smallest sample id; -1 for samples in no group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = flagged.index
    position = pd.Index(ids)
    src = np.flatnonzero(flagged.to_numpy(bool))
    dst = position.get_indexer(nearest_id.reindex(ids).to_numpy()[src])
    keep = dst >= 0
    n = len(ids)
    graph = coo_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    member = np.zeros(n, dtype=bool)
    member[src[keep]] = True
    member[dst[keep]] = True
    out = np.full(n, -1, dtype=np.int64)
    groups = pd.Series(comp[member], index=np.asarray(ids)[member])
    first = groups.groupby(groups).apply(lambda g: g.index.min()).sort_values()   # number groups by their first id
    renumber = pd.Series(np.arange(len(first)), index=first.index)
    out[member] = renumber.reindex(comp[member]).to_numpy()
    return pd.Series(out, index=ids, name="duplicate_group")


def duplicate_keepers(groups: pd.Series) -> pd.Series:
    """True for the one member of each duplicate group that is kept (the smallest sample id: a rule that does not
    depend on the input order), False for the others; True for samples in no group (``duplicate_group`` -1)."""
    ids = pd.Series(groups.index, index=groups.index)
    first = ids.groupby(groups.to_numpy()).transform("min")
    return ((groups < 0) | (first == ids)).rename("duplicate_keeper")


def clean_keep(scores: pd.DataFrame, policy: str = "flags") -> pd.Series:
    """The samples the flags leave (True = keep), by ``policy``:

    * ``"flags"`` (``keep.csv``): drop what a flag justifies dropping — every issue declared ``drop`` in
      :data:`ISSUES` (the label issues when the table has labels, all but one member (:func:`duplicate_keepers`) of
      each duplicate group, the dark, light, blurry, low-information and odd-sized images) except an image check
      that fires on more than :data:`WIDESPREAD` of the images (it describes the dataset, not its issues). Outliers
      are listed for a look (``outliers.csv``), not dropped: the flag cannot tell a foreign image from a rare valid
      one, and rare valid samples are what a shrunk dataset must keep.
    * ``"datalab"``: Datalab's workflow, the pruning study's ``clean`` baseline: the label issues, the outliers and
      all but one member of each duplicate group.

    ``scores``: a :func:`utils.scores.dataset.score_dataset` table (flags added by :func:`add_flags`)."""
    if "issues" not in scores.attrs and not any(c.startswith("flag_") for c in scores):
        raise ValueError("scores have no flags; pass a score_dataset table (it adds the flags).")
    if policy not in ("flags", "datalab"):
        raise ValueError(f"policy must be 'flags' or 'datalab', got {policy!r}.")
    drop = ~duplicate_keepers(scores["duplicate_group"]) if "duplicate_group" in scores else \
        pd.Series(False, index=scores.index)    # no pixel family: no duplicate groups
    if policy == "datalab":
        if "flag_outlier" in scores:
            drop |= scores["flag_outlier"].astype(bool)
        if "flag_label_issue" in scores:
            drop |= scores["flag_label_issue"].astype(bool)
        return (~drop).rename("clean_keep")
    for issue in ISSUES.values():
        if issue.drop and issue.name != "near_duplicate" and issue.flag in scores:
            flag = scores[issue.flag].astype(bool)
            if not (issue.widespread and flag.mean() > WIDESPREAD):
                drop |= flag
    return (~drop).rename("clean_keep")


# ------------------------------------------------------------------------------------------ the issue types
WIDESPREAD = 0.10   # a check that flags more than this share of the images describes the dataset, not its issues
@dataclass(frozen=True)
class Issue:
    """One issue type, declared once: its flag ``flag_<name>``, the rule that sets it (``find(scores, settings)``,
    or None when a step writes the flag), its ``settings`` (defaults; ``ScoringConfig.issue_types`` overrides), the
    ``score`` that ranks its rows (its ``direction``: the registry's when None), the report's ``title`` and
    ``rule`` (formatted with the settings), ``about`` (what it means and what to do), the scoreboard's injected
    ``targets`` it is meant to find, and ``fences(scores, settings)``: the (column, threshold or None) pairs the
    report draws; ``shown``: the report shows its most suspicious images; ``action``: what to do, in a few words,
    and ``order``: its place in the report's "start here" block (smaller first); ``widespread``: the note the
    report shows when the issue fires on more than :data:`WIDESPREAD` of the dataset (formatted with ``share``;
    empty: no note); ``drop``: ``keep.csv`` drops its flagged samples (:func:`clean_keep`)."""

    name: str
    score: str
    title: str
    rule: str
    about: str
    targets: tuple = ()
    settings: dict = field(default_factory=dict)
    find: Callable | None = None
    fences: Callable | None = None
    direction: str | None = None
    needs_labels: bool = False
    shown: bool = False           # the report shows its most suspicious images
    action: str = ""
    order: int = 99
    widespread: str = ""
    drop: bool = False            # keep.csv drops its flagged samples (clean_keep's "flags" policy)
    reads: tuple = ()             # score columns its rule reads, every one; without them (a family not run) no flag
    reads_any: tuple = ()         # score columns of which its rule needs at least one (e.g. the outlier spaces)

    def runs_on(self, scores: pd.DataFrame) -> bool:
        """Whether ``add_flags`` sets this issue's flag on ``scores``: it has a rule, the labels it needs, every
        column of ``reads`` and one of ``reads_any``."""
        return (self.find is not None and not (self.needs_labels and "label" not in scores)
                and all(c in scores for c in self.reads)
                and (not self.reads_any or any(c in scores for c in self.reads_any)))

    @property
    def flag(self) -> str:
        return f"flag_{self.name}"

    def lower_is_worse(self) -> bool:
        from utils.scores.registry import direction
        return (self.direction or direction(self.score)) == "lower"

    def describe(self, settings: dict | None = None) -> str:
        """The rule in one line, with ``settings`` (default: the declared ones)."""
        return self.rule.format(**(self.settings if settings is None else settings))

    def note(self, share: float) -> str | None:
        """The report's note when the issue fires on ``share`` (0..1) of the dataset, more than
        :data:`WIDESPREAD`: the flag then describes the dataset rather than its issues; None otherwise."""
        return self.widespread.format(share=share) if self.widespread and share > WIDESPREAD else None


def _near_duplicate(scores: pd.DataFrame, s: dict) -> pd.DataFrame:
    d = scores["px_nn_distance"]
    flag = (d < s["threshold"] * float(d.median())) | (d == 0)   # an exact copy always
    groups = duplicate_groups(scores["px_nearest_id"], flag)
    return pd.DataFrame({"flag_near_duplicate": flag, "duplicate_group": groups})


COSINE_PIXELS = "px_cos_knn_distance"   # the space whose fence is ``cos_threshold`` (Tukey's far-out fence)


def _outlier_fences(scores: pd.DataFrame, s: dict) -> list:
    """``(column, fence)`` of each outlier space present: Q3 + (1 / threshold - 1) IQR, with ``cos_threshold`` in
    the pixels' cosine space and ``threshold`` (Datalab's) in the others."""
    return [(c, outlier_fence(scores[c], s["cos_threshold"] if c == COSINE_PIXELS else s["threshold"]))
            for c in s["spaces"] if c in scores]


def _outlier(scores: pd.DataFrame, s: dict) -> pd.Series:
    flag = pd.Series(False, index=scores.index)
    for col, fence in _outlier_fences(scores, s):
        flag |= scores[col] > fence
    return flag


def _class_imbalance(scores: pd.DataFrame, s: dict) -> pd.Series:
    share = scores["label"].value_counts(normalize=True)
    rarest = share.sort_index().idxmin()   # ties go to the smaller class index, as in Datalab
    return (scores["label"] == rarest) & (share[rarest] < s["threshold"] / len(share))


_CHECK_ABOUT = {
    **{c: f"CleanVision calls the image {c.replace('_', ' ')}; look at the flagged images and drop or fix the broken "
          "ones (its thresholds were set on photographs and may fire on clean digits)." for c in CHECKS},
    "exact_duplicates": "The image is pixel for pixel the same as another one (CleanVision's hash): the set carries "
                        "one image's information several times and, split across train and test, leaks. Keep one "
                        "of each set and drop the others (exact copies are near-duplicates at distance 0, so "
                        "duplicates.csv marks the one to keep).",
}
_CHECK_ACTION = {
    **{c: f"Check the {c.replace('_', ' ')} images: drop or fix the broken ones" for c in CHECKS},
    "exact_duplicates": "Drop the exact copies: keep one of each set",
}
# why a check that fires on much of a dataset describes the data (shown with the share it fires on)
_CHECK_WIDESPREAD = {
    "dark": "the images are dark as a whole (e.g. light strokes on a black background)",
    "light": "the images are light as a whole (e.g. dark strokes on a white page)",
    "low_information": "the gray levels of most images have a low entropy (strokes on a plain background: it flags "
                       "most MNIST digits)",
    "blurry": "the images are smooth as a whole (e.g. small images, or images upsampled from a lower resolution)",
    "odd_size": "the images come in many sizes",
    "odd_aspect_ratio": "the images come in many shapes",
}


def _widespread(check: str) -> str:
    """The note of an image check that fires on a large share (empty for exact copies: many copies are an issue)."""
    if check not in _CHECK_WIDESPREAD:
        return ""
    return (f"CleanVision's {check.replace('_', ' ')} check fires on {{share:.0%}} of the images: here it describes "
            f"the dataset rather than its issues, as {_CHECK_WIDESPREAD[check]}. The flags are kept; look only at "
            f"the images that stand out within it, lowest {check}_score first.")


_DECLARED = (
    Issue("label_issue", "cl_label_quality", "Label issues",
          "cleanlab's find_label_issues on the K-fold out-of-sample probabilities",
          "The given class is probably wrong: the held-out model gives it a low probability. Check the image and "
          "relabel it to the suggested class (relabel.csv), or drop it; review from the lowest label quality up.",
          targets=("uniform_noise", "class_noise"), needs_labels=True, shown=True, drop=True,
          fences=lambda scores, s: [("cl_label_quality", None)],
          action="Fix the labels: relabel.csv lists the given and the suggested class", order=1),
    Issue("near_duplicate", "px_nn_distance", "Near-duplicates",
          "pixel nearest-neighbour distance below {threshold} x its median (Datalab), or 0 (an exact copy)",
          "The image (nearly) repeats another one: the pair carries one image's information twice and, split "
          "across train and test, leaks. Keep one member of each group (duplicates.csv marks it) and drop the rest.",
          targets=("near_duplicates",), settings={"threshold": 0.13}, find=_near_duplicate, shown=True, drop=True,
          reads=("px_nn_distance", "px_nearest_id"),
          fences=lambda scores, s: [("px_nn_distance", s["threshold"] * float(scores["px_nn_distance"].median()))],
          action="Drop the near-duplicates: keep the member of each group that duplicates.csv marks", order=3),
    Issue("outlier", "px_knn_distance", "Outliers",
          "mean kNN distance above Q3 + (1 / {threshold} - 1) IQR (Datalab) in the pixels (Euclidean) or the "
          "self-supervised features, or above Q3 + (1 / {cos_threshold} - 1) IQR in the pixels' cosine geometry",
          "The image sits far from every other one: out of distribution, corrupted or a rare kind of sample. Look at "
          "them: drop the ones that do not belong (outliers.csv), and keep (or collect more of) the rare valid ones.",
          targets=("far_ood", "near_ood", "atypical"),
          settings={"threshold": 0.37037, "cos_threshold": 0.25,
                    "spaces": ("px_knn_distance", "px_cos_knn_distance", "bt_knn_distance")},
          find=_outlier, shown=True, fences=_outlier_fences,
          reads_any=("px_knn_distance", "px_cos_knn_distance", "bt_knn_distance"),
          action="Look at the outliers (outliers.csv): drop the ones that do not belong", order=4),
    Issue("class_imbalance", "cl_label_quality", "Class imbalance",
          "members of the rarest class when its share is below {threshold} / K (Datalab)",
          "The class is much rarer than the others, so models learn it worst. Collect or label more of it, or "
          "reweight it; do not drop these samples.",
          targets=("rare_class",), settings={"threshold": 0.1}, find=_class_imbalance, needs_labels=True,
          action="Collect or label more of the rarest class", order=6),
    *(Issue(c, f"{c}_score", c.replace("_", " ").capitalize(),
            f"CleanVision's {c.replace('_', ' ')} check (its default threshold)", _CHECK_ABOUT[c],
            direction="lower", action=_CHECK_ACTION[c], order=2 if c == "exact_duplicates" else 5,
            widespread=_widespread(c), drop=c != "exact_duplicates", shown=True)   # copies: the near_duplicate keeper
      for c in CHECKS),
)
ISSUES: dict[str, Issue] = {i.name: i for i in _DECLARED}


def issue_settings(issue_types: dict | None = None) -> dict:
    """Every issue's settings: the declared defaults with ``issue_types`` ({issue: {setting: value}}) applied; an
    unknown issue, an unknown setting or a bad value is refused with one sentence."""
    out = {name: dict(i.settings) for name, i in ISSUES.items()}
    if not isinstance(issue_types or {}, dict):
        raise ValueError(f"issue_types must map issue types to settings, e.g. {{'outlier': {{'threshold': 0.2}}}}, "
                         f"got {issue_types!r}.")
    for name, given in (issue_types or {}).items():
        if name not in ISSUES:
            raise ValueError(f"Unknown issue type {name!r} in issue_types: choose from {', '.join(ISSUES)}.")
        if not isinstance(given, dict):
            raise ValueError(f"issue_types[{name!r}] must be a dict of settings, got {given!r}.")
        for key, value in dict(given).items():
            if key not in out[name]:
                have = ", ".join(out[name]) or "none"
                raise ValueError(f"issue_types[{name!r}] has no setting {key!r} (its settings: {have}).")
            out[name][key] = _checked(name, key, value)
    return out


def _checked(name: str, key: str, value):
    if key in ("threshold", "cos_threshold"):
        if not is_number(value) or not 0 < value <= 1:
            raise ValueError(f"issue_types[{name!r}][{key!r}] must be a number in (0, 1], got {value!r}.")
        return float(value)
    from utils.scores.registry import SCORES
    spaces = (value,) if isinstance(value, str) else tuple(value)
    bad = [c for c in spaces if c not in SCORES or not c.endswith("knn_distance")]
    if bad or not spaces:
        raise ValueError(f"issue_types[{name!r}]['spaces'] must name kNN-distance scores (e.g. px_knn_distance), "
                         f"got {value!r}.")
    return spaces


def add_flags(scores: pd.DataFrame, issue_types: dict | None = None) -> pd.DataFrame:
    """``scores`` with the flags of every declared issue whose rule runs here (:data:`ISSUES`:
    ``flag_near_duplicate`` with ``duplicate_group``, ``flag_outlier`` and, with labels, ``flag_class_imbalance``;
    ``flag_label_issue`` comes with the supervised family, the image checks' ``flag_dark`` etc. with CleanVision's
    step), each with its settings (``issue_types`` overrides, :func:`issue_settings`), which ``attrs["issues"]``
    records."""
    out = scores.copy()
    settings = issue_settings(issue_types)
    for issue in ISSUES.values():
        if not issue.runs_on(out):
            continue
        found = issue.find(out, settings[issue.name])
        for col, values in (found.items() if isinstance(found, pd.DataFrame) else [(issue.flag, found)]):
            out[col] = values
    out.attrs["issues"] = settings
    return out


# ------------------------------------------------------------------------------------------ result views
def issues(scores: pd.DataFrame, name: str, flagged_only: bool = True) -> pd.DataFrame:
    """The rows of the issue ``name`` (Datalab's ``get_issues``): per sample id ``is_issue`` (its flag),
    ``score`` (the issue's declared score, its suspicious end in ``attrs["direction"]``), and ``file``, ``given``
    and ``suggested`` class where the table has them; most suspicious first (ties by sample id), only the flagged
    ones unless ``flagged_only=False``.

    >>> issues(score_dataset(images, labels), "label_issue").head()   # doctest: +SKIP"""
    if name not in ISSUES:
        raise ValueError(f"Unknown issue type {name!r}: choose from {', '.join(ISSUES)}.")
    issue = ISSUES[name]
    if issue.flag not in scores:
        raise ValueError(f"The table has no {issue.flag} column: score the families that find {name} issues.")
    has_score = issue.score in scores
    cols = {"is_issue": scores[issue.flag].astype(bool),
            "score": scores[issue.score].astype(float) if has_score else pd.Series(np.nan, index=scores.index)}
    for out, col in (("file", "file"), ("given", "label"), ("suggested", "cl_predicted_label")):
        if col in scores:
            cols[out] = scores[col]
    rows = pd.DataFrame(cols, index=scores.index)
    if flagged_only:
        rows = rows[rows["is_issue"]]
    worse = -1.0 if issue.lower_is_worse() else 1.0
    order = rows.assign(_k=-worse * rows["score"], _id=rows.index).sort_values(["_k", "_id"], kind="stable").index
    out = rows.loc[order]
    out.attrs["direction"] = "lower" if issue.lower_is_worse() else "higher"
    return out


def issue_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per issue type the table has a flag for (Datalab's ``get_issue_summary``): ``issue``, ``flagged``,
    ``share``, ``rule`` (with the settings the flags were set with, ``attrs["issues"]``), ``score`` (the column that
    ranks its rows) and ``quality`` = 1 - the flagged share (1 = no sample has the issue)."""
    settings = issue_settings(scores.attrs.get("issues"))
    rows = []
    for issue in ISSUES.values():
        if issue.flag in scores:
            share = float(scores[issue.flag].astype(bool).mean())
            rows.append({"issue": issue.name, "flagged": int(scores[issue.flag].astype(bool).sum()), "share": share,
                         "rule": issue.describe(settings[issue.name]), "score": issue.score, "quality": 1 - share})
    return pd.DataFrame(rows, columns=["issue", "flagged", "share", "rule", "score", "quality"])
