"""Per-sample scores: the registry, one module per family, the image battery, evaluation, selection, score_dataset.

``from utils.scores import score_dataset, ScoringConfig`` works, and ``issues`` / ``issue_summary`` (one issue's
rows, and per issue its count, rule and quality; :mod:`utils.scores.flags`); the names are loaded on first use, so
importing a numpy-only module of this package (e.g. ``utils.scores.dynamics``) does not import torch."""

__all__ = ["score_dataset", "ScoringConfig", "save_scores", "load_scores", "issues", "issue_summary"]
_FLAGS = ("issues", "issue_summary")


def __getattr__(name):
    if name in _FLAGS:
        from utils.scores import flags
        return getattr(flags, name)
    if name in __all__:
        from utils.scores import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module 'utils.scores' has no attribute {name!r}")
