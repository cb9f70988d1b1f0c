"""The text classifier: padding invariance, gradients, outputs, truncation."""

from __future__ import annotations

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.models.classifier import ClassifierConfig, PoolingConfig, TextClassifier
from attnrnn.tasks.classification import truncate


def make_classifier(cell: str = "gru", hops: int = 1) -> TextClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(
        embedding_size=8,
        encoder=EncoderConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=True),
        pooling=PoolingConfig(attention_size=5, hops=hops),
        hidden_size=7,
    )
    return TextClassifier(vocab_size=20, num_classes=3, config=config, pad_index=0).eval()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("hops", [1, 3])
def test_padding_does_not_change_logits_or_weights(cell, hops):
    model = make_classifier(cell, hops)
    short = torch.tensor([[4, 5, 6]])
    batch = torch.tensor([[4, 5, 6, 0, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13]])
    alone = model(short, torch.tensor([3]))
    together = model(batch, torch.tensor([3, 7]))
    torch.testing.assert_close(together.logits[0], alone.logits[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        together.attention[0, :, :3], alone.attention[0], atol=1e-6, rtol=1e-5
    )
    assert torch.all(together.attention[0, :, 3:] == 0)
    assert together.attention.shape == (2, hops, 7)


def test_gradients_reach_every_parameter():
    model = make_classifier("lstm", hops=2).train()
    output = model(torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([3, 2]))
    (output.logits.sum() + output.penalty).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        if name != "embedding.weight":
            assert parameter.grad.abs().sum() > 0, name


def test_frozen_embeddings_get_no_gradient():
    config = ClassifierConfig(
        embedding_size=4, freeze_embeddings=True, encoder=EncoderConfig(hidden_size=3)
    )
    model = TextClassifier(10, 2, config, pad_index=0)
    model(torch.tensor([[1, 2]]), torch.tensor([2])).logits.sum().backward()
    assert model.embedding.weight.grad is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("head", [0, 1, 2, 3]), ("tail", [6, 7, 8, 9]), ("head_tail", [0, 7, 8, 9])],
)
def test_truncation_policies(policy, expected):
    assert truncate(list(range(10)), 4, policy) == expected
    assert truncate([1, 2], 4, policy) == [1, 2]


def test_conicity_of_known_states():
    from attnrnn.models.classifier import conicity

    same = torch.tensor([[[1.0, 2.0], [2.0, 4.0], [9.0, 9.0]]])  # two valid states, one direction
    spread = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]])
    mask_two = torch.tensor([[True, True, False]])
    torch.testing.assert_close(conicity(same, mask_two), torch.tensor([1.0]))
    # Opposite pairs average to the zero vector: cosine 0 with each state.
    torch.testing.assert_close(conicity(spread, torch.ones(1, 4, dtype=torch.bool)), torch.zeros(1))
    orthogonal = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # mean (0.5, 0.5): cos 1/sqrt(2)
    torch.testing.assert_close(
        conicity(orthogonal, torch.ones(1, 2, dtype=torch.bool)), torch.tensor([2**-0.5])
    )


def test_diversity_objective_is_reported_only_when_trained_with():
    torch.manual_seed(0)
    tokens, lengths = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]]), torch.tensor([3, 4])
    assert make_classifier()(tokens, lengths).conicity.item() == 0
    config = ClassifierConfig(
        embedding_size=8,
        encoder=EncoderConfig(cell="gru", hidden_size=6),
        pooling=PoolingConfig(attention_size=5, diversity_weight=0.5),
        hidden_size=7,
    )
    model = TextClassifier(vocab_size=20, num_classes=3, config=config, pad_index=0).eval()
    output = model(tokens, lengths)
    assert 0 < output.conicity.item() <= 1
    output.conicity.backward()
    assert model.encoder.parameters().__next__().grad is not None
    with pytest.raises(Exception, match="diversity_weight"):
        PoolingConfig(diversity_weight=-1.0)


def test_gradient_importance_is_a_distribution_over_the_supporting_tokens():
    from attnrnn.models.classifier import gradient_importance, importance_loss

    model = make_classifier()
    tokens, lengths = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]]), torch.tensor([3, 4])
    target = gradient_importance(model, tokens, lengths, torch.tensor([0, 2]))
    assert target.shape == (2, 4) and torch.all(target >= 0)
    torch.testing.assert_close(target.sum(-1), torch.ones(2))
    assert target[0, 3] == 0  # padding
    assert all(parameter.grad is None for parameter in model.parameters())
    # Gradient x input by hand for row 1: the same numbers, positive part normalised.
    embedded = model.embedding(tokens[1:]).detach().requires_grad_(True)
    model.classify_embedded(embedded, lengths[1:]).logits.log_softmax(-1)[0, 2].backward()
    scores = (embedded.grad * embedded).sum(-1)[0].clamp(min=0)
    torch.testing.assert_close(target[1], scores / scores.sum())
    attention = target.unsqueeze(1)  # attention equal to the target: no loss
    assert float(importance_loss(attention, target)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((2, 1, 4), 0.25)
    assert float(importance_loss(uniform, target)) > 0


def test_classify_embedded_is_the_forward_pass():
    model = make_classifier()
    tokens, lengths = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]]), torch.tensor([3, 4])
    torch.testing.assert_close(
        model.classify_embedded(model.embedding(tokens), lengths).logits,
        model(tokens, lengths).logits,
    )
