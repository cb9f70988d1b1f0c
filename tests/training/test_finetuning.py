"""Fine-tuning a pretrained classifier (issue 18): layer groups from the input up,
discriminative learning rates per group, gradual unfreezing from the top down."""

from __future__ import annotations

import pytest
import torch

from attnrnn.config import EncoderConfig, OptimizerConfig, TrainerConfig
from attnrnn.errors import ConfigError
from attnrnn.models.classifier import ClassifierConfig, PoolingConfig, TextClassifier
from attnrnn.training.optim import build_optimizer, set_learning_rate
from attnrnn.training.trainer import LossOutput, Trainer


def classifier() -> TextClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(
        embedding_size=6,
        encoder=EncoderConfig(cell="lstm", hidden_size=5, num_layers=2, bidirectional=False),
        pooling=PoolingConfig(attention_size=4),
        hidden_size=7,
        embedding_dropout=0.0,
        encoder_dropout=0.0,
        dropout=0.0,
    )
    return TextClassifier(12, 2, config, pad_index=0)


def test_layer_groups_run_from_the_input_up_and_cover_the_model():
    model = classifier()
    groups = model.layer_groups()
    assert len(groups) == 4  # embedding, two encoder layers, attention + MLP
    assert groups[0] == [model.embedding.weight]
    assert {id(p) for p in groups[1]} == {id(p) for p in model.encoder.layers[0].parameters()}
    assert {id(p) for p in groups[3]} >= {id(p) for p in model.head.parameters()}
    everything = [id(p) for group in groups for p in group]
    assert sorted(everything) == sorted(id(p) for p in model.parameters())  # each once


def test_discriminative_learning_rates_decay_towards_the_input():
    model = classifier()
    optimizer = build_optimizer(model, OptimizerConfig(layer_lr_decay=0.5))
    set_learning_rate(optimizer, 1.0)
    rates = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            rates[id(parameter)] = group["lr"]
    expected = [0.125, 0.25, 0.5, 1.0]  # embedding, layer 1, layer 2, head
    for rate, group in zip(expected, model.layer_groups(), strict=True):
        assert {rates[id(p)] for p in group} == {rate}
    plain = build_optimizer(model, OptimizerConfig())
    set_learning_rate(plain, 1.0)
    assert {group["lr"] for group in plain.param_groups} == {1.0}
    with pytest.raises(ConfigError, match="layer_lr_decay"):
        OptimizerConfig(layer_lr_decay=0.0)
    with pytest.raises(ConfigError, match="a Linear has none"):
        build_optimizer(torch.nn.Linear(2, 2), OptimizerConfig(gradual_unfreezing=True))


class SnapshotTask:
    """Four batches an epoch of a toy sentiment task; ``evaluate`` (once an epoch) keeps a
    copy of every layer group, to see which ones the epoch changed."""

    def __init__(self, model: TextClassifier) -> None:
        generator = torch.Generator().manual_seed(1)
        self.tokens = torch.randint(1, 12, (32, 5), generator=generator)
        self.labels = (self.tokens[:, 0] > 6).long()
        self.model = model
        self.snapshots = [self.snapshot()]

    def snapshot(self) -> list[list[torch.Tensor]]:
        return [[p.detach().clone() for p in group] for group in self.model.layer_groups()]

    def train_batches(self, epoch: int, group: int = 1) -> list[list[int]]:
        return [list(range(start, start + 8)) for start in range(0, 32, 8)]

    def compute_loss(self, model, batch) -> LossOutput:
        lengths = torch.full((len(batch),), 5)
        logits = model(self.tokens[batch], lengths).logits
        return LossOutput(torch.nn.functional.cross_entropy(logits, self.labels[batch]), len(batch))

    def evaluate(self, model) -> dict[str, float]:
        self.snapshots.append(self.snapshot())
        return {"loss": float(len(self.snapshots))}  # never better: no early stop needed


def changed(before: list[list[torch.Tensor]], after: list[list[torch.Tensor]]) -> list[bool]:
    return [
        any(not torch.equal(a, b) for a, b in zip(old, new, strict=True))
        for old, new in zip(before, after, strict=True)
    ]


def test_gradual_unfreezing_trains_one_more_group_each_epoch_from_the_top(tmp_path):
    model = classifier()
    task = SnapshotTask(model)
    optimizer = OptimizerConfig(
        learning_rate=0.01, warmup_steps=0, schedule="constant", gradual_unfreezing=True
    )
    trainer = TrainerConfig(epochs=4, progress=False, early_stopping_patience=None)
    Trainer(model, task, optimizer, trainer, tmp_path / "run", "loss", False).train()
    epochs = [changed(a, b) for a, b in zip(task.snapshots, task.snapshots[1:5], strict=False)]
    assert epochs == [
        [False, False, False, True],  # epoch 1: attention + MLP alone
        [False, False, True, True],  # epoch 2: + the top encoder layer
        [False, True, True, True],  # epoch 3: + the first encoder layer
        [True, True, True, True],  # epoch 4: + the embedding
    ]
