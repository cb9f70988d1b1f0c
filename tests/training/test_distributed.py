"""Data-parallel foundations (issue 17): the torchrun environment, the process group and
its collectives, and DistributedDataParallel over our models (hand-written CPU backward
passes included) giving the gradients of one process over the union of the batches."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from test_data_parallel import failure_report

from attnrnn.errors import ConfigError
from attnrnn.training.distributed import World, backend_for, world_from_environment


def test_the_world_torchrun_describes():
    assert world_from_environment({}) == World(0, 1, 0)
    world = world_from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert world == World(3, 4, 1) and world.distributed and not world.is_main
    assert World().is_main and not World().distributed
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        world_from_environment({"WORLD_SIZE": "two"})
    with pytest.raises(ConfigError, match="inconsistent torchrun environment"):
        world_from_environment({"RANK": "2", "WORLD_SIZE": "2"})
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"


WORKER = textwrap.dedent(
    """
    import sys

    import torch

    from attnrnn.training.distributed import (
        from_rank0, gathered, process_group, replicate, sum_over_ranks, world_from_environment,
    )
    from models import BATCHES, build, loss_of



    def gradients_of(name, world, cpu):
        model = build(name)
        replica = replicate(model, lambda m, batch: loss_of(name, m, batch), cpu)
        assert type(replica).__name__ == "DistributedDataParallel"
        replica(BATCHES[name][world.rank]).backward()
        return {key: p.grad for key, p in model.named_parameters()}


    def main(output):
        torch.set_num_threads(1)
        world = world_from_environment()
        cpu = torch.device("cpu")
        with process_group(world, cpu, timeout_seconds=60):
            for name in BATCHES:
                gradients = gradients_of(name, world, cpu)
                torch.save(gradients, f"{output}/{name}-rank{world.rank}.pt")
            assert sum_over_ranks([world.rank + 1.0, 2.0], cpu) == [3.0, 4.0]
            assert from_rank0(world.rank == 0) is True
            assert gathered(world.rank) == [0, 1]


    main(sys.argv[1])
    """
)

MODELS = textwrap.dedent(
    """
    import torch

    from attnrnn.config import EncoderConfig
    from attnrnn.models.classifier import ClassifierConfig, PoolingConfig, TextClassifier
    from attnrnn.models.seq2seq import DecoderConfig, Seq2Seq, Seq2SeqConfig
    from attnrnn.tasks.translation import ParallelSplit, collate, sequence_loss

    PAD, BOS, EOS = 0, 1, 2
    # Per rank: the classifier's halves have 2 texts each (its loss is a mean over
    # texts); the translation halves 7 target tokens each with EOS (a mean over tokens).
    BATCHES = {
        "classifier": [
            ([[4, 5, 6, 7], [8, 9, 0, 0]], [4, 2], [0, 2]),
            ([[10, 11, 12, 0], [5, 13, 14, 15]], [3, 4], [1, 0]),
        ],
        "seq2seq": [
            ([[4, 5, 6], [7, 8]], [[9, 10, 11], [12, 4]]),
            ([[13, 14, 15, 16], [5]], [[6, 7], [8, 9, 10]]),
        ],
    }


    def build(name):
        torch.manual_seed(0)
        if name == "classifier":
            config = ClassifierConfig(
                embedding_size=8,
                encoder=EncoderConfig(cell="lstm", hidden_size=6),
                pooling=PoolingConfig(attention_size=5),
                hidden_size=7,
            )
            return TextClassifier(20, 3, config, 0).double().eval()
        config = Seq2SeqConfig(  # takes the hand-written CPU decoder (Luong GRU, feeding)
            embedding_size=8,
            encoder=EncoderConfig(cell="gru", hidden_size=6, num_layers=1),
            decoder=DecoderConfig(hidden_size=12, attention_size=10, attentional_size=8),
        )
        return Seq2Seq(20, 20, config, PAD, BOS, EOS).double().eval()


    def loss_of(name, model, batch):
        if name == "classifier":
            tokens, lengths, labels = map(torch.tensor, batch)
            logits = model(tokens, lengths).logits
            return torch.nn.functional.cross_entropy(logits, labels)
        sources, targets = batch
        split = ParallelSplit(sources, targets, [""] * len(sources))
        translation = collate(split, range(len(sources)), PAD, BOS, EOS)
        return sequence_loss(model, translation, 0.1)[0]
    """
)


@pytest.fixture(scope="module")
def two_process_gradients(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    (folder / "worker.py").write_text(WORKER)
    (folder / "models.py").write_text(MODELS)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(folder / "worker.py"),
        str(folder),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=180, env={**_env(), "OMP_NUM_THREADS": "1"}
    )
    assert completed.returncode == 0, failure_report(completed.stderr)
    sys.path.insert(0, str(folder))
    try:
        import models  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(folder))
    return folder, models


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.parametrize("name", ["classifier", "seq2seq"])
def test_two_processes_give_the_gradients_of_one_over_the_union(
    two_process_gradients, name, monkeypatch
):
    from attnrnn.nn.fused_decoder import LuongGRUAdditive

    folder, models = two_process_gradients
    halves = models.BATCHES[name]
    union = tuple(first + second for first, second in zip(*halves, strict=True))
    model = models.build(name)
    calls = []
    original = LuongGRUAdditive.apply
    monkeypatch.setattr(LuongGRUAdditive, "apply", lambda *a: calls.append(1) or original(*a))
    models.loss_of(name, model, union).backward()
    assert len(calls) == (name == "seq2seq")  # the seq2seq model takes the hand-written path
    expected = {key: parameter.grad for key, parameter in model.named_parameters()}
    for rank in (0, 1):
        averaged = torch.load(folder / f"{name}-rank{rank}.pt")
        assert averaged.keys() == expected.keys()
        for key, gradient in expected.items():
            torch.testing.assert_close(averaged[key], gradient, rtol=1e-9, atol=1e-12, msg=key)
