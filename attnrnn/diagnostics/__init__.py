"""Attention diagnostics: does the attention explain the prediction, and does it align?

:mod:`attnrnn.diagnostics.measures` holds the pure measures the diagnostics are built from
(rank agreement, distances between attention distributions, entropy, alignment error rate);
:mod:`attnrnn.diagnostics.classifier` the tests of a classifier's attention pooling
(feature importance by gradient x input, integrated gradients and leave-one-out, and
its agreement with the attention; permuted attention; erasure) and
:mod:`attnrnn.diagnostics.baselines` Wiegreffe & Pinter's baselines;
:mod:`attnrnn.diagnostics.seq2seq` and :mod:`attnrnn.diagnostics.alignment` those of an
encoder-decoder, :mod:`attnrnn.diagnostics.speech` those of a speech recognizer;
:mod:`attnrnn.diagnostics.common` what they share (eval mode, the report's sections) and
:mod:`attnrnn.diagnostics.run` the ``attnrnn diagnose`` command.
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
