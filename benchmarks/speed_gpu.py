"""GPU check: the translation model trains and decodes on CUDA, with its speed.

    python benchmarks/speed_gpu.py [--run RUN] [--data PLAIN_DIR] [--steps 300]
                                   [--output benchmarks/results/speed_gpu.json]

For a machine with a CUDA device (the CPU machines of this project have none):

- the device's bf16 and fp32 matmul peak (8192^3, best of several; TF32 off for fp32);
- a fresh model of the run's configuration (configs/multi30k_de_en.yaml) trained
  for ``--steps`` steps from scratch on Multi30k train with the recipe's batches,
  optimizer and schedule, in fp32 and with bf16 autocast: target tokens/s, the
  loss over the first and the last 20 steps, peak GPU memory;
- the trained run's checkpoint (trained on CPU by benchmarks/multi30k.py)
  decoding test_2016_flickr on the GPU, greedy and beam 5: sentences/s and
  BLEU, which must match the CPU's.

``--data`` is the folder holding ``train.{de,en}`` and ``test_2016_flickr.{de,en}``
(Multi30k's ``plain/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import ROOT, WORK, commit, machine, matmul_peak, synchronize

import attnrnn
from attnrnn.metrics import corpus_bleu
from attnrnn.tasks.base import Prepared, TaskTraining
from attnrnn.tasks.translation import Translator, encode_split, read_pairs
from attnrnn.training.optim import (
    PlateauState,
    build_optimizer,
    learning_rate_at,
    set_learning_rate,
)


def train_steps(run: Translator, task: TaskTraining, steps: int, precision: str) -> dict:
    """Train a fresh model for ``steps`` steps; tokens/s after 20 untimed steps."""
    torch.manual_seed(1)
    config = run.config
    device = run.device
    model = run.task.build_model(config, run.assets).to(device)
    optimizer = build_optimizer(model, config.optimizer)
    batches: list[Any] = []
    epoch = 0
    while len(batches) < steps:
        batches += task.train_batches(epoch)
        epoch += 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, tokens, started = [], 0, time.perf_counter()
    for step, batch in enumerate(batches[:steps]):
        if step == min(20, steps // 2):
            synchronize(device)
            started, tokens = time.perf_counter(), 0
        rate = learning_rate_at(step, steps, config.optimizer, PlateauState())
        set_learning_rate(optimizer, rate)
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            output = task.compute_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.clip_norm)
        optimizer.step()
        losses.append(output.loss.detach())
        tokens += output.units
    synchronize(device)
    seconds = time.perf_counter() - started
    values = torch.stack(losses).float().cpu()
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        f"train_tokens_per_second_{precision}": tokens / seconds,
        f"train_loss_first20_{precision}": float(values[:20].mean()),
        f"train_loss_last20_{precision}": float(values[-20:].mean()),
        f"train_peak_gpu_memory_mib_{precision}": memory,
    }


def decode(run: Translator, data: Path, count: int | None) -> dict:
    config = run.config
    pairs = read_pairs(str(data / "test_2016_flickr"), config.data)[:count]
    test = encode_split(pairs, run.assets, config.data, drop_long=False)
    references = [pair.target for pair in pairs]
    results: dict[str, Any] = {"decode_sentences": len(test)}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        search = dataclasses.replace(config.search, beam_size=beam, n_best=1)
        run.decode_ids(test.sources[:50], search)  # warm
        synchronize(run.device)
        started = time.perf_counter()
        hypotheses = run.decode_ids(test.sources, search)
        synchronize(run.device)
        results[f"{name}_sentences_per_second"] = len(test) / (time.perf_counter() - started)
        outputs = [run.assets.target.decode(n_best[0].tokens) for n_best in hypotheses]
        results[f"{name}_bleu"] = corpus_bleu(outputs, references).score
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=WORK / "multi30k_de_en" / "run")
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k" / "plain"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/speed_gpu.json")
    parser.add_argument("--device", default="cuda", help="cuda (cpu only to try the script)")
    parser.add_argument("--test-sentences", type=int, help="decode only this many")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("speed_gpu.py needs a CUDA device; this machine has none")
    torch.backends.cuda.matmul.allow_tf32 = False
    largest = 16384 if device.type == "cuda" else 512
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bf16_matmul_flops": matmul_peak(torch.bfloat16, device, largest=largest),
        "fp32_matmul_flops": matmul_peak(torch.float32, device, largest=largest),
    }
    print(json.dumps(results), flush=True)
    run = attnrnn.load(arguments.run, device=arguments.device)
    assert isinstance(run, Translator), f"{arguments.run} is not a translation run"
    config = run.config
    pairs = read_pairs(str(arguments.data / "train"), config.data)
    train = encode_split(pairs, run.assets, config.data, drop_long=True)
    task = run.task.training(run, Prepared(run.assets, train, train, None))
    results["train_steps"] = arguments.steps
    results["train_batch_tokens"] = config.trainer.batch_tokens
    for precision in ("fp32", "bf16"):
        results.update(train_steps(run, task, arguments.steps, precision))
        print(json.dumps(results), flush=True)
    results.update(decode(run, arguments.data, arguments.test_sentences))
    results["model"] = "configs/multi30k_de_en.yaml"
    document = {
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()},
        "command": "python benchmarks/speed_gpu.py " + " ".join(sys.argv[1:]),
        "commit": os.environ.get("ATTNRNN_COMMIT") or commit(),
        "machine": machine(),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
