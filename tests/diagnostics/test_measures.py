"""Tests of the diagnostic measures on constructed cases whose answer is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnrnn.diagnostics import (
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

scores = st.lists(st.floats(-100, 100), min_size=2, max_size=12)
weights = st.lists(st.floats(0.0, 10.0), min_size=1, max_size=12).filter(lambda w: sum(w) > 1e-3)


def normalized(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array / array.sum()


def diagonal(size: int) -> set[tuple[int, int]]:
    return {(i, i) for i in range(size)}


def anti_diagonal(size: int) -> set[tuple[int, int]]:
    return {(i, size - 1 - i) for i in range(size)}


# Rankings


def test_kendall_tau_of_identical_and_reversed_rankings():
    importance = [0.1, 0.5, 0.2, 0.9, 0.3]
    assert kendall_tau(importance, importance) == pytest.approx(1.0)
    assert kendall_tau(importance, [10 * x + 3 for x in importance]) == pytest.approx(1.0)
    assert kendall_tau(importance, [-x for x in importance]) == pytest.approx(-1.0)


def test_kendall_tau_by_hand_and_on_tensors():
    # (1, 2, 3, 4) vs (1, 3, 2, 4): 5 concordant pairs, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    attention = torch.tensor([0.1, 0.6, 0.3], requires_grad=True)
    assert kendall_tau(attention, torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(1.0)


def test_kendall_tau_is_zero_for_constant_input():
    assert kendall_tau([0.25, 0.25, 0.25, 0.25], [1, 2, 3, 4]) == 0.0  # uniform attention
    assert kendall_tau([1, 2, 3], [5, 5, 5]) == 0.0
    assert kendall_tau([7], [3]) == 0.0


def test_kendall_tau_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau([1.0, math.nan, 2.0], [1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        kendall_tau([1, 2, 3], [1, 2])


@given(scores, st.data())
def test_kendall_tau_is_symmetric_and_bounded(first, data):
    second = data.draw(st.lists(st.floats(-100, 100), min_size=len(first), max_size=len(first)))
    tau = kendall_tau(first, second)
    assert -1.0 - 1e-12 <= tau <= 1.0 + 1e-12
    assert tau == pytest.approx(kendall_tau(second, first))
    assert kendall_tau(first, [-x for x in first]) == pytest.approx(-kendall_tau(first, first))


def test_top_k_overlap():
    attention = [0.5, 0.3, 0.1, 0.1]
    assert top_k_overlap(attention, attention, 2) == 1.0
    assert top_k_overlap(attention, [0.0, 0.1, 0.4, 0.5], 2) == 0.0
    assert top_k_overlap(attention, [0.5, 0.0, 0.4, 0.1], 2) == 0.5  # {0, 1} vs {0, 2}
    assert top_k_overlap(attention, [0.0, 0.1, 0.4, 0.5], 4) == 1.0  # k = S: all items
    assert top_k_overlap([1, 1, 1], [3, 2, 1], 1) == 1.0  # ties go to the lower index
    for k in (0, 5):
        with pytest.raises(ValueError, match="k"):
            top_k_overlap(attention, attention, k)


# Distributions


def test_total_variation_of_identical_disjoint_and_hand_computed():
    p = np.array([0.2, 0.3, 0.5])
    assert float(total_variation(p, p)) == 0.0
    assert float(total_variation([1.0, 0.0, 0.0], [0.0, 0.5, 0.5])) == pytest.approx(1.0)
    assert float(total_variation([0.5, 0.5], [0.9, 0.1])) == pytest.approx(0.4)


def test_measures_keep_leading_axes():
    p = torch.softmax(torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0)), -1)
    q = torch.full((2, 3, 5), 0.2)
    assert total_variation(p, q).shape == (2, 3)
    assert jensen_shannon(p, q).shape == (2, 3)
    assert entropy(p).shape == (2, 3)
    assert np.allclose(entropy(q, normalized=True), 1.0)
    expected = [float(total_variation(p[i, j], q[i, j])) for i in range(2) for j in range(3)]
    assert np.allclose(total_variation(p, q).ravel(), expected)


def test_jensen_shannon_of_identical_disjoint_and_hand_computed():
    p = np.array([0.1, 0.0, 0.9])
    assert float(jensen_shannon(p, p)) == pytest.approx(0.0, abs=1e-12)
    assert float(jensen_shannon([1.0, 0.0], [0.0, 1.0])) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4)
    by_hand = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    assert float(jensen_shannon([1.0, 0.0], [0.5, 0.5])) == pytest.approx(by_hand)


@given(weights, st.data())
def test_divergences_are_bounded_and_symmetric(first, data):
    size = len(first)
    second = data.draw(
        st.lists(st.floats(0.0, 10.0), min_size=size, max_size=size).filter(lambda w: sum(w) > 1e-3)
    )
    p, q = normalized(first), normalized(second)
    tvd, jsd = float(total_variation(p, q)), float(jensen_shannon(p, q))
    assert 0.0 <= tvd <= 1.0 + 1e-12 and 0.0 <= jsd <= 1.0
    assert tvd == pytest.approx(float(total_variation(q, p)))
    assert jsd == pytest.approx(float(jensen_shannon(q, p)), abs=1e-12)
    assert jsd <= tvd + 1e-9  # JSD in bits never exceeds the total variation distance


def test_distributions_are_checked():
    with pytest.raises(ValueError, match="sum to 1"):
        total_variation([0.5, 0.2], [0.5, 0.5])
    with pytest.raises(ValueError, match="negative"):
        jensen_shannon([1.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="shape"):
        total_variation([1.0], [0.5, 0.5])


def test_entropy_of_one_hot_uniform_and_hand_computed():
    assert float(entropy([0.0, 1.0, 0.0, 0.0])) == 0.0
    assert float(entropy([0.25] * 4)) == pytest.approx(2.0)  # bits
    assert float(entropy([0.25] * 4, normalized=True)) == pytest.approx(1.0)
    assert float(entropy([0.5, 0.5, 0.0, 0.0], normalized=True)) == pytest.approx(0.5)
    assert float(entropy([1.0], normalized=True)) == 0.0


# Alignment


def test_alignment_error_rate_of_perfect_and_reversed_alignments():
    size = 6  # even: the diagonal and the anti-diagonal share no cell
    assert alignment_error_rate(diagonal(size), diagonal(size)) == 0.0
    assert alignment_error_rate(anti_diagonal(size), diagonal(size)) == 1.0
    assert alignment_error_rate(anti_diagonal(size), diagonal(size), diagonal(size)) == 1.0


def test_alignment_error_rate_with_possible_links_by_hand():
    sure = {(0, 0), (1, 1)}
    possible = {(2, 2), (2, 3)}  # only the ambiguous ones: P is taken as possible ∪ sure
    assert alignment_error_rate({(0, 0), (1, 1), (2, 3)}, sure, possible) == 0.0
    # A = {(0,0), (2,2), (2,5)}: |A∩S| = 1, |A∩P| = 2, |A| + |S| = 5
    assert alignment_error_rate({(0, 0), (2, 2), (2, 5)}, sure, possible) == pytest.approx(0.4)
    assert alignment_error_rate(set(), set()) == 0.0
    assert alignment_error_rate(set(), sure) == 1.0


def test_link_precision_recall():
    reference = {(0, 0), (1, 1), (2, 2), (3, 3)}
    assert link_precision_recall(reference, reference) == (1.0, 1.0)
    result = link_precision_recall({(0, 0), (1, 1), (2, 0)}, reference)
    assert result.precision == pytest.approx(2 / 3) and result.recall == pytest.approx(0.5)
    assert link_precision_recall(set(), reference) == (0.0, 0.0)
    assert link_precision_recall(set(), set()) == (1.0, 1.0)


def test_argmax_links_of_identity_and_reversed_attention():
    assert argmax_links(np.eye(5)) == diagonal(5)
    assert argmax_links(torch.eye(4).flip(1)) == anti_diagonal(4)
    assert argmax_links([[0.5, 0.5], [0.2, 0.8]]) == {(0, 0), (1, 1)}  # ties: lower index
    assert alignment_error_rate(argmax_links(np.eye(4)), diagonal(4)) == 0.0
    with pytest.raises(ValueError, match="T, S"):
        argmax_links(np.ones(3))


def test_threshold_links():
    attention = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [0.0, 0.0, 1.0]])
    assert threshold_links(attention, 0.5) == {(0, 0), (2, 2)}
    assert threshold_links(attention, 0.4) == {(0, 0), (1, 0), (1, 1), (2, 2)}
    assert threshold_links(np.eye(3), 1.0) == diagonal(3)
    with pytest.raises(ValueError, match="threshold"):
        threshold_links(attention, 0.0)
