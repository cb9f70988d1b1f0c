"""Process settings for training speed: glibc keeps freed memory for reuse, and the
optimizer takes PyTorch's fused AdamW for CPU parameters (same update as the loop)."""

from __future__ import annotations

import platform
import sys

import pytest
import torch
from torch import nn

from attnrnn.config import OptimizerConfig
from attnrnn.training.optim import build_optimizer
from attnrnn.training.runtime import keep_freed_memory


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
