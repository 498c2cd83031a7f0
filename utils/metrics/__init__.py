"""Per-sample metrics of training dynamics, one module each: epoch aggregates (``aggregates``), code entropy / norm /
drift / silhouette (``embedding``), kNN and LID (``lid``), batched SSIM (``ssim``), learning and forgetting times
(``times``, numpy only), a flag's precision and recall (``detection``). Import from the module, e.g. ``from utils.metrics.lid import knn``."""
