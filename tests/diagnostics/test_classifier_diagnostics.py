"""Faithfulness diagnostics of the classifier on models whose answer is known by construction."""

from __future__ import annotations

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.diagnostics.classifier import (
    agreement,
    encoder_states,
    erasure,
    importance,
    logits_from_weights,
    permutation_effect,
)
from attnrnn.models.classifier import ClassifierConfig, PoolingConfig, TextClassifier

pytest.importorskip("captum")

METHODS = ["gradient_x_input", "integrated_gradients", "leave_one_out"]
ORDERS = ["attention", "random", "gradient"]
DECIDING = 7  # the one token the constructed model reads


def make_classifier(hops: int = 1) -> TextClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(
        embedding_size=8,
        encoder=EncoderConfig(cell="gru", hidden_size=6, bidirectional=True),
        pooling=PoolingConfig(attention_size=5, hops=hops),
        hidden_size=7,
    )
    return TextClassifier(vocab_size=20, num_classes=3, config=config, pad_index=0).eval()


def one_token_classifier() -> TextClassifier:
    """A classifier whose output depends only on whether token 7 is in the text.

    Every other token embeds to zero; an RNN with no recurrence and no biases keeps a zero
    state for them (h_t = tanh(W x_t)); the attention puts weight ~1 - 1e-16 on token 7's
    state (score ~40 against 0); the head reads class 0 from it, class 1 from a small bias.
    """
    config = ClassifierConfig(
        embedding_size=2,
        embedding_dropout=0.0,
        encoder=EncoderConfig(cell="rnn", hidden_size=2, bidirectional=False),
        encoder_dropout=0.0,
        pooling=PoolingConfig(attention_size=2),
        hidden_size=0,
        dropout=0.0,
    )
    model = TextClassifier(vocab_size=10, num_classes=2, config=config, pad_index=0).eval()
    rnn = model.encoder.layers[0][0]
    linear = model.head[1]
    with torch.no_grad():
        model.embedding.weight.zero_()
        model.embedding.weight[DECIDING] = torch.tensor([1.0, 1.0])
        for name, parameter in rnn.named_parameters():
            parameter.copy_(3 * torch.eye(2) if name == "weight_ih_l0" else 0 * parameter)
        model.pooling.projection.weight.copy_(10 * torch.eye(2))
        model.pooling.projection.bias.zero_()
        model.pooling.energy.weight.fill_(20.0)
        linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        linear.bias.copy_(torch.tensor([0.0, 0.1]))
    return model


def probabilities(model: TextClassifier, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens.unsqueeze(0), torch.tensor([tokens.numel()])).logits.softmax(-1)[0]


TEXT = torch.tensor([3, 5, DECIDING, 4, 2, 0, 0])  # 5 valid tokens, 2 padding
LENGTH = 5


def test_agreement_of_identical_and_reversed_scores():
    scores = torch.tensor([0.1, 0.5, 0.2, 0.15, 0.05])
    same = agreement(scores, scores, k=2)
    assert same == {"kendall_tau": pytest.approx(1.0), "top_k_overlap": 1.0}
    reversed_ = agreement(scores, -scores, k=2)
    assert reversed_["kendall_tau"] == pytest.approx(-1.0)
    assert reversed_["top_k_overlap"] == 0.0


@pytest.mark.parametrize("hops", [1, 2])
def test_logits_from_own_weights_equal_the_forward_pass(hops):
    model = make_classifier(hops)
    tokens, lengths = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]]), torch.tensor([3, 4])
    output = model(tokens, lengths)
    logits = logits_from_weights(model, encoder_states(model, tokens, lengths), output.attention)
    torch.testing.assert_close(logits, output.logits)


@pytest.mark.parametrize("method", METHODS)
def test_importance_has_one_finite_score_per_token_and_zero_on_padding(method):
    model = make_classifier()
    scores = importance(model, TEXT, LENGTH, method)
    assert scores.shape == (TEXT.numel(),)
    assert torch.isfinite(scores).all()
    assert torch.all(scores[LENGTH:] == 0)
    assert scores[:LENGTH].abs().sum() > 0


def test_integrated_gradients_are_complete():
    model = make_classifier()
    scores = importance(model, TEXT, LENGTH, "integrated_gradients", n_steps=100)
    text = TEXT[:LENGTH]
    before, baseline = probabilities(model, text), probabilities(model, torch.zeros_like(text))
    predicted = int(before.argmax())
    expected = float(before[predicted] - baseline[predicted])
    assert float(scores.sum()) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_only_the_deciding_token_is_important(method):
    model = one_token_classifier()
    scores = importance(model, TEXT, LENGTH, method)
    position = int((TEXT == DECIDING).nonzero())
    others = torch.cat([scores[:position], scores[position + 1 :]])
    # p = 0.87 with the token, 0.48 without; gradient x input sees only the local slope
    assert scores[position] > (0 if method == "gradient_x_input" else 0.3)
    torch.testing.assert_close(others, torch.zeros_like(others), atol=1e-6, rtol=0)


def test_attention_of_the_one_token_model_agrees_with_its_importance():
    model = one_token_classifier()
    attention = model(TEXT[:LENGTH].unsqueeze(0), torch.tensor([LENGTH])).attention[0, 0]
    scores = importance(model, TEXT, LENGTH, "leave_one_out")[:LENGTH]
    assert agreement(attention, scores, k=1)["top_k_overlap"] == 1.0


def test_uniform_attention_has_no_permutation_effect():
    model = make_classifier()
    with torch.no_grad():
        model.pooling.energy.weight.zero_()  # every score 0: uniform weights
    effect = permutation_effect(model, TEXT, LENGTH, 20, torch.Generator().manual_seed(0))
    assert len(effect.output_tvd) == len(effect.attention_jsd) == 20
    assert max(effect.output_tvd) < 1e-6
    assert max(effect.attention_jsd) < 1e-6


@pytest.mark.parametrize("hops", [1, 2])
def test_permuting_peaked_attention_moves_it_and_is_reproducible(hops):
    model = make_classifier(hops)
    with torch.no_grad():
        model.pooling.energy.weight.mul_(50)  # sharpen the attention
    first = permutation_effect(model, TEXT, LENGTH, 10, torch.Generator().manual_seed(1))
    again = permutation_effect(model, TEXT, LENGTH, 10, torch.Generator().manual_seed(1))
    assert first == again
    assert first.median_attention_jsd > 0.1
    assert first.median_output_tvd > 0
    assert all(0 <= value <= 1 for value in first.output_tvd + first.attention_jsd)


@pytest.mark.parametrize("order", ["attention", "gradient"])
def test_erasing_the_deciding_token_flips_the_decision(order):
    model = one_token_classifier()
    result = erasure(model, TEXT, LENGTH, 1, order)
    assert result.removed == [int((TEXT == DECIDING).nonzero())]
    assert result.flipped
    assert result.probability_drop > 0.3


def test_erasing_every_token_gives_the_same_result_in_any_order():
    model = make_classifier()
    results = [
        erasure(model, TEXT, LENGTH, LENGTH, order, torch.Generator().manual_seed(0))
        for order in ORDERS
    ]
    text = TEXT[:LENGTH]
    before, empty = (
        probabilities(model, text),
        probabilities(model, torch.zeros(1, dtype=torch.long)),
    )
    predicted = int(before.argmax())
    for result in results:
        assert sorted(result.removed) == list(range(LENGTH))
        assert result.flipped == (int(empty.argmax()) != predicted)
        assert result.probability_drop == pytest.approx(float(before[predicted] - empty[predicted]))


def test_erasure_restores_the_training_mode_and_checks_its_arguments():
    model = make_classifier().train()
    erasure(model, TEXT, LENGTH, 2, "random", torch.Generator().manual_seed(0))
    assert model.training
    with pytest.raises(ValueError, match="valid"):
        erasure(model, TEXT, LENGTH, 1, "largest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k="):
        erasure(model, TEXT, LENGTH, LENGTH + 1, "attention")
    with pytest.raises(ValueError, match="valid"):
        importance(model, TEXT, LENGTH, "saliency")  # type: ignore[arg-type]


def test_adversarial_attention_moves_freely_when_the_output_ignores_it():
    from attnrnn.diagnostics.classifier import adversarial_attention

    model = make_classifier()
    with torch.no_grad():
        model.head[-1].weight.zero_()  # the output is the bias: no weights can change it
    found = adversarial_attention(
        model, TEXT, LENGTH, 0.01, generator=torch.Generator().manual_seed(0)
    )
    assert found.attention_jsd > 0.5
    assert found.output_tvd <= 0.01
    torch.testing.assert_close(found.weights.sum(-1), torch.ones(1), atol=1e-5, rtol=0)


def test_adversarial_attention_cannot_leave_the_deciding_token():
    from attnrnn.diagnostics.classifier import adversarial_attention

    model = one_token_classifier()  # p moves from 0.87 to 0.48 as weight leaves token 7
    found = adversarial_attention(
        model, TEXT, LENGTH, 0.01, generator=torch.Generator().manual_seed(0)
    )
    assert found.attention_jsd < 0.05
    assert found.output_tvd <= 0.01
    assert all(parameter.grad is None for parameter in model.parameters())


def test_uniform_pooling_of_a_uniform_attention_model_changes_nothing():
    from attnrnn.diagnostics.baselines import uniform_pooling

    model = make_classifier(hops=2)
    with torch.no_grad():
        model.pooling.energy.weight.zero_()
    pooled = uniform_pooling(model, [[3, 5, 7], [4, 2, 6, 8, 9], [1]], pad=0)
    torch.testing.assert_close(pooled.own, pooled.uniform)
    assert [tuple(weights.shape) for weights in pooled.attention] == [(2, 3), (2, 5), (2, 1)]
    # the deciding-token model does need its attention
    deciding = uniform_pooling(one_token_classifier(), [TEXT[:LENGTH].tolist()], pad=0)
    assert (deciding.own - deciding.uniform).abs().max() > 0.1


def test_pooled_mlp_learns_from_weights_that_point_at_the_label():
    """Label = the token at the one position the given weights point at; uniform weights
    average it away among random tokens, the pointing weights hand it over."""
    from attnrnn.diagnostics.baselines import pooled_mlp_accuracy, train_pooled_mlp

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 9, (600, 6), generator=generator)
    where = torch.randint(0, 6, (600,), generator=generator)
    ids[torch.arange(600), where] = torch.randint(9, 11, (600,), generator=generator)
    labels = (ids[torch.arange(600), where] == 10).long().tolist()
    pointing = [torch.nn.functional.one_hot(w, 6).float().unsqueeze(0) for w in where]
    ids[torch.arange(600), (where + 3) % 6] = 19 - ids[torch.arange(600), where]  # a decoy
    texts = ids.tolist()
    model = one_token_classifier()
    model.embedding = torch.nn.Embedding(20, 8)
    accuracies = {}
    for name, weights in (("uniform", None), ("pointing", pointing)):
        mlp = train_pooled_mlp(model, texts[:500], labels[:500], weights, 0, 2, epochs=5)
        accuracies[name] = pooled_mlp_accuracy(
            mlp, texts[500:], labels[500:], weights and weights[500:], 0
        )
    assert accuracies["pointing"] > 0.95
    assert accuracies["uniform"] < 0.75


@pytest.mark.parametrize("method", ["leave_one_out", "integrated_gradients"])
def test_attention_that_is_the_importance_by_construction_has_tau_one(method):
    """In the one-token model the attention and the importance both single out token 7
    and tie everything else: Kendall's τ-b is exactly 1."""
    model = one_token_classifier()
    attention = model(TEXT[:LENGTH].unsqueeze(0), torch.tensor([LENGTH])).attention[0, 0]
    scores = importance(model, TEXT, LENGTH, method)[:LENGTH]
    assert agreement(attention.detach(), scores, k=1)["kendall_tau"] == pytest.approx(1.0)
