"""Faithfulness diagnostics of an attention-pooled :class:`TextClassifier`, one text at a time.

Does the attention explain the prediction? Four checks (Jain & Wallace 2019):

- :func:`importance`: feature importance of each token for the predicted class's
  probability, by gradient x input, integrated gradients (both through Captum) or
  leave-one-out; :func:`agreement` ranks it against the attention (Kendall τ, top-k overlap).
- :func:`permutation_effect`: the output change when the attention weights are replaced by
  random permutations of themselves (the encoder states stay the same).
- :func:`erasure`: remove the top-k tokens by attention, by gradient or at random; does the
  decision flip, and how much probability does the predicted class lose?

Every function takes one text: ``tokens`` (S,) token ids and ``length``, the number of valid
tokens (positions ``length..S-1`` are padding and ignored). Scores come back as (S,) with
zeros on the padding. The model is run in eval mode (its mode is restored afterwards).
An empty text (all tokens removed) is read as a single padding token, whose embedding is
zero: the model's output for "nothing".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from attnrnn.diagnostics.common import evaluating
from attnrnn.diagnostics.measures import jensen_shannon, kendall_tau, top_k_overlap, total_variation
from attnrnn.extras import require
from attnrnn.models.classifier import TextClassifier
from attnrnn.nn.masking import lengths_to_mask

ImportanceMethod = Literal["gradient_x_input", "integrated_gradients", "leave_one_out"]
IMPORTANCE_METHODS: tuple[str, ...] = ("gradient_x_input", "integrated_gradients", "leave_one_out")
ErasureOrder = Literal["attention", "random", "gradient"]
ERASURE_ORDERS: tuple[str, ...] = ("attention", "random", "gradient")


def _valid_tokens(model: TextClassifier, tokens: torch.Tensor, length: int) -> torch.Tensor:
    """The (L,) valid token ids of one text on the model's device, L = length."""
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be one text of shape (S,), got {tuple(tokens.shape)}")
    if not 1 <= length <= tokens.numel():
        raise ValueError(f"need 1 <= length <= {tokens.numel()}, got {length}")
    device = model.embedding.weight.device
    return tokens[:length].to(device)


def _pad_scores(scores: torch.Tensor, size: int) -> torch.Tensor:
    """(L,) scores -> (S,) float64 on the CPU, zero on the padding."""
    padded = torch.zeros(size, dtype=torch.float64)
    padded[: scores.numel()] = scores.detach().to("cpu", torch.float64)
    return padded


def _lengths(batch: torch.Tensor) -> torch.Tensor:
    """(B, L) unpadded rows -> (B,) lengths, all L."""
    return torch.full((batch.size(0),), batch.size(1), dtype=torch.long, device=batch.device)


def encoder_states(
    model: TextClassifier, tokens: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """The states that ``model``'s attention pools, computed as TextClassifier.forward does.

    Args:
        tokens: (B, S) token ids, padded.
        lengths: (B,) valid tokens per row.
    Returns:
        (B, S, H') encoder outputs after the encoder dropout (zero on padding).
    """
    embedded = model.embedding_dropout(model.embedding(tokens))  # (B, S, E)
    return _states_from_embedded(model, embedded, lengths)


def _states_from_embedded(
    model: TextClassifier, embedded: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """(B, S, E) embeddings -> (B, S, H') encoder states."""
    return model.encoder_dropout(model.encoder(embedded, lengths).outputs)  # (B, S, H')


def logits_from_weights(
    model: TextClassifier, states: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Classify with given pooling weights instead of the model's own attention.

    Args:
        states: (B, S, H') from :func:`encoder_states`.
        weights: (B, r, S) attention per hop (r = the model's hops), rows summing to 1.
    Returns:
        (B, C) logits: ``head(concat_r(weights @ states))``.
    """
    B = states.size(0)
    pooled = torch.bmm(weights, states).reshape(B, -1)  # (B, r, H') -> (B, r*H')
    return model.head(pooled)  # (B, C)


def _probabilities(model: TextClassifier, batch: torch.Tensor) -> torch.Tensor:
    """(B, L) unpadded texts -> (B, C) class probabilities; an empty row is one pad token."""
    if batch.size(1) == 0:
        batch = torch.full((batch.size(0), 1), _pad_index(model), device=batch.device)
    return model(batch, _lengths(batch)).logits.softmax(dim=-1)


def _pad_index(model: TextClassifier) -> int:
    pad_index = model.embedding.padding_idx
    if pad_index is None:
        raise ValueError("the model's embedding has no padding index to use as a baseline")
    return pad_index


def importance(
    model: TextClassifier,
    tokens: torch.Tensor,
    length: int,
    method: ImportanceMethod,
    n_steps: int = 50,
) -> torch.Tensor:
    """Importance of each token for the probability of the predicted class.

    - ``gradient_x_input``: Captum's InputXGradient on the embedding output, summed over E.
    - ``integrated_gradients``: Captum's LayerIntegratedGradients on ``model.embedding``
      from the all-padding text (zero embeddings) in ``n_steps`` steps, summed over E; the
      scores add up to p(x) - p(baseline) (completeness), up to the integration error.
    - ``leave_one_out``: p(x) - p(x without token t) for each t.

    Scores are signed (positive: the token supports the prediction).

    Args:
        tokens: (S,) token ids of one text; length: its valid tokens.
    Returns:
        (S,) float64 scores on the CPU, zero on the padding.
    """
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(IMPORTANCE_METHODS)}")
    text = _valid_tokens(model, tokens, length).unsqueeze(0)  # (1, L)
    with evaluating(model):
        with torch.no_grad():
            probabilities = _probabilities(model, text)[0]  # (C,)
        predicted = int(probabilities.argmax())
        if method == "leave_one_out":
            scores = _leave_one_out(model, text[0], probabilities[predicted], predicted)
        elif method == "gradient_x_input":
            scores = _gradient_x_input(model, text, predicted)
        else:
            scores = _integrated_gradients(model, text, predicted, n_steps)
    return _pad_scores(scores, tokens.numel())


def _leave_one_out(
    model: TextClassifier, text: torch.Tensor, probability: torch.Tensor, predicted: int
) -> torch.Tensor:
    """(L,) text -> (L,) drop of the predicted class's probability when each token is left out."""
    L = text.numel()
    keep = ~torch.eye(L, dtype=torch.bool, device=text.device)  # (L, L), row t drops t
    shortened = text.expand(L, L)[keep].view(L, L - 1)  # (L, L-1)
    with torch.no_grad():
        return probability - _probabilities(model, shortened)[:, predicted]  # (L,)


def _gradient_x_input(model: TextClassifier, text: torch.Tensor, predicted: int) -> torch.Tensor:
    """(1, L) text -> (L,) gradient x input on the embedding output, summed over E."""
    attr = require("captum.attr")
    lengths = _lengths(text)

    def forward(embedded: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, C)
        states = _states_from_embedded(model, embedded, lengths.expand(embedded.size(0)))
        mask = lengths_to_mask(lengths.expand(embedded.size(0)), text.size(1)).to(text.device)
        return model.head(model.pooling(states, mask).pooled).softmax(dim=-1)

    embedded = model.embedding(text).detach().requires_grad_(True)  # (1, L, E)
    attributions = attr.InputXGradient(forward).attribute(embedded, target=predicted)
    return attributions.sum(dim=-1)[0]  # (1, L, E) -> (L,)


def _integrated_gradients(
    model: TextClassifier, text: torch.Tensor, predicted: int, n_steps: int
) -> torch.Tensor:
    """(1, L) text -> (L,) integrated gradients on the embedding, from the all-padding text."""
    attr = require("captum.attr")

    def forward(batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, C)
        return model(batch, lengths).logits.softmax(dim=-1)

    baseline = torch.full_like(text, _pad_index(model))  # (1, L)
    attributions = attr.LayerIntegratedGradients(forward, model.embedding).attribute(
        text,
        baselines=baseline,
        target=predicted,
        additional_forward_args=(_lengths(text),),
        n_steps=n_steps,
    )
    return attributions.sum(dim=-1)[0]  # (1, L, E) -> (L,)


def agreement(attention: torch.Tensor, importance: torch.Tensor, k: int) -> dict[str, float]:
    """Rank agreement of attention (S,) with importance scores (S,) of the same tokens.

    Pass the valid tokens only (slice the padding off), and the hop to compare for a
    multi-hop model. Returns ``{"kendall_tau": τ-b in [-1, 1], "top_k_overlap": in [0, 1]}``
    (see :mod:`attnrnn.diagnostics.measures`; 1 <= k <= S).
    """
    return {
        "kendall_tau": kendall_tau(attention, importance),
        "top_k_overlap": top_k_overlap(attention, importance, k),
    }


@dataclass
class PermutationEffect:
    """The effect of randomly permuted attention on one text.

    output_tvd: per permutation, the total variation distance between the class
        distributions with the original and with the permuted weights.
    attention_jsd: per permutation, the Jensen-Shannon divergence (bits) between the
        original and the permuted weights (mean over the hops).
    """

    output_tvd: list[float]
    attention_jsd: list[float]

    @property
    def median_output_tvd(self) -> float:
        return statistics.median(self.output_tvd)

    @property
    def median_attention_jsd(self) -> float:
        return statistics.median(self.attention_jsd)


def permutation_effect(
    model: TextClassifier,
    tokens: torch.Tensor,
    length: int,
    permutations: int,
    generator: torch.Generator,
) -> PermutationEffect:
    """Replace the attention of one text by ``permutations`` random permutations of itself.

    Each hop's weights over the valid tokens are shuffled independently (``generator``, on
    the CPU, draws them); the encoder states stay those of the text.

    Args:
        tokens: (S,) token ids of one text; length: its valid tokens.
    """
    if permutations < 1:
        raise ValueError(f"need at least one permutation, got {permutations}")
    text = _valid_tokens(model, tokens, length).unsqueeze(0)  # (1, L)
    with evaluating(model, no_grad=True):
        output = model(text, _lengths(text))
        weights = output.attention  # (1, r, L)
        r, L = weights.shape[1:]
        states = encoder_states(model, text, _lengths(text))  # (1, L, H')
        order = torch.rand(permutations, r, L, generator=generator).argsort(dim=-1)  # (P, r, L)
        shuffled = weights.expand(permutations, r, L).gather(-1, order.to(weights.device))
        logits = logits_from_weights(model, states.expand(permutations, L, -1), shuffled)
    original = output.logits.softmax(dim=-1).expand_as(logits)  # (P, C)
    tvd = total_variation(original, logits.softmax(dim=-1))  # (P,)
    jsd = jensen_shannon(weights.expand_as(shuffled), shuffled).mean(axis=-1)  # (P, r) -> (P,)
    return PermutationEffect(tvd.tolist(), jsd.tolist())


@dataclass
class Erasure:
    """The effect of removing tokens from one text.

    removed: the positions removed, most important first.
    flipped: the predicted class changed.
    probability_drop: p(predicted | text) - p(predicted | text without them).
    """

    removed: list[int]
    flipped: bool
    probability_drop: float


def erasure(
    model: TextClassifier,
    tokens: torch.Tensor,
    length: int,
    k: int,
    order: ErasureOrder,
    generator: torch.Generator | None = None,
) -> Erasure:
    """Remove the top-k tokens of one text by ``order`` and measure the change of decision
    (:func:`erasures` for one k)."""
    return erasures(model, tokens, length, [k], order, generator)[0]


def erasures(
    model: TextClassifier,
    tokens: torch.Tensor,
    length: int,
    ks: Sequence[int],
    order: ErasureOrder,
    generator: torch.Generator | None = None,
) -> list[Erasure]:
    """Remove the top-k tokens of one text by ``order``, for each k of ``ks``, and measure
    the change of decision.

    ``attention``: the highest weights (summed over the hops); ``gradient``: the highest
    gradient x input scores (:func:`importance`), computed once for all k; ``random``: k
    positions drawn by ``generator``, a new draw for each k. Ties are broken towards the
    earlier position. Removing all tokens leaves the empty text (one padding token).

    Args:
        tokens: (S,) token ids of one text; length: its valid tokens; 1 <= k <= length.
    """
    if order not in ERASURE_ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {', '.join(ERASURE_ORDERS)}")
    for k in ks:
        if not 1 <= k <= length:
            raise ValueError(f"need 1 <= k <= length ({length}), got k={k}")
    text = _valid_tokens(model, tokens, length)  # (L,)
    with evaluating(model, no_grad=True):
        output = model(text.unsqueeze(0), _lengths(text.unsqueeze(0)))
    before = output.logits.softmax(dim=-1)[0]  # (C,)
    predicted = int(before.argmax())
    if order == "attention":
        ranking: torch.Tensor | None = output.attention[0].sum(dim=0).cpu()  # (r, L) -> (L,)
    elif order == "gradient":
        ranking = importance(model, tokens, length, "gradient_x_input")[:length]
    else:
        ranking = None
    results = []
    for k in ks:
        scores = ranking if ranking is not None else torch.rand(length, generator=generator)
        removed = torch.argsort(-scores, stable=True)[:k]
        keep = torch.ones(length, dtype=torch.bool)
        keep[removed] = False
        with evaluating(model, no_grad=True):
            after = _probabilities(model, text[keep.to(text.device)].unsqueeze(0))[0]  # (C,)
        results.append(
            Erasure(
                removed=removed.tolist(),
                flipped=int(after.argmax()) != predicted,
                probability_drop=float(before[predicted] - after[predicted]),
            )
        )
    return results


@dataclass
class Adversarial:
    """The most different attention found for one text that leaves the output in place.

    attention_jsd: Jensen-Shannon divergence (bits) of the adversarial weights from the
        model's (mean over the hops); 0 when no other weights kept the output within ε.
    output_tvd: the total variation distance of the class distribution they give (<= ε).
    weights: (r, L) the adversarial weights.
    """

    attention_jsd: float
    output_tvd: float
    weights: torch.Tensor


def _jsd_bits(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Differentiable Jensen-Shannon divergence in bits over the last axis, (..., S) -> (...)
    (the optimiser's objective; the reported values come from :mod:`measures`)."""
    middle = 0.5 * (p + q)

    def kl(a: torch.Tensor) -> torch.Tensor:
        return (a * (a.clamp(min=1e-12).log() - middle.clamp(min=1e-12).log())).sum(dim=-1)

    return 0.5 * (kl(p) + kl(q)) / torch.log(torch.tensor(2.0))


def adversarial_attention(
    model: TextClassifier,
    tokens: torch.Tensor,
    length: int,
    epsilon: float = 0.01,
    restarts: int = 8,
    steps: int = 150,
    generator: torch.Generator | None = None,
) -> Adversarial:
    """Search for attention weights as far as possible from the model's (Jensen-Shannon)
    whose prediction stays within ``epsilon`` of the model's (total variation), as Jain &
    Wallace (2019) did: if such weights exist, the attention is one of many explanations
    of the same output.

    ``restarts`` free attention logits (started from the model's, plus noise drawn by
    ``generator``) are optimised with Adam on JSD - penalty(max(0, TVD - ε)); the best
    weights that kept TVD <= ε at any step are kept. The encoder states stay the text's.

    Args:
        tokens: (S,) token ids of one text; length: its valid tokens.
    """
    if epsilon <= 0 or restarts < 1 or steps < 1:
        raise ValueError("need epsilon > 0, restarts >= 1 and steps >= 1")
    text = _valid_tokens(model, tokens, length).unsqueeze(0)  # (1, L)
    with evaluating(model):
        with torch.no_grad():
            output = model(text, _lengths(text))
            original = output.attention[0]  # (r, L)
            states = encoder_states(model, text, _lengths(text))  # (1, L, H')
            target = output.logits.softmax(dim=-1)  # (1, C)
        r, L = original.shape
        noise = torch.randn(restarts, r, L, generator=generator).to(original.device)
        logits = (original.clamp(min=1e-9).log() + 2.0 * noise).requires_grad_(True)
        optimizer = torch.optim.Adam([logits], lr=0.1)
        best_jsd, best_tvd, best = 0.0, 0.0, original
        for _ in range(steps):
            weights = logits.softmax(dim=-1)  # (R, r, L)
            probabilities = logits_from_weights(
                model, states.expand(restarts, L, -1), weights
            ).softmax(dim=-1)  # (R, C)
            tvd = 0.5 * (probabilities - target).abs().sum(dim=-1)  # (R,)
            jsd = _jsd_bits(original.expand_as(weights), weights).mean(dim=-1)  # (R,)
            with torch.no_grad():
                feasible = tvd <= epsilon
                if bool(feasible.any()):
                    candidate = int(torch.where(feasible, jsd, -1.0).argmax())
                    if float(jsd[candidate]) > best_jsd:
                        best_jsd, best_tvd = float(jsd[candidate]), float(tvd[candidate])
                        best = weights[candidate].detach().clone()
            objective = -(jsd - 100.0 * torch.relu(tvd - epsilon)).sum()
            (logits.grad,) = torch.autograd.grad(objective, logits)  # the model's stay None
            optimizer.step()
    if best is not original:  # the reported divergence by the measures module
        best_jsd = float(jensen_shannon(original.cpu(), best.cpu()).mean())
    return Adversarial(best_jsd, best_tvd, best.cpu())
