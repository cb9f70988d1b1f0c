"""Measures that attention diagnostics are built from: rank agreement, distances between
distributions, entropy, and alignment quality against reference links.

Every function is pure. Inputs may be NumPy arrays, PyTorch tensors (detached and moved to
the CPU here) or nested sequences; they are read as float64. Glossary: T target length,
S source length, ``...`` any leading (batch) axes.

- Rankings (:func:`kendall_tau`, :func:`top_k_overlap`) compare two scorings of the same S
  items, e.g. attention weights and gradient importance of S tokens.
- Distributions (:func:`total_variation`, :func:`jensen_shannon`, :func:`entropy`) are
  probability vectors over the last axis: non-negative, each summing to 1 (within 1e-3;
  they are not renormalized, so slice padding off or keep its zero weight).
- Links are sets of ``(target_index, source_index)`` pairs (:data:`Link`): the reference
  alignment of a pair, or links read off a (T, S) attention matrix by :func:`argmax_links`
  and :func:`threshold_links`.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, NamedTuple

import numpy as np
import torch

from attnrnn.extras import require

Link = tuple[int, int]  # (target_index, source_index)
_SUM_TOLERANCE = 1e-3


def _as_array(values: Any) -> np.ndarray:
    """``values`` as a float64 NumPy array (a tensor is detached and copied to the CPU)."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def _check_finite(name: str, values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} has NaN or infinite values")


def _rankings(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two equally long, finite 1-D score vectors of shape (S,)."""
    first, second = _as_array(a), _as_array(b)
    if first.ndim != 1 or first.shape != second.shape:
        raise ValueError(
            f"need two 1-D score vectors of the same length, got {first.shape} and {second.shape}"
        )
    _check_finite("a", first)
    _check_finite("b", second)
    return first, second


def kendall_tau(a: Any, b: Any) -> float:
    """Kendall's τ-b between the rankings that scores ``a`` and ``b`` (each (S,)) induce.

    1 when both order the S items the same way, -1 when one reverses the other; τ-b counts
    ties (``scipy.stats.kendalltau``). Rule for the undefined case: when either input is
    constant (or S < 2), it ranks nothing, so it agrees with no ranking and τ is 0.0 (where
    SciPy would return NaN). Inputs with NaN or infinite scores raise ``ValueError``.
    """
    first, second = _rankings(a, b)
    if first.size < 2 or np.all(first == first[0]) or np.all(second == second[0]):
        return 0.0
    tau = require("scipy.stats").kendalltau(first, second, variant="b").statistic
    return 0.0 if np.isnan(tau) else float(tau)


def top_k_overlap(a: Any, b: Any, k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k for scores ``a`` and ``b`` (each (S,)), in [0, 1].

    top-k holds the indices of the k largest scores; equal scores are ranked by index, the
    lower first (a stable sort), so the result is deterministic. Needs 1 <= k <= S.
    """
    first, second = _rankings(a, b)
    if not 1 <= k <= first.size:
        raise ValueError(f"need 1 <= k <= {first.size} (the number of items), got k={k}")
    top_first = set(np.argsort(-first, kind="stable")[:k].tolist())
    top_second = set(np.argsort(-second, kind="stable")[:k].tolist())
    return len(top_first & top_second) / k


def _distribution(name: str, values: Any) -> np.ndarray:
    """``values`` (..., S) checked to be probability distributions over the last axis."""
    array = _as_array(values)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} needs a non-empty last axis, got shape {array.shape}")
    _check_finite(name, array)
    if np.any(array < 0):
        raise ValueError(f"{name} has negative probabilities")
    sums = array.sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > _SUM_TOLERANCE):
        raise ValueError(f"{name} does not sum to 1 over its last axis (sums: {sums})")
    return array


def _distribution_pair(p: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    first, second = _distribution("p", p), _distribution("q", q)
    if first.shape != second.shape:
        raise ValueError(f"p and q differ in shape: {first.shape} and {second.shape}")
    return first, second


def total_variation(p: Any, q: Any) -> np.ndarray:
    """Total variation distance 0.5 * Σ|p - q| over the last axis, in [0, 1].

    Shapes: p, q (..., S) -> (...) (a 0-d array for one pair of (S,) vectors; ``float()`` it).
    0 for identical distributions, 1 for distributions with disjoint support.
    """
    first, second = _distribution_pair(p, q)
    return np.asarray(0.5 * np.abs(first - second).sum(axis=-1))


def _plogp_ratio(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Σ p log2(p / m) over the last axis, with 0 log 0 = 0 (m > 0 wherever p > 0)."""
    positive = p > 0
    ratio = np.divide(p, m, out=np.ones_like(p), where=positive)
    return np.where(positive, p * np.log2(ratio), 0.0).sum(axis=-1)


def jensen_shannon(p: Any, q: Any) -> np.ndarray:
    """Jensen-Shannon divergence in bits (base 2), so in [0, 1]: the divergence, not its
    square root (the Jensen-Shannon distance).

    JSD = ½ KL(p ‖ m) + ½ KL(q ‖ m) with m = ½ (p + q); zero probabilities are handled
    (0 log 0 = 0), so disjoint supports give exactly 1. Shapes: p, q (..., S) -> (...).
    """
    first, second = _distribution_pair(p, q)
    middle = 0.5 * (first + second)
    divergence = 0.5 * _plogp_ratio(first, middle) + 0.5 * _plogp_ratio(second, middle)
    return np.asarray(np.clip(divergence, 0.0, 1.0))  # clip: rounding may leave [0, 1]


def entropy(p: Any, normalized: bool = False) -> np.ndarray:
    """Shannon entropy of distributions ``p`` over the last axis, in bits (base 2).

    Shapes: p (..., S) -> (...). With ``normalized=True`` the entropy is divided by its
    maximum log2(S), so it lies in [0, 1]: 0 for one-hot attention, 1 for uniform attention
    over all S positions (S counts padding too: slice it off to normalize by the true
    length); a single position (S = 1) has normalized entropy 0.
    """
    array = _distribution("p", p)
    positive = array > 0
    logs = np.log2(np.where(positive, array, 1.0))
    bits = np.clip(-(array * logs).sum(axis=-1), 0.0, None)  # clip: -0.0 and rounding
    if not normalized:
        return np.asarray(bits)
    size = array.shape[-1]
    if size == 1:
        return np.zeros_like(bits)
    return np.asarray(np.clip(bits / np.log2(size), 0.0, 1.0))


class PrecisionRecall(NamedTuple):
    precision: float  # |predicted ∩ reference| / |predicted|
    recall: float  # |predicted ∩ reference| / |reference|


def alignment_error_rate(
    predicted: Set[Link], sure: Set[Link], possible: Set[Link] | None = None
) -> float:
    """Och & Ney's alignment error rate, in [0, 1] (0 is perfect):

        AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

    with A the ``predicted`` links, S the ``sure`` and P the ``possible`` reference links.
    P ⊇ S by definition, so P is taken as ``possible ∪ sure`` (``None``: P = S); callers may
    pass only the ambiguous links as ``possible``. When A and S are both empty nothing was
    to be aligned and nothing was, and the rate is 0.0.
    """
    predicted, sure = set(predicted), set(sure)
    possible = sure | set(possible or ())
    denominator = len(predicted) + len(sure)
    if denominator == 0:
        return 0.0
    return 1.0 - (len(predicted & sure) + len(predicted & possible)) / denominator


def link_precision_recall(predicted: Set[Link], reference: Set[Link]) -> PrecisionRecall:
    """Precision and recall of ``predicted`` links against ``reference`` links.

    An empty denominator gives 0.0 (nothing predicted has no precision, nothing to recall
    has no recall), except that two empty sets agree perfectly: (1.0, 1.0). With sure and
    possible references, Och & Ney measure precision against P and recall against S: call
    this twice and keep ``.precision`` of the first and ``.recall`` of the second.
    """
    predicted, reference = set(predicted), set(reference)
    if not predicted and not reference:
        return PrecisionRecall(1.0, 1.0)
    common = len(predicted & reference)
    precision = common / len(predicted) if predicted else 0.0
    recall = common / len(reference) if reference else 0.0
    return PrecisionRecall(precision, recall)


def _attention_matrix(attention: Any) -> np.ndarray:
    matrix = _as_array(attention)
    if matrix.ndim != 2:
        raise ValueError(f"need one (T, S) attention matrix, got shape {matrix.shape}")
    _check_finite("attention", matrix)
    return matrix


def argmax_links(attention: Any) -> set[Link]:
    """One link per target position t: (t, the source position it attends to most).

    ``attention`` is (T, S) (one sentence, padding sliced off); ties go to the lowest
    source index. Returns T links (none when S = 0).
    """
    matrix = _attention_matrix(attention)
    if matrix.shape[1] == 0:
        return set()
    return {(target, int(source)) for target, source in enumerate(matrix.argmax(axis=1))}


def threshold_links(attention: Any, threshold: float) -> set[Link]:
    """Every (t, s) whose weight ``attention[t, s]`` is at least ``threshold`` (> 0).

    ``attention`` is (T, S). A target position may get several links or none; with a
    threshold above 0.5 each gets at most one.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be above 0, got {threshold}")
    matrix = _attention_matrix(attention)
    targets, sources = np.nonzero(matrix >= threshold)
    return {(int(t), int(s)) for t, s in zip(targets.tolist(), sources.tolist(), strict=True)}
