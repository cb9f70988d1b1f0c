"""attnrnn.nn.fast_paths: one switch turns all three hand-written training paths (encoder
GRU, Luong GRU decoder, fused output loss) on or off; it is thread-local and nests."""

from __future__ import annotations

import threading

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.models.target_side import DecoderConfig
from attnrnn.nn import fast_paths, hand_written

# The autograd nodes of the hand-written paths: encoder, decoder, output loss.
HAND_WRITTEN_NODES = {
    "GRURecurrenceBackward",
    "LuongGRUAdditiveBackward",
    "_LinearCrossEntropyBackward",
}
# Nodes only the autograd fallback makes: nn.GRU's gates and the plain loss.
AUTOGRAD_NODES = {"SigmoidBackward0", "NllLossBackward0"}


def graph_nodes(tensor: torch.Tensor) -> set[str]:
    """The class names of every node in ``tensor``'s backward graph."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def training_loss() -> torch.Tensor:
    """One training loss of a model where all three fast paths apply."""
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=6,
        encoder=EncoderConfig(hidden_size=5, num_layers=2),
        decoder=DecoderConfig(
            hidden_size=7, attention="additive", attention_size=4, attentional_size=6
        ),
    )
    model = Seq2Seq(20, 20, config, 0, 1, 2).train()
    source = torch.randint(3, 20, (3, 5))
    target_input, target_output = torch.randint(3, 20, (2, 3, 4))
    output = model(source, torch.tensor([5, 4, 2]), target_input)
    return model.output_loss(output.attentional.flatten(0, 1), target_output.flatten(), 0.1)


def test_switch_routes_all_three_paths():
    hand = training_loss()
    with hand_written(False):
        plain = training_loss()
    assert graph_nodes(hand) >= HAND_WRITTEN_NODES
    assert not HAND_WRITTEN_NODES & graph_nodes(plain)
    assert graph_nodes(plain) >= AUTOGRAD_NODES
    torch.testing.assert_close(hand, plain)
    with torch.no_grad():  # no gradients wanted: autograd-free evaluation either way
        assert training_loss().grad_fn is None


def test_switch_nests_and_restores():
    assert fast_paths.enabled() and fast_paths.gradients_wanted()
    with hand_written(False):
        assert not fast_paths.enabled() and not fast_paths.gradients_wanted()
        with hand_written(True):
            assert fast_paths.enabled()
        assert not fast_paths.enabled()
        with pytest.raises(RuntimeError), hand_written(True):
            raise RuntimeError
        assert not fast_paths.enabled()
    assert fast_paths.enabled()
    with torch.no_grad():
        assert fast_paths.enabled() and not fast_paths.gradients_wanted()


def test_switch_is_thread_local():
    seen: list[bool] = []
    with hand_written(False):
        thread = threading.Thread(target=lambda: seen.append(fast_paths.enabled()))
        thread.start()
        thread.join()
        assert not fast_paths.enabled()
    assert seen == [True]  # a new thread starts with the switch on


def test_runs_in_keeps_mixed_precision_with_autograd():
    x = torch.zeros(2, 3)
    assert fast_paths.runs_in(torch.float32, x, x)
    assert not fast_paths.runs_in(torch.float32, x, x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fast_paths.runs_in(torch.float32, x)
