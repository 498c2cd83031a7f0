"""Per-sample scores: the registry, one module per family, the image battery, evaluation, selection, score_dataset.

``from utils.scores import score_dataset, ScoringConfig`` works; the names are loaded on first use, so importing a
numpy-only module of this package (e.g. ``utils.scores.dynamics``) does not import torch."""

__all__ = ["score_dataset", "ScoringConfig", "save_scores", "load_scores"]


def __getattr__(name):
    if name in __all__:
        from utils.scores import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module 'utils.scores' has no attribute {name!r}")
