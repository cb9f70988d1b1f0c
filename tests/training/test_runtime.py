"""Process settings for training speed: glibc keeps freed memory for reuse, the
optimizer takes PyTorch's fused AdamW for CPU parameters (same update as the loop), and
bf16 batches on the CPU come in few shapes (padded, with the same results)."""

from __future__ import annotations

import platform
import sys

import pytest
import torch
from torch import nn

from attnrnn.config import EncoderConfig, OptimizerConfig, from_dict
from attnrnn.data.batching import pad_sequences
from attnrnn.models.classifier import ClassifierConfig, PoolingConfig, TextClassifier
from attnrnn.models.seq2seq import DecoderConfig, Seq2Seq, Seq2SeqConfig
from attnrnn.tasks import runs
from attnrnn.tasks.classification import ClassificationRunConfig
from attnrnn.tasks.translation import ParallelSplit, collate, split_loss
from attnrnn.training import runtime
from attnrnn.training.optim import build_optimizer
from attnrnn.training.runtime import SHAPE_STEP, keep_freed_memory, shape_multiple


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_allocator_settings_take_on_glibc():
    assert keep_freed_memory()
    assert keep_freed_memory()  # once per process; calling again is harmless


def test_fused_adamw_makes_the_same_update_as_the_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    twin = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    twin.load_state_dict(model.state_dict())
    config = OptimizerConfig(learning_rate=0.01, weight_decay=0.1)
    fused = build_optimizer(model, config)
    assert fused.defaults["fused"]
    plain = torch.optim.AdamW(
        [
            {"params": [twin[0].weight, twin[1].weight], "weight_decay": 0.1},
            {"params": [twin[1].bias], "weight_decay": 0.0},
        ],
        lr=0.01,
        foreach=False,
    )
    tokens = torch.tensor([1, 2, 3, 4])
    for _ in range(3):
        for network, optimizer in ((model, fused), (twin, plain)):
            optimizer.zero_grad()
            network(tokens).square().sum().backward()
            optimizer.step()
    for got, want in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(got, want)


def test_padding_to_a_multiple_leaves_the_classifier_unchanged():
    torch.manual_seed(0)
    config = ClassifierConfig(
        embedding_size=8,
        encoder=EncoderConfig(cell="lstm", hidden_size=6),
        pooling=PoolingConfig(attention_size=5),
        hidden_size=7,
    )
    model = TextClassifier(20, 3, config, 0).double().eval()
    texts = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 15, 16]]
    exact, lengths = pad_sequences(texts, 0)
    padded, same = pad_sequences(texts, 0, SHAPE_STEP)
    assert exact.shape == (3, 7) and padded.shape == (3, SHAPE_STEP)
    assert torch.equal(lengths, same) and padded[:, 7:].eq(0).all()
    torch.testing.assert_close(model(padded, lengths).logits, model(exact, lengths).logits)


def test_padding_to_a_multiple_leaves_the_translation_loss_unchanged():
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=8,
        encoder=EncoderConfig(cell="gru", hidden_size=6, num_layers=1),
        decoder=DecoderConfig(hidden_size=12, attention_size=10, attentional_size=8),
    )
    model = Seq2Seq(20, 20, config, 0, 1, 2).double().eval()
    sources, targets = [[4, 5, 6], [7, 8, 9, 10, 11]], [[12, 4], [13, 14, 15, 16]]
    split = ParallelSplit(sources, targets, [""] * 2)
    batch = collate(split, [0, 1], 0, 1, 2, multiple=SHAPE_STEP)
    assert batch.source.shape == batch.target_input.shape == (2, SHAPE_STEP)
    assert batch.target_output.shape == (2, SHAPE_STEP)
    cpu = torch.device("cpu")
    exact = split_loss(model, split, [0, 1], 0.1, cpu)
    padded = split_loss(model, split, [0, 1], 0.1, cpu, multiple=SHAPE_STEP)
    assert padded.units == exact.units == 2 + 4 + 2  # the targets and their EOS
    torch.testing.assert_close(padded.loss, exact.loss)


def test_bf16_training_batches_on_the_cpu_come_in_few_shapes(
    monkeypatch, tmp_path, review_files, tiny_config
):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert shape_multiple("bf16", cpu) == 1  # trained in fp32 then: no padding
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    assert shape_multiple("bf16", cpu) == SHAPE_STEP
    assert shape_multiple("fp32", cpu) == 1
    assert shape_multiple("bf16", torch.device("cuda")) == 1
    shapes: list[tuple[int, ...]] = []
    forward = TextClassifier.forward

    def recording(self, tokens, lengths):
        if self.training:
            shapes.append(tuple(tokens.shape))
        return forward(self, tokens, lengths)

    monkeypatch.setattr(TextClassifier, "forward", recording)
    settings = tiny_config(review_files, epochs=1, max_steps=6, precision="bf16")
    runs.train(from_dict(ClassificationRunConfig, settings), tmp_path / "run", log=lambda _: None)
    assert len(shapes) == 6 and all(length % SHAPE_STEP == 0 for _, length in shapes)
