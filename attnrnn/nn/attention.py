"""Attention modules with one contract.

Every module here implements::

    context, weights = attention(query, keys, values, mask, projected_keys=None)

    query:  (B, T, Hq)   T = 1 for one decoder step
    keys:   (B, S, Hk)
    values: (B, S, Hv)
    mask:   (B, S) or (B, T, S) bool, True on valid positions (None: all valid)
    context: (B, T, Hv)  (multi-head: (B, T, output_size))
    weights: (B, T, S)   rows sum to 1, exactly 0 on masked positions

Modules are stateless between calls. What can be computed once per source
sequence (the projected keys of additive attention) comes from
``attention.precompute(keys)``; the caller keeps it and passes it back as
``projected_keys``, so nothing is ever cached on ``self``. Location-aware
attention also reads the previous step's weights, ``previous_weights``
(B, S), and coverage attention the sum of all previous weights, ``coverage``
(B, S); the caller keeps those too (modules whose ``uses_previous_weights`` /
``uses_coverage`` is False ignore them). Such modules score one step at a
time (T = 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnrnn.errors import ConfigError
from attnrnn.nn.masking import expand_mask, masked_softmax


class Attention(nn.Module):
    """Base class: subclasses implement :meth:`score`; the weighting is shared."""

    uses_previous_weights = False
    uses_coverage = False

    def precompute(self, keys: torch.Tensor) -> torch.Tensor | None:
        """Per-source work that does not depend on the query (None when there is none).

        Args:
            keys: (B, S, Hk).
        """
        return None

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unnormalised scores (B, T, S) for query (B, T, Hq) and keys (B, S, Hk)."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(context (B, T, Hv), weights (B, T, S))``; see the module docstring."""
        if projected_keys is None:
            projected_keys = self.precompute(keys)
        scores = self.score(query, keys, projected_keys, previous_weights, coverage)  # (B,T,S)
        weights = masked_softmax(scores, expand_mask(mask, query.size(1)), dim=-1)  # (B, T, S)
        context = torch.bmm(weights, values)  # (B, T, Hv)
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau et al. (2014): ``score(q, k) = v^T tanh(W_q q + W_k k)``."""

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.query_projection = nn.Linear(query_size, attention_size, bias=False)
        self.key_projection = nn.Linear(key_size, attention_size, bias=True)
        self.energy = nn.Linear(attention_size, 1, bias=False)

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_projection(keys)  # (B, S, A)

    def _step_scores(
        self, query: torch.Tensor, projected_keys: torch.Tensor | None, extra: torch.Tensor
    ) -> torch.Tensor:
        """Scores (B, 1, S) of one step whose hidden layer also adds ``extra`` (B, S, A)
        (location features, coverage): ``v^T tanh(W_q q + W_k k_s + extra_s)``."""
        assert projected_keys is not None
        if query.size(1) != 1:
            name = type(self).__name__
            raise ValueError(f"{name} scores one step at a time, got T={query.size(1)}")
        hidden = torch.tanh(self.query_projection(query) + projected_keys + extra)  # (B, S, A)
        return self.energy(hidden).squeeze(-1).unsqueeze(1)  # (B, 1, S)

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        assert projected_keys is not None
        projected_query = self.query_projection(query)  # (B, T, A)
        # (B, T, 1, A) + (B, 1, S, A) -> (B, T, S, A)
        hidden = torch.tanh(projected_query.unsqueeze(2) + projected_keys.unsqueeze(1))
        return self.energy(hidden).squeeze(-1)  # (B, T, S)


class DotAttention(Attention):
    """Luong et al. (2015) "dot": ``score(q, k) = q^T k`` (query and key sizes equal)."""

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)


class ScaledDotAttention(Attention):
    """Vaswani et al. (2017): ``score(q, k) = q^T k / sqrt(d)``."""

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        scale = 1.0 / math.sqrt(query.size(-1))
        return torch.bmm(query, keys.transpose(1, 2)) * scale  # (B, T, S)


class GeneralAttention(Attention):
    """Luong et al. (2015) "general": ``score(q, k) = q^T W k`` (bilinear)."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.key_projection = nn.Linear(key_size, query_size, bias=False)

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_projection(keys)  # (B, S, Hq)

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        assert projected_keys is not None
        return torch.bmm(query, projected_keys.transpose(1, 2))  # (B, T, S)


class MultiHeadAttention(Attention):
    """Scaled dot-product attention in ``num_heads`` learned subspaces.

    The context is the output projection of the concatenated heads,
    (B, T, output_size); the returned weights are the mean over heads,
    (B, T, S), so that the contract holds for every module.
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        value_size: int,
        num_heads: int = 4,
        attention_size: int | None = None,
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        attention_size = attention_size or query_size
        if attention_size % num_heads:
            raise ConfigError(
                f"attention_size {attention_size} must be divisible by num_heads {num_heads}"
            )
        self.num_heads = num_heads
        self.head_size = attention_size // num_heads
        self.query_projection = nn.Linear(query_size, attention_size)
        self.key_projection = nn.Linear(key_size, attention_size)
        self.value_projection = nn.Linear(value_size, attention_size)
        self.output_projection = nn.Linear(attention_size, output_size or value_size)

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        """Projected keys, (B, S, A). Values are projected in :meth:`forward`."""
        return self.key_projection(keys)

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        B, L, _ = states.shape
        heads = states.view(B, L, self.num_heads, self.head_size)  # (B, L, nh, hs)
        return heads.transpose(1, 2)  # (B, nh, L, hs)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = query.shape
        if projected_keys is None:
            projected_keys = self.precompute(keys)
        q = self._split_heads(self.query_projection(query))  # (B, nh, T, hs)
        k = self._split_heads(projected_keys)  # (B, nh, S, hs)
        v = self._split_heads(self.value_projection(values))  # (B, nh, S, hs)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)  # (B, nh, T, S)
        head_mask = expand_mask(mask, T)
        if head_mask is not None:
            head_mask = head_mask.unsqueeze(1)  # (B, 1, T, S)
        head_weights = masked_softmax(scores, head_mask, dim=-1)  # (B, nh, T, S)
        heads = head_weights @ v  # (B, nh, T, hs)
        merged = heads.transpose(1, 2).reshape(B, T, -1)  # (B, T, A)
        return self.output_projection(merged), head_weights.mean(dim=1)  # (B,T,O), (B,T,S)


class LocationAwareAttention(AdditiveAttention):
    """Chorowski et al. (2015): additive attention that also sees where it looked last.

    ``score(q, k_s) = v^T tanh(W_q q + W_k k_s + U f_s)`` with location features
    ``f = conv1d(previous_weights)`` (``channels`` filters of width
    ``kernel_size``), so the weights can move monotonically along the source,
    which speech recognition needs. Scores one step at a time (T = 1); with no
    ``previous_weights`` (the first step) they are taken as all zero.
    """

    uses_previous_weights = True

    def __init__(
        self,
        query_size: int,
        key_size: int,
        attention_size: int,
        channels: int = 10,
        kernel_size: int = 31,
    ) -> None:
        if kernel_size % 2 == 0:
            raise ConfigError(f"location kernel_size must be odd, got {kernel_size}")
        super().__init__(query_size, key_size, attention_size)
        self.location_convolution = nn.Conv1d(
            1, channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.location_projection = nn.Linear(channels, attention_size, bias=False)

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B = query.size(0)
        if previous_weights is None:
            previous_weights = keys.new_zeros(B, keys.size(1))
        features = self.location_convolution(previous_weights.view(B, 1, -1))  # (B, C, S)
        location = self.location_projection(features.transpose(1, 2))  # (B, S, A)
        return self._step_scores(query, projected_keys, location)


class CoverageAttention(AdditiveAttention):
    """See et al. (2017): additive attention that also sees how much each position
    has been attended so far, ``score = v^T tanh(W_q q + W_k k_s + w_c c_s)`` with
    coverage ``c_s = sum of the previous steps' weights on s``, so that the
    model can learn not to attend the same source words twice. Scores one step
    at a time (T = 1); no ``coverage`` (the first step) means all zero.
    """

    uses_coverage = True

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__(query_size, key_size, attention_size)
        self.coverage_projection = nn.Linear(1, attention_size, bias=False)

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor | None,
        previous_weights: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if coverage is None:
            coverage = keys.new_zeros(query.size(0), keys.size(1))
        covered = self.coverage_projection(coverage.unsqueeze(-1))  # (B, S, A)
        return self._step_scores(query, projected_keys, covered)


ATTENTIONS: dict[str, type[Attention]] = {
    "additive": AdditiveAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
    "scaled_dot": ScaledDotAttention,
    "multi_head": MultiHeadAttention,
    "location": LocationAwareAttention,
    "coverage": CoverageAttention,
}


def build_attention(
    name: str,
    query_size: int,
    key_size: int,
    attention_size: int | None = None,
    num_heads: int = 4,
) -> Attention:
    """Make an attention module by registry name; keys double as values.

    Dot and scaled-dot attention need ``query_size == key_size``.
    """
    if name not in ATTENTIONS:
        raise ConfigError(f"unknown attention {name!r}; valid: {', '.join(ATTENTIONS)}")
    if name == "additive":
        return AdditiveAttention(query_size, key_size, attention_size or key_size)
    if name == "location":
        return LocationAwareAttention(query_size, key_size, attention_size or key_size)
    if name == "coverage":
        return CoverageAttention(query_size, key_size, attention_size or key_size)
    if name == "general":
        return GeneralAttention(query_size, key_size)
    if name == "multi_head":
        return MultiHeadAttention(query_size, key_size, key_size, num_heads, attention_size)
    if query_size != key_size:
        raise ConfigError(
            f"{name} attention needs equal query and key sizes, got {query_size} and {key_size}"
        )
    return ATTENTIONS[name]()
