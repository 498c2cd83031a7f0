"""A report a practitioner can act on, from one :func:`utils.scores.dataset.score_dataset` table: what was flagged
and why, the images behind each issue, the score distributions with their thresholds, and action lists.

:func:`write_report` writes into one folder:

* ``scores.parquet`` — the per-sample table, lossless (``utils.engine.cache.save_table``), with ``file`` and
  ``class_name`` columns when the images came from a folder;
* ``relabel.csv`` (sample_id, file, given, suggested: the label issues with the held-out model's class),
  ``duplicates.csv`` (duplicate_group, sample_id, file, keep: one member of each group is kept),
  ``outliers.csv`` (to look at, not dropped) and ``keep.csv`` (the samples to keep: every sample minus the label
  issues, all but one member of each duplicate group and the images an image check flags, unless that check fires
  on most of the dataset — :func:`utils.scores.flags.clean_keep`; or a fraction of those chosen by a score and a
  policy of :mod:`utils.scores.selection`);
* ``report.html`` — one self-contained page (figures embedded): a "start here" block (the issues with hits, in the
  order to act on them, :attr:`utils.scores.flags.Issue.order`, each with its count and a link to its section), the
  issues without hits in one line, then a section per issue with hits (count, the rule, what to do, a note when it
  fires on much of the dataset, the top examples and their images), the distributions of the scores behind the
  flags with the thresholds drawn; and the same figures as PNGs.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.engine.cache import save_table
from utils.report import plots
from utils.scores.flags import ISSUES, issue_settings, issues
from utils.scores.registry import ranked


def _settings(scores: pd.DataFrame) -> dict:
    """The issue settings the table's flags were set with (``attrs["issues"]``, :func:`add_flags`), else the
    defaults."""
    return issue_settings(scores.attrs.get("issues"))


def _issue_rows(scores: pd.DataFrame, name: str) -> pd.Index:
    """The sample ids flagged with the issue ``name``, most suspicious first by its declared score."""
    return issues(scores, name).index


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _names(scores: pd.DataFrame, classes) -> tuple:
    def name(c):
        return str(classes[c]) if classes is not None and 0 <= c < len(classes) else str(c)
    return name


def action_lists(scores: pd.DataFrame, class_names=None, keep_fraction: float | None = None,
                 keep_score: str | None = None, keep_policy: str = "keep_hard", seed: int = 0) -> dict:
    """The four action lists as DataFrames: ``relabel``, ``duplicates``, ``outliers``, ``keep`` (see the module
    docstring). ``keep_fraction`` (of all samples) with ``keep_score`` (a registered score, oriented by the
    registry) and ``keep_policy`` selects among the samples the flags leave."""
    from utils.scores.flags import clean_keep, duplicate_keepers
    from utils.scores.registry import oriented
    from utils.scores.selection import keep_count, select

    name = _names(scores, class_names)
    file = scores["file"] if "file" in scores else pd.Series("", index=scores.index)
    out = {}
    if "flag_label_issue" in scores:
        rows = _issue_rows(scores, "label_issue")
        r = scores.loc[rows]
        out["relabel"] = pd.DataFrame({
            "sample_id": rows, "file": file.loc[rows].to_numpy(), "given": r["label"].to_numpy(),
            "given_name": [name(c) for c in r["label"]],
            "suggested": r.get("cl_predicted_label", pd.Series(-1, index=rows)).to_numpy(),
            "suggested_name": [name(c) for c in r.get("cl_predicted_label", pd.Series(-1, index=rows))],
            "label_quality": r["cl_label_quality"].to_numpy()})
    if "duplicate_group" in scores:   # the pixel family ran
        groups = scores[scores["duplicate_group"] >= 0]
        keeper = duplicate_keepers(scores["duplicate_group"]).loc[groups.index]
        out["duplicates"] = pd.DataFrame({"duplicate_group": groups["duplicate_group"].to_numpy(),
                                          "sample_id": groups.index, "file": file.loc[groups.index].to_numpy(),
                                          "nn_distance": groups["px_nn_distance"].to_numpy(),
                                          "keep": keeper.to_numpy()}).sort_values(["duplicate_group", "sample_id"])
    if "flag_outlier" in scores:
        rows = _issue_rows(scores, "outlier")
        spaces = _settings(scores)["outlier"]["spaces"]
        out["outliers"] = pd.DataFrame({"sample_id": rows, "file": file.loc[rows].to_numpy(),
                                        **{c: scores.loc[rows, c].to_numpy() for c in spaces if c in scores}})
    kept = scores.index[clean_keep(scores).to_numpy()]
    if keep_fraction is not None:
        if keep_score is None:
            raise ValueError("keep_fraction needs keep_score: the registered score that ranks the samples kept.")
        if keep_score not in scores:
            raise ValueError(f"--keep-score {keep_score} is not in this run's table (its family did not run, or it "
                             "needs labels); pick a score the table has, e.g. px_knn_distance.")
        k = keep_count(keep_fraction, len(scores))
        if k > len(kept):
            raise ValueError(f"keep_fraction {keep_fraction} asks for {k} samples but the flags leave {len(kept)}; "
                             "keep a smaller fraction.")
        ranked = oriented(scores.loc[kept, [keep_score]])[keep_score]
        kept = pd.Index(select(ranked, k / len(kept), keep_policy, seed))
    out["keep"] = pd.DataFrame({"sample_id": kept, "file": file.loc[kept].to_numpy()})
    return out


def write_report(scores: pd.DataFrame, images, out, class_names=None, top: int = 16, sections=(), **keep) -> Path:
    """Write the table, the action lists, the figures and ``report.html`` into ``out``; returns the page's path.

    ``scores``: the table of :func:`utils.scores.dataset.score_dataset` (optionally with ``file`` and ``class_name``
    columns); ``images``: ``[N, C, H, W]`` in [0, 1], row i = the sample of ``scores.index[i]``; ``class_names``:
    the names of the classes 0..C-1; ``keep``: ``keep_fraction``, ``keep_score``, ``keep_policy`` of
    :func:`action_lists`; ``sections``: more ``(caption, figure)`` pairs shown first (e.g. what to label,
    :func:`utils.report.to_label_report.to_label_sections`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images)
    row = pd.Series(np.arange(len(scores)), index=scores.index)
    name = _names(scores, class_names)
    save_table(scores, out / "scores.parquet")
    lists = action_lists(scores, class_names, **keep)
    for key, frame in lists.items():
        frame.to_csv(out / f"{key}.csv", index=False)

    figures = [(caption, fig, "lead") for caption, fig in sections]   # where each goes: lead, an issue, rest
    settings = _settings(scores)
    found, sections_of = [], {}
    for issue in sorted((i for i in ISSUES.values() if i.flag in scores), key=lambda i: i.order):
        flagged = scores[issue.flag].astype(bool)
        if not flagged.any():
            continue
        rows = issues(scores, issue.name)   # the flagged rows, most suspicious first
        found.append(issue)
        sections_of[issue.name] = {"flagged": int(flagged.sum()), "share": float(flagged.mean()),
                                   "rule": issue.describe(settings[issue.name]), "note": issue.note(flagged.mean()),
                                   "examples": _examples(rows, issue.name, name)}
        if issue.shown:
            figures.append((*_issue_grid(issue.name, scores, images, row, rows.index, name, top), issue.name))
    no_hits = [i for i in ISSUES.values() if i.flag in scores and not scores[i.flag].astype(bool).any()]
    hard = next((c for c in ("mean_loss", "ae_loss_mean", "px_knn_distance") if c in scores), None)
    if hard is not None:
        order = ranked(scores, hard)
        for label, ids in (("hardest", order[:top]), ("easiest", order[::-1][:top])):
            figures.append((f"The {top} {label} by {hard}", plots.image_grid(
                images[row.loc[ids].to_numpy()], titles=[str(i) for i in ids], ncols=8, border=BORDER), "rest"))
    if "bt_prototype_distance" in scores or "px_prototype_distance" in scores:
        rare = "bt_prototype_distance" if "bt_prototype_distance" in scores else "px_prototype_distance"
        ids = ranked(scores, rare)[:top]
        figures.append((f"The {top} rarest by {rare} (far from every prototype)", plots.image_grid(
            images[row.loc[ids].to_numpy()], titles=[str(i) for i in ids], ncols=8, border=BORDER), "rest"))
    if _panels(scores):   # none when no family behind a flag ran
        figures.append(("Distributions of the scores behind the flags, thresholds dashed", _distributions(scores),
                        "rest"))

    pngs = []
    for k, (caption, fig, place) in enumerate(figures):
        data = _png(fig)
        path = out / f"figure_{k}.png"
        path.write_bytes(data)
        pngs.append((caption, data, path.name, place))
    page = out / "report.html"
    page.write_text(_html(scores, found, sections_of, no_hits, pngs, lists))
    return page


BORDER = "0.7"   # a grey line around every tile: a white image shows on the white page
PAIRED = ("near_duplicate", "exact_duplicates")   # issues whose images are shown as pairs (a copy and its source)


def _pairs(scores: pd.DataFrame, ids, count: int) -> list:
    """Up to ``count`` pairs (sample, its pixel nearest neighbour) from the flagged ``ids`` in order, each pair once
    (a copy and its source are each other's neighbour)."""
    seen, out = set(), []
    for s in ids:
        pair = (s, int(scores.loc[s, "px_nearest_id"]))
        if frozenset(pair) not in seen:
            seen.add(frozenset(pair))
            out.append(pair)
        if len(out) == count:
            break
    return out


def _issue_grid(issue: str, scores, images, row, flagged, name, top: int):
    """(caption, figure) of the ``top`` most suspicious images of ``issue`` (``flagged``: its ids, most suspicious
    first), each tile titled with its sample id: copies as pairs side by side (a sample, then its nearest neighbour;
    each pair once), label issues with the given -> suggested class under the id."""
    ids = flagged[:top]
    caption = f"{ISSUES[issue].title}: the {len(ids)} most suspicious"
    titles = [str(i) for i in ids]
    if issue in PAIRED and "px_nearest_id" in scores:
        pairs = _pairs(scores, flagged, top // 2)
        ids = [i for pair in pairs for i in pair]
        sign = "=" if issue == "exact_duplicates" else "~"
        titles = [f"{a} {sign} {b}" if k == 0 else f"{b} (nearest)" for a, b in pairs for k in (0, 1)]
        caption = f"{ISSUES[issue].title}: the {len(pairs)} most suspicious pairs, side by side"
    elif issue == "label_issue":
        titles = [f"{i}\n{name(scores.loc[i, 'label'])} -> {name(scores.loc[i, 'cl_predicted_label'])}"
                  if "cl_predicted_label" in scores else f"{i}\n{name(scores.loc[i, 'label'])}" for i in ids]
        caption += " (sample id, given -> suggested class)"
    return caption, plots.image_grid(images[row.loc[ids].to_numpy()], titles=titles, ncols=8, border=BORDER)


def _examples(flagged: pd.DataFrame, issue: str, name, count: int = 8) -> pd.DataFrame:
    """The top ``count`` of ``flagged`` (:func:`utils.scores.flags.issues` of ``issue``; Datalab's report table):
    sample id, file, the ranking score, the given and the suggested class where the table has them."""
    rows = flagged.head(count)
    out = pd.DataFrame({"sample id": rows.index})
    if "file" in rows:
        out["file"] = rows["file"].to_numpy()
    score = f"{ISSUES[issue].score} ({rows.attrs['direction']} = worse)"
    out[score] = [f"{v + 0.0:.3g}" for v in rows["score"]]   # + 0.0: no "-0"
    for col in ("given", "suggested"):
        if col in rows:
            out[col] = [name(int(c)) for c in rows[col]]
    return out


def _panels(scores: pd.DataFrame) -> list:
    """(column, threshold or None) of each score behind a flag the table has (:attr:`Issue.fences`)."""
    settings = _settings(scores)
    return [(c, thr) for i in ISSUES.values() if i.fences is not None and i.flag in scores
            for c, thr in i.fences(scores, settings[i.name]) if c in scores]


def _distributions(scores: pd.DataFrame):
    panels = _panels(scores)
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, (col, thr) in zip(axes[0], panels):
        ax.hist(scores[col], bins=60, color="tab:blue", alpha=0.8)
        if thr is not None:
            ax.axvline(thr, color="red", linestyle="--", label=f"threshold {thr:.3g}")
            ax.legend()
        ax.set(title=col, yscale="log")
    fig.tight_layout()
    return fig


def anchor(issue: str) -> str:
    """The id of the report's section on ``issue`` (the "start here" block links to it)."""
    return f"issue-{issue}"


def _img(data: bytes, name: str) -> str:
    return f"<img alt='{name}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def _html(scores: pd.DataFrame, found, sections_of: dict, no_hits, pngs, lists) -> str:
    """The page: the "start here" block (``found``: the issues with hits, in the order to act), the issues without
    hits in one line, the action lists, the extra sections, a section per issue with hits, the other figures."""
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Dataset report</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}img{max-width:100%}"
             ".start{background:#f3f6fb;border:1px solid #c9d6ea;padding:.5em 1.5em}"
             ".note{background:#fff6dd;border-left:4px solid #e0b000;padding:.4em .8em}</style></head><body>",
             f"<h1>Dataset report</h1><p>{len(scores)} samples"
             + (f", {scores['label'].nunique()} classes" if "label" in scores else ", no labels") + ".</p>",
             "<section class='start' id='start-here'><h2>Start here</h2>"]
    if found:
        parts.append("<p>Act on the issues in this order (each links to its section):</p><ol>")
        for issue in found:
            sec = sections_of[issue.name]
            widespread = (" (It fires on much of the dataset, which it describes rather than its issues: see the "
                          "note.)") if sec["note"] else ""
            parts.append(f"<li><a href='#{anchor(issue.name)}'>{esc(issue.title)}</a>: {sec['flagged']} "
                         f"{'image' if sec['flagged'] == 1 else 'images'} ({sec['share']:.1%}). "
                         f"{esc(issue.action)}.{widespread}</li>")
        parts.append("</ol>")
    else:
        parts.append("<p>No issue has hits: nothing to act on.</p>")
    if no_hits:
        parts.append(f"<p class='no-hits'>No hits: {esc(', '.join(i.title for i in no_hits))}.</p>")
    parts.append("</section><h2>Action lists</h2><ul>")
    parts += [f"<li><a href='{k}.csv'>{k}.csv</a>: {len(v)} rows</li>" for k, v in lists.items()]
    parts.append("</ul>")
    parts += [f"<h2>{esc(caption)}</h2>" + _img(data, name) for caption, data, name, place in pngs if place == "lead"]
    for issue in found:
        sec = sections_of[issue.name]
        parts.append(f"<section id='{anchor(issue.name)}'><h2>{esc(issue.title)}: {sec['flagged']} flagged "
                     f"({sec['share']:.1%})</h2><p><b>Rule:</b> {esc(sec['rule'])}.</p>"
                     f"<p><b>What to do:</b> {esc(issue.about)}</p>")
        if sec["note"]:
            parts.append(f"<p class='note'>{esc(sec['note'])}</p>")
        parts.append(f"<p><b>Quality score:</b> {1 - sec['share']:.3f} (1 - the flagged share). Most suspicious "
                     f"first:</p>" + sec["examples"].to_html(index=False, classes="examples", border=0))
        parts += [f"<h3>{esc(caption)}</h3>" + _img(data, name) for caption, data, name, place in pngs
                  if place == issue.name]
        parts.append("</section>")
    parts += [f"<h2>{esc(caption)}</h2>" + _img(data, name) for caption, data, name, place in pngs if place == "rest"]
    parts.append("</body></html>")
    return "\n".join(parts)
