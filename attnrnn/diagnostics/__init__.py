"""Attention diagnostics: does the attention explain the prediction, and does it align?

:mod:`attnrnn.diagnostics.measures` holds the pure measures the diagnostics are built from
(rank agreement, distances between attention distributions, entropy, alignment error rate);
:mod:`attnrnn.diagnostics.classifier` the tests of a classifier's attention pooling
(feature importance by gradient x input, integrated gradients and leave-one-out, and
its agreement with the attention; permuted attention; erasure).
"""

from attnrnn.diagnostics.measures import (
    Link,
    PrecisionRecall,
    alignment_error_rate,
    argmax_links,
    entropy,
    jensen_shannon,
    kendall_tau,
    link_precision_recall,
    threshold_links,
    top_k_overlap,
    total_variation,
)

__all__ = [
    "Link",
    "PrecisionRecall",
    "alignment_error_rate",
    "argmax_links",
    "entropy",
    "jensen_shannon",
    "kendall_tau",
    "link_precision_recall",
    "threshold_links",
    "top_k_overlap",
    "total_variation",
]
