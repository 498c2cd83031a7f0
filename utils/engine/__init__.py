"""The training engine: models, tasks, recipes, the per-sample recorder, the one loop, protocols on it, the cache."""
