"""Speed benchmark: attnrnn against a plain reference implementation, in one run.

    python benchmarks/speed.py [--data ../shared/data] [--steps 30] [--sentences 1000]

Needs the trained Multi30k De->En run of benchmarks/multi30k.py (its
SentencePiece model, vocabulary and weights), so decoding runs on real
translations. Every figure is measured in this one process on this machine,
so ratios are fair even when the machine is noisy:

- machine: the fp32 and bf16 matmul peak (2048 x 2048 x 2048, best of 5);
- training: target tokens/s of attnrnn (length-bucketed batches, fused RNNs,
  output layer on real tokens only) and of the reference (random batches,
  GRUCell loop, keys re-projected every step, output layer on padding), over
  the same sentences; model FLOPs utilization of attnrnn's training;
- decoding on test_2016_flickr: sentences/s greedy and with beam 5 (attnrnn
  batched; the reference greedy batched and beam one sentence at a time), and
  attnrnn's single-sentence beam-5 latency p50 / p99;
- peak resident memory of the process after each phase.

Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from pathlib import Path

import torch
from common import ROOT, WORK, write_results
from reference_seq2seq import ReferenceSeq2Seq

from attnrnn.data.batching import make_batches, pad_sequences
from attnrnn.decoding import SearchConfig
from attnrnn.tasks.translation import (
    TranslationTask,
    collate,
    encode_split,
    read_pairs,
    special_ids,
    translate_ids,
)
from attnrnn.tasks.translation_run import TranslationRun


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` FLOP/s of one square matmul."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def training_flops_per_token(run: TranslationRun, source_tokens: float, target_tokens: float):
    """Useful matmul FLOPs of one training step per target token (forward x 3 for backward).

    Counts the encoder GRUs per source token, the decoder GRU, attention
    (query projection, scores over the source, context) and attentional layer
    per target token, and the output layer per target token.
    """
    config = run.config.model
    E, H_enc = config.embedding_size, config.encoder.hidden_size
    H = config.decoder.hidden_size
    A = config.decoder.attentional_size or H
    M = 2 * H_enc
    attention = config.decoder.attention_size or H
    V = len(run.target.vocab)
    layers = config.encoder.num_layers
    encoder = 0.0
    for layer in range(layers):
        inputs = E if layer == 0 else M
        encoder += 2 * 2 * 3 * H_enc * (inputs + H_enc)  # 2 directions, 3 gates, 2 FLOPs
    source_per_target = source_tokens / target_tokens
    decoder_rnn = 2 * 3 * H * (E + A + H)
    mean_source = source_per_target  # source positions attended per target token (average)
    attending = 2 * H * attention + mean_source * (2 * attention + 2 * M)
    attentional = 2 * A * (M + H)
    output = 2 * V * A
    forward = encoder * source_per_target + decoder_rnn + attending + attentional + output
    return 3 * forward


def time_training(step, batches, warmup: int = 3) -> float:
    """Target tokens/s over ``batches`` after ``warmup`` untimed steps."""
    for batch in batches[:warmup]:
        step(batch)
    tokens, started = 0, time.perf_counter()
    for batch in batches[warmup:]:
        tokens += step(batch)
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--run", type=Path, default=WORK / "multi30k_de_en" / "run")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--reference-beam-sentences", type=int, default=200)
    arguments = parser.parse_args()
    torch.manual_seed(0)
    results: dict = {"threads": torch.get_num_threads()}
    results["fp32_matmul_flops"] = matmul_peak(torch.float32)
    results["bf16_matmul_flops"] = matmul_peak(torch.bfloat16)

    run = TranslationRun(arguments.run, device="cpu")
    config = run.config
    prefix = arguments.data / "multi30k" / "plain"
    train_pairs = read_pairs(str(prefix / "train"), config.data)
    train = encode_split(train_pairs, run.source, run.target, config.data, drop_long=True)
    pad, bos, eos = special_ids(run.target.vocab)
    task = TranslationTask(train, train, run.target, config, torch.device("cpu"), (pad, bos, eos))
    batches = task.train_batches(0)[: arguments.steps + 3]
    source_tokens = sum(len(train.sources[i]) for b in batches for i in b)
    target_tokens = sum(len(train.targets[i]) + 1 for b in batches for i in b)

    model = run.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def attnrnn_step(indices) -> int:
        model.train()
        output = task.compute_loss(model, indices)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        return output.units

    state = {k: v.clone() for k, v in model.state_dict().items()}
    results["train_tokens_per_second"] = time_training(attnrnn_step, batches)
    model.load_state_dict(state)
    results["train_peak_memory_mib"] = peak_memory_mib()

    reference = ReferenceSeq2Seq(len(run.target.vocab), pad)
    reference.load_attnrnn(model)
    reference_optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    shuffled = list(range(len(train)))
    random.Random(0).shuffle(shuffled)
    sizes = [len(b) for b in batches]
    random_batches, position = [], 0
    for size in sizes:  # same batch sizes, no length bucketing
        random_batches.append(shuffled[position : position + size])
        position += size

    def reference_step(indices) -> int:
        batch = collate(train, indices, pad, bos, eos)
        loss = reference.loss(
            batch.source, batch.source_lengths, batch.target_input, batch.target_output
        )
        reference_optimizer.zero_grad()
        loss.backward()
        reference_optimizer.step()
        return int((batch.target_output != pad).sum())

    results["reference_train_tokens_per_second"] = time_training(reference_step, random_batches)
    results["train_speedup_vs_reference"] = (
        results["train_tokens_per_second"] / results["reference_train_tokens_per_second"]
    )
    flops = training_flops_per_token(run, source_tokens, target_tokens)
    results["train_flops_per_target_token"] = flops
    results["train_precision"] = "fp32"
    results["train_mfu"] = flops * results["train_tokens_per_second"] / results["fp32_matmul_flops"]

    test_pairs = read_pairs(str(prefix / "test_2016_flickr"), config.data)[: arguments.sentences]
    test = encode_split(test_pairs, run.source, run.target, config.data, drop_long=False)
    model.eval()
    for name, beam in (("greedy", 1), ("beam5", 5)):
        search = SearchConfig(beam_size=beam)
        started = time.perf_counter()
        translate_ids(model, test.sources, search, config.trainer, torch.device("cpu"))
        results[f"{name}_sentences_per_second"] = len(test) / (time.perf_counter() - started)
    latencies = []
    for source in test.sources[:100]:
        started = time.perf_counter()
        translate_ids(
            model, [source], SearchConfig(beam_size=5), config.trainer, torch.device("cpu")
        )
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    results["beam5_latency_p50_ms"] = 1000 * statistics.median(latencies)
    results["beam5_latency_p99_ms"] = 1000 * latencies[int(0.99 * (len(latencies) - 1))]

    reference.eval()
    started = time.perf_counter()
    for indices in make_batches([len(s) for s in test.sources], 10**9, 64):
        source, lengths = pad_sequences([test.sources[i] for i in indices], pad)
        reference.greedy(source, lengths, bos, eos, max_length=int(lengths.max()) * 2 + 10)
    results["reference_greedy_sentences_per_second"] = len(test) / (time.perf_counter() - started)
    count = min(arguments.reference_beam_sentences, len(test))
    started = time.perf_counter()
    for source_ids in test.sources[:count]:
        source = torch.tensor([source_ids])
        reference.beam_one(source, bos, eos, 5, max_length=int(len(source_ids) * 1.5) + 10)
    results["reference_beam5_sentences_per_second"] = count / (time.perf_counter() - started)
    results["beam5_decode_speedup_vs_reference"] = (
        results["beam5_sentences_per_second"] / results["reference_beam5_sentences_per_second"]
    )
    results["peak_memory_mib"] = peak_memory_mib()
    write_results(
        "speed",
        {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in results.items()
        },
    )


if __name__ == "__main__":
    main()
