"""Per-sample metrics of training dynamics: epoch aggregates, code entropy/norm/drift/silhouette, LID, SSIM.

Every function takes plain arrays or tensors and returns one value per sample; `aggregate` turns a
``[epochs, samples]`` series into a tidy table with the original study's column names.
"""
from utils.metrics.aggregates import aggregate, scaled_epochs
from utils.metrics.embedding import bottleneck_entropy, drift, norm, silhouette, silhouette_from_labels
from utils.metrics.lid import knn, lid_mle
from utils.metrics.ssim import gaussian_window, ssim

__all__ = ["aggregate", "scaled_epochs", "bottleneck_entropy", "drift", "norm", "silhouette",
           "silhouette_from_labels", "knn", "lid_mle", "ssim", "gaussian_window"]
