"""Every attention module keeps the contract and equals a naive loop over its formula."""

from __future__ import annotations

import math

import pytest
import torch

from attnrnn.errors import ConfigError
from attnrnn.nn import (
    ATTENTIONS,
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    MultiHeadAttention,
    ScaledDotAttention,
    build_attention,
    lengths_to_mask,
)

B, T, S, H = 3, 4, 6, 8


@pytest.fixture
def inputs():
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(B, T, H, generator=generator)
    keys = torch.randn(B, S, H, generator=generator)
    values = torch.randn(B, S, H + 2, generator=generator)
    mask = lengths_to_mask(torch.tensor([6, 3, 1]), S)
    return query, keys, values, mask


def naive(score_function, query, keys, values, mask):
    """The textbook loop: score every (t, s), softmax over valid s, weighted sum."""
    context = torch.zeros(B, T, values.size(-1))
    weights = torch.zeros(B, T, S)
    for b in range(B):
        valid = [s for s in range(S) if mask[b, s]]
        for t in range(T):
            scores = torch.stack([score_function(query[b, t], keys[b, s]) for s in valid])
            probabilities = torch.softmax(scores, dim=0)
            for position, s in enumerate(valid):
                weights[b, t, s] = probabilities[position]
                context[b, t] += probabilities[position] * values[b, s]
    return context, weights


def additive_score(module: AdditiveAttention):
    def score(q, k):
        hidden = module.query_projection.weight @ q + module.key_projection.weight @ k
        return (module.energy.weight @ torch.tanh(hidden + module.key_projection.bias))[0]

    return score


def general_score(module: GeneralAttention):
    return lambda q, k: q @ (module.key_projection.weight @ k)


MODULES = {
    "additive": (lambda: AdditiveAttention(H, H, 5), additive_score),
    "dot": (DotAttention, lambda module: lambda q, k: q @ k),
    "scaled_dot": (ScaledDotAttention, lambda module: lambda q, k: q @ k / math.sqrt(H)),
    "general": (lambda: GeneralAttention(H, H), general_score),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_equals_naive_loop(name, inputs):
    torch.manual_seed(1)
    make, score = MODULES[name]
    module = make()
    query, keys, values, mask = inputs
    context, weights = module(query, keys, values, mask)
    expected_context, expected_weights = naive(score(module), query, keys, values, mask)
    torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(context, expected_context, atol=1e-5, rtol=1e-5)


def test_multi_head_equals_naive_per_head(inputs):
    torch.manual_seed(2)
    module = MultiHeadAttention(H, H, H + 2, num_heads=2, attention_size=8, output_size=5)
    query, keys, values, mask = inputs
    context, weights = module(query, keys, values, mask)
    q = module.query_projection(query)
    k = module.key_projection(keys)
    v = module.value_projection(values)
    heads, head_weights = [], []
    for head in range(2):
        part = slice(head * 4, (head + 1) * 4)
        c, w = naive(lambda a, b: a @ b / 2.0, q[..., part], k[..., part], v[..., part], mask)
        heads.append(c)
        head_weights.append(w)
    expected = module.output_projection(torch.cat(heads, dim=-1))
    torch.testing.assert_close(context, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        weights, (head_weights[0] + head_weights[1]) / 2, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_contract_rows_sum_to_one_and_padding_gets_zero(name, inputs):
    torch.manual_seed(3)
    module = build_attention(name, H, H, attention_size=8, num_heads=2)
    query, keys, values, mask = inputs
    if name == "multi_head":
        module = MultiHeadAttention(H, H, H + 2, num_heads=2, attention_size=8)
    steps = T
    if module.uses_previous_weights or module.uses_coverage:  # these score one step at a time
        steps, query = 1, query[:, :1]
    context, weights = module(query, keys, values, mask)
    assert weights.shape == (B, steps, S)
    assert context.shape[:2] == (B, steps)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, steps))
    assert torch.all(weights.masked_select(~mask.unsqueeze(1).expand(B, steps, S)) == 0.0)


@pytest.mark.parametrize("name", ["additive", "general", "multi_head"])
def test_precomputed_keys_give_the_same_result(name, inputs):
    torch.manual_seed(4)
    module = build_attention(name, H, H, attention_size=8, num_heads=2)
    query, keys, _, mask = inputs
    direct = module(query, keys, keys, mask)
    projected = module.precompute(keys)
    reused = module(query, keys, keys, mask, projected_keys=projected)
    for a, b in zip(direct, reused, strict=True):
        torch.testing.assert_close(a, b)


def test_modules_keep_no_state_between_calls(inputs):
    module = AdditiveAttention(H, H, 5)
    query, keys, values, mask = inputs
    before = {name: value.clone() for name, value in module.state_dict().items()}
    module(query, keys, values, mask)
    assert set(vars(module)) == set(vars(AdditiveAttention(H, H, 5)))
    for name, value in module.state_dict().items():
        assert torch.equal(value, before[name])


def test_three_dimensional_mask_is_accepted(inputs):
    query, keys, values, mask = inputs
    step_mask = mask.unsqueeze(1).expand(B, T, S).clone()
    step_mask[0, 0, 2:] = False
    _, weights = DotAttention()(query, keys, values, step_mask)
    assert torch.all(weights[0, 0, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T))


def test_bad_names_and_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="valid: additive"):
        build_attention("nope", H, H)
    with pytest.raises(ConfigError, match="equal query and key sizes"):
        build_attention("dot", 4, 5)
    with pytest.raises(ConfigError, match="divisible"):
        MultiHeadAttention(H, H, H, num_heads=3, attention_size=8)
