"""Hard and rare sample estimation: data, models, per-sample tracking, metrics, evaluation, plots."""
