"""Per-sample scores: the registry, one module per family, the image battery, evaluation, selection, score_dataset."""
