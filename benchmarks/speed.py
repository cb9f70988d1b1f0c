"""Speed benchmark: attnrnn against a plain reference implementation, in one run.

    python benchmarks/speed.py [--data ../shared/data] [--threads N] [--steps 40]
                               [--sentences 1000] [--reference-beam-sentences 200]
                               [--note TEXT]

``make bench`` runs it with ``--threads 1``: figures per core (the MFU against
one core's peak), plus fp32 training on all cores.

Needs the trained Multi30k De->En run of benchmarks/multi30k.py (its
SentencePiece model, vocabulary and weights), so decoding runs on real
translations, and the AN4 feature cache of benchmarks/an4.py (or the AN4 audio,
from which the features are computed once). Every figure is measured in this
one process on this machine, so ratios are fair even when the machine is noisy:

- machine: the fp32 and bf16 matmul peak (square matmuls sized by time, best of
  several) and whether the CPU computes bf16 natively (AVX512-BF16 / AMX);
- translation training (the Multi30k recipe's model, size and batches): target
  tokens/s of attnrnn in fp32 and, where bf16 is native, with bf16 autocast
  (elsewhere it is emulated, ~40x slower, and not measured), and of the reference
  (random batches, GRUCell loop, keys re-projected every step, output layer on
  padding) over the same number of sentences; model FLOPs utilization of each
  against the peak of its precision; when ``--threads`` leaves cores idle, fp32
  training once more with a thread per core, against that many threads' peak
  (``*_all_cores``);
- the SST-2 classifier (configs/sst2.yaml) and the AN4 speech model
  (configs/an4.yaml): training tokens/s or frames/s;
- decoding test_2016_flickr: sentences/s greedy and beam 5 (attnrnn batched;
  the reference greedy batched and beam one sentence at a time), BLEU of each,
  beam 5 with int8 dynamic quantization and with bf16 autocast (speed and
  BLEU), greedy and beam 5 with the run's lexical shortlist (written into the
  run: 50 target words per source word and the 500 most frequent; speed and
  BLEU change), and the single-sentence beam-5 latency p50 / p99;
- the same run exported to ONNX (fp32 and int8 weights) and decoded by the torch-free
  predictor: greedy and beam-5 sentences/s and BLEU, each export's size on disk and
  the peak memory of a process that only runs the predictor;
- resident memory per phase: its peak and its rise over the phase's start
  (sampled by a thread; the process's high-water mark is recorded at the end).

Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from common import ROOT, WORK, matmul_peak, write_results
from reference_seq2seq import ReferenceSeq2Seq

import attnrnn
from attnrnn.config import OptimizerConfig
from attnrnn.data.batching import make_batches, pad_sequences
from attnrnn.metrics import corpus_bleu
from attnrnn.models.quantize import quantize_int8
from attnrnn.nn import fast_paths
from attnrnn.tasks.base import Prepared
from attnrnn.tasks.translation import Translator, collate, encode_split, read_pairs
from attnrnn.training.optim import build_optimizer
from attnrnn.training.runtime import keep_freed_memory, native_bf16

Results = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (a high-water mark)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mib() -> float:
    """Resident memory now (Linux /proc; elsewhere the high-water mark)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_memory_mib()
    return pages * resource.getpagesize() / 2**20


class MemoryWatch:
    """Peak resident memory while a block runs, sampled every 2 ms by a thread.

    ``getrusage``'s high-water mark covers the whole life of the process, so it
    cannot tell one phase from the one before; this can. ``peak_mib`` is the
    process's peak during the block, ``added_mib`` its rise over the start.
    """

    def __enter__(self) -> MemoryWatch:
        self.start_mib = self.peak_mib = resident_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak_mib = max(self.peak_mib, resident_mib())

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, resident_mib())

    @property
    def added_mib(self) -> float:
        return self.peak_mib - self.start_mib


def bf16_autocast(enabled: bool = True) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def time_steps(step: Callable[[Any], int], batches: Sequence[Any], warmup: int = 3) -> float:
    """Units/s over ``batches`` after ``warmup`` untimed steps (units as ``step`` counts)."""
    for batch in batches[:warmup]:
        step(batch)
    units, started = 0, time.perf_counter()
    for batch in batches[warmup:]:
        units += step(batch)
    return units / (time.perf_counter() - started)


def training_step(model: torch.nn.Module, compute_loss: Callable, precision: str = "fp32"):
    """One optimizer step as the trainer does it (its AdamW, clipping included); returns
    its units. A small learning rate keeps the trained weights nearly as they are."""
    optimizer = build_optimizer(model, OptimizerConfig(learning_rate=1e-5))

    def step(batch: Any) -> int:
        model.train()
        with bf16_autocast(precision == "bf16"):
            output = compute_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return output.units

    return step


@contextlib.contextmanager
def restored(model: torch.nn.Module) -> Iterator[None]:
    """Put the weights back after timing optimizer steps on a trained model."""
    state = {key: value.clone() for key, value in model.state_dict().items()}
    try:
        yield
    finally:
        model.load_state_dict(state)


def translation_flops_per_token(
    run: Translator, source_per_target: float, attended_per_target: float
) -> float:
    """Useful matmul FLOPs of one training step per target token (forward x 3).

    Counts the encoder GRUs (per source token, ``source_per_target`` of them per
    target token), the decoder GRU with input feeding, the attention (query
    projection; scores and context over the ``attended_per_target`` source
    tokens each target token attends to, its sentence's source length; keys
    projected once per source token), the attentional layer and the output
    layer. Elementwise work (gates, tanh, softmax) is not counted.
    """
    config = run.config.model
    E, H_enc, H = config.embedding_size, config.encoder.hidden_size, config.decoder.hidden_size
    A = config.decoder.attentional_size or H
    M = 2 * H_enc
    attention = config.decoder.attention_size or H
    V = len(run.assets.target.vocab)
    encoder = 0.0
    for layer in range(config.encoder.num_layers):
        inputs = E if layer == 0 else M
        encoder += 2 * 2 * 3 * H_enc * (inputs + H_enc)  # 2 directions, 3 gates, 2 FLOPs
    keys = 2 * M * attention
    decoder_rnn = 2 * 3 * H * (E + A + H)
    attending = 2 * H * attention + attended_per_target * (2 * attention + 2 * M)
    attentional = 2 * A * (M + H)
    output = 2 * V * A
    forward = (encoder + keys) * source_per_target + decoder_rnn + attending + attentional + output
    return 3 * forward


# --------------------------------------------------------------------------- translation


def translation_training(run: Translator, data: Path, steps: int, peaks: Results) -> Results:
    config = run.config
    train_pairs = read_pairs(str(data / "multi30k" / "plain" / "train"), config.data)
    train = encode_split(train_pairs, run.assets, config.data, drop_long=True)
    pad, bos, eos = run.assets.special_ids()
    task = run.task.training(run, Prepared(run.assets, train, train, None))
    batches = task.train_batches(0)[: steps + 3]
    source_tokens = sum(len(train.sources[i]) for batch in batches for i in batch)
    target_tokens = sum(len(train.targets[i]) + 1 for batch in batches for i in batch)
    attended = sum(
        len(train.sources[i]) * (len(train.targets[i]) + 1) for batch in batches for i in batch
    )
    flops = translation_flops_per_token(
        run, source_tokens / target_tokens, attended / target_tokens
    )
    results: Results = {
        "train_batch_tokens": config.trainer.batch_tokens,
        "train_sentences_per_batch_mean": round(sum(len(b) for b in batches) / len(batches), 1),
        "train_flops_per_target_token": flops,
    }
    model = run.model
    precisions = ("fp32", "bf16") if native_bf16(torch.device("cpu")) else ("fp32",)
    for precision in precisions:  # bf16 only where the CPU computes it (else ~40x slower)
        with restored(model), MemoryWatch() as memory:
            step = training_step(model, task.compute_loss, precision)
            speed = time_steps(step, batches)
        suffix = "" if precision == "fp32" else "_bf16"
        results[f"train_tokens_per_second{suffix}"] = speed
        results[f"train_mfu{suffix}"] = flops * speed / peaks[f"{precision}_matmul_flops"]
        results[f"train_peak_memory_mib{suffix}"] = memory.peak_mib
        results[f"train_added_memory_mib{suffix}"] = memory.added_mib
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    if threads < cores:
        # fp32 training again with a thread per core, against the peak of as many threads
        torch.set_num_threads(cores)
        try:
            peak = matmul_peak(torch.float32, torch.device("cpu"))
            with restored(model):
                speed = time_steps(training_step(model, task.compute_loss), batches)
        finally:
            torch.set_num_threads(threads)
        results.update(
            {
                "all_cores_threads": cores,
                "all_cores_fp32_matmul_flops": peak,
                "train_tokens_per_second_all_cores": speed,
                "train_mfu_all_cores": flops * speed / peak,
            }
        )
    model.eval()

    reference = ReferenceSeq2Seq(len(run.assets.target.vocab), pad)
    reference.load_attnrnn(model)
    shuffled = list(range(len(train)))
    random.Random(0).shuffle(shuffled)
    random_batches, position = [], 0
    for size in (len(batch) for batch in batches):  # the same batch sizes, no bucketing
        random_batches.append(shuffled[position : position + size])
        position += size

    @dataclasses.dataclass
    class Output:
        loss: torch.Tensor
        units: int

    def reference_loss(module: ReferenceSeq2Seq, indices: list[int]) -> Output:
        batch = collate(train, indices, pad, bos, eos)
        loss = module.loss(
            batch.source, batch.source_lengths, batch.target_input, batch.target_output
        )
        return Output(loss, int((batch.target_output != pad).sum()))

    with MemoryWatch() as memory:
        speed = time_steps(training_step(reference, reference_loss), random_batches)
    results["reference_train_tokens_per_second"] = speed
    results["reference_train_peak_memory_mib"] = memory.peak_mib
    results["reference_train_added_memory_mib"] = memory.added_mib
    results["train_speedup_vs_reference"] = results["train_tokens_per_second"] / speed
    results["train_precision"] = "fp32"
    return results


def translation_decoding(
    run: Translator, data: Path, sentences: int, reference_beam_sentences: int
) -> Results:
    config = run.config
    prefix = data / "multi30k" / "plain" / "test_2016_flickr"
    pairs = read_pairs(str(prefix), config.data)[:sentences]
    test = encode_split(pairs, run.assets, config.data, drop_long=False)
    references = [pair.target for pair in pairs]
    target = run.assets.target
    pad, bos, eos = run.assets.special_ids()
    results: Results = {"decode_sentences": len(test)}

    def decode(
        model: torch.nn.Module,
        beam: int,
        precision: str = "fp32",
        shortlist: bool = False,
        prepared: bool = True,
    ) -> tuple[float, float]:
        """Sentences/s and BLEU of one pass over the test sentences; ``prepared``: the
        inference decoder step (attnrnn.nn.decoder_step), else the model's own step."""
        search = dataclasses.replace(config.search, beam_size=beam, n_best=1)
        translator = Translator(
            run.task, config, run.assets, model, run.device, run.directory, precision=precision
        )
        with fast_paths.hand_written(prepared):
            # untimed: the weights prepared once per loaded model, kernels warmed up
            translator.decode_ids(test.sources[:20], search, shortlist)
            started = time.perf_counter()
            hypotheses = translator.decode_ids(test.sources, search, shortlist)
            speed = len(test) / (time.perf_counter() - started)
        outputs = [target.decode(n_best[0].tokens) for n_best in hypotheses]
        return speed, corpus_bleu(outputs, references).score

    model = run.model.eval()
    for name, beam in (("greedy", 1), ("beam5", 5)):
        with MemoryWatch() as memory:
            speed, bleu = decode(model, beam)
        results[f"{name}_sentences_per_second"] = speed
        results[f"{name}_bleu"] = bleu
        results[f"{name}_peak_memory_mib"] = memory.peak_mib
        results[f"{name}_added_memory_mib"] = memory.added_mib
        # the model's own step, through its modules (the path before the prepared step)
        speed, bleu = decode(model, beam, prepared=False)
        results[f"{name}_unprepared_sentences_per_second"] = speed
        results[f"{name}_unprepared_bleu"] = bleu
    summary = run.write_shortlist()  # the lexical shortlist of the run's training pairs
    results["shortlist_always_kept"] = summary["always_kept"]
    bf16 = native_bf16(torch.device("cpu"))
    for name, beam in (("greedy", 1), ("beam5", 5)):
        speed, bleu = decode(model, beam, shortlist=True)
        results[f"{name}_shortlist_sentences_per_second"] = speed
        results[f"{name}_shortlist_bleu"] = bleu
        results[f"{name}_shortlist_bleu_change"] = bleu - results[f"{name}_bleu"]
        if bf16:  # bf16 matmuls with the shortlist: the fastest PyTorch decoding
            speed, bleu = decode(model, beam, precision="bf16", shortlist=True)
            results[f"{name}_bf16_shortlist_sentences_per_second"] = speed
            results[f"{name}_bf16_shortlist_bleu"] = bleu
            results[f"{name}_bf16_shortlist_bleu_change"] = bleu - results[f"{name}_bleu"]
    speed, bleu = decode(quantize_int8(model), 5)
    results["beam5_int8_sentences_per_second"] = speed
    results["beam5_int8_bleu"] = bleu
    results["int8_bleu_change"] = bleu - results["beam5_bleu"]
    if bf16:
        speed, bleu = decode(model, 5, precision="bf16")
        results["beam5_bf16_sentences_per_second"] = speed
        results["beam5_bf16_bleu"] = bleu
        results["bf16_bleu_change"] = bleu - results["beam5_bleu"]
    else:
        print("no native bf16 on this CPU: bf16 decoding not measured", flush=True)

    search = dataclasses.replace(config.search, beam_size=5, n_best=1)
    latencies = []
    for source in test.sources[:100]:
        started = time.perf_counter()
        run.decode_ids([source], search)
        latencies.append(1000 * (time.perf_counter() - started))
    latencies.sort()
    results["beam5_latency_p50_ms"] = statistics.median(latencies)
    results["beam5_latency_p99_ms"] = latencies[round(0.99 * (len(latencies) - 1))]

    reference = ReferenceSeq2Seq(len(target.vocab), pad)
    reference.load_attnrnn(model)
    reference.eval()
    outputs: list[str] = [""] * len(test)
    started = time.perf_counter()
    for indices in make_batches([len(s) for s in test.sources], 10**9, 64):
        source, lengths = pad_sequences([test.sources[i] for i in indices], pad)
        limit = int(config.search.max_length_ratio * int(lengths.max()))
        limit += config.search.max_length_offset
        tokens = reference.greedy(source, lengths, bos, eos, max_length=limit)
        for row, index in enumerate(indices):
            ids = tokens[row].tolist()
            outputs[index] = target.decode(ids[: ids.index(eos)] if eos in ids else ids)
    results["reference_greedy_sentences_per_second"] = len(test) / (time.perf_counter() - started)
    results["reference_greedy_bleu"] = corpus_bleu(outputs, references).score
    count = min(reference_beam_sentences, len(test))
    started = time.perf_counter()
    for source_ids in test.sources[:count]:
        limit = int(config.search.max_length_ratio * len(source_ids))
        limit += config.search.max_length_offset
        reference.beam_one(torch.tensor([source_ids]), bos, eos, 5, max_length=limit)
    results["reference_beam5_sentences_per_second"] = count / (time.perf_counter() - started)
    results["reference_beam5_sentences_timed"] = count
    results["beam5_decode_speedup_vs_reference"] = (
        results["beam5_sentences_per_second"] / results["reference_beam5_sentences_per_second"]
    )
    results["greedy_decode_speedup_vs_reference"] = (
        results["greedy_sentences_per_second"] / results["reference_greedy_sentences_per_second"]
    )
    return results


# --------------------------------------------------------------------------- other models


def folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


# The child's peak resident memory is VmHWM (ru_maxrss would carry the parent's over exec).
ONNX_MEMORY_PROBE = """
import sys
import attnrnn.onnx
model = attnrnn.onnx.load(sys.argv[1], threads=int(sys.argv[2]))
model.translate([line.rstrip("\\n") for line in open(sys.argv[3], encoding="utf-8")], beam=5)
status = open("/proc/self/status").read().split("\\n")
print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024)
"""


def onnx_decoding(run_directory: Path, data: Path, sentences: int) -> Results:
    """The run exported to ONNX (fp32 and int8 weights), decoded by the torch-free
    predictor (ONNX Runtime + numpy search) with the threads torch has: greedy and beam-5
    sentences/s and BLEU on the same test sentences, each folder's size, and the peak
    memory of a process that only loads the predictor and translates 100 sentences."""
    import subprocess
    import sys

    import attnrnn.onnx
    from attnrnn.onnx.export import export_onnx
    from attnrnn.onnx.search import SearchSettings

    run = attnrnn.load(run_directory, device="cpu")
    config = run.config
    prefix = data / "multi30k" / "plain" / "test_2016_flickr"
    pairs = read_pairs(str(prefix), config.data)[:sentences]
    test = encode_split(pairs, run.assets, config.data, drop_long=False)
    references = [pair.target for pair in pairs]
    threads = torch.get_num_threads()
    results: Results = {"onnx_threads": threads}
    with tempfile.TemporaryDirectory() as scratch:
        sources_file = Path(scratch) / "sources.txt"
        sources_file.write_text("\n".join(pair.source for pair in pairs[:100]) + "\n")
        for name, int8 in (("onnx", False), ("onnx_int8", True)):
            folder = Path(scratch) / name
            started = time.perf_counter()
            export_onnx(run_directory, folder, int8=int8)
            results[f"{name}_export_seconds"] = time.perf_counter() - started
            results[f"{name}_size_mib"] = folder_mib(folder)
            predictor = attnrnn.onnx.load(folder, threads=threads)
            for search, beam in (("greedy", 1), ("beam5", 5)):
                settings = SearchSettings(
                    **{**dataclasses.asdict(config.search), "beam_size": beam, "n_best": 1}
                )
                started = time.perf_counter()
                hypotheses = predictor.decode_ids(test.sources, settings)
                speed = len(test) / (time.perf_counter() - started)
                outputs = [predictor.target.decode(n_best[0].tokens) for n_best in hypotheses]
                results[f"{name}_{search}_sentences_per_second"] = speed
                results[f"{name}_{search}_bleu"] = corpus_bleu(outputs, references).score
            probe = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    ONNX_MEMORY_PROBE,
                    str(folder),
                    str(threads),
                    str(sources_file),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[f"{name}_predictor_peak_memory_mib"] = float(probe.stdout.split()[-1])
    results["pytorch_bundle_size_mib"] = folder_mib(run_directory / "best")
    return results


def recipe(path: str, overrides: list[str]) -> Any:
    """A recipe configuration of the repository with ``--set``-style overrides."""
    from attnrnn.tasks.runs import read_config

    return read_config(ROOT / path, overrides)


def classifier_training(data: Path, steps: int) -> Results:
    """SST-2 recipe model (random embeddings of the same size: the arithmetic is the same)."""
    from attnrnn.tasks import classifier_run

    trees = data / "sst" / "trees"
    config = recipe(
        "configs/sst2.yaml",
        [
            f"data.train={trees / 'train.txt'}",
            f"data.dev={trees / 'dev.txt'}",
            "data.test=null",
            "pretrained.vectors=null",
            "pretrained.vocab_from_vectors=0",
        ],
    )
    with tempfile.TemporaryDirectory() as workdir:
        prepared = classifier_run.prepare(config, Path(workdir), log=lambda message: None)
    model = classifier_run.make_model(config, prepared.vocab, len(prepared.labels))
    task = classifier_run.make_task(config, prepared, torch.device("cpu"))
    batches = task.train_batches(0)[: steps + 3]
    with MemoryWatch() as memory:
        speed = time_steps(training_step(model, task.compute_loss), batches)
    return {
        "classifier_train_tokens_per_second": speed,
        "classifier_train_examples_per_batch_mean": round(
            sum(len(b) for b in batches) / len(batches), 1
        ),
        "classifier_train_added_memory_mib": memory.added_mib,
    }


def speech_training(data: Path, steps: int) -> Results:
    """AN4 recipe model on cached (or computed) log-mel features."""
    from attnrnn.tasks.runs import prepare
    from attnrnn.tasks.speech import SpeechTask

    folder = data / "an4"
    config = recipe(
        "configs/an4.yaml",
        [
            f"data.train={folder / 'train.tsv'}",
            "data.test=null",
            f"data.feature_cache={WORK / 'an4' / 'features'}",
        ],
    )
    speech = SpeechTask()
    with tempfile.TemporaryDirectory() as workdir:
        prepared = prepare(speech, config, Path(workdir), lambda message: None)
    model = speech.build_model(config, prepared.assets)
    trained = speech.model_class(speech, config, prepared.assets, model, torch.device("cpu"))
    task = speech.training(trained, prepared)
    batches = task.train_batches(0)[: steps + 3]
    with MemoryWatch() as memory:
        speed = time_steps(training_step(model, task.compute_loss), batches)
    return {
        "speech_train_frames_per_second": speed,
        "speech_train_added_memory_mib": memory.added_mib,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--run", type=Path, default=WORK / "multi30k_de_en" / "run")
    parser.add_argument("--threads", type=int, help="torch threads (default: PyTorch's)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per model")
    parser.add_argument("--sentences", type=int, default=1000, help="test sentences decoded")
    parser.add_argument("--reference-beam-sentences", type=int, default=200)
    parser.add_argument("--note", help="how the machine was shared, etc. (kept in the results)")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    keep_freed_memory()  # as the trainer does (attnrnn.training.runtime)
    torch.manual_seed(0)
    results: Results = {"threads": torch.get_num_threads()}
    cpu = torch.device("cpu")
    results["fp32_matmul_flops"] = matmul_peak(torch.float32, cpu)
    # Emulated bf16 (no AVX512-BF16 / AMX) is measured too, briefly: the record shows the gap.
    results["bf16_matmul_flops"] = matmul_peak(torch.bfloat16, cpu, seconds=1.0, largest=2048)
    results["native_bf16"] = native_bf16(cpu)
    print(f"peaks: {results}", flush=True)

    if not (arguments.run / "best").is_dir():
        raise SystemExit(
            f"{arguments.run}: no trained Multi30k run; train it first with "
            "`python benchmarks/multi30k.py --direction de-en` (or pass --run)"
        )
    run = attnrnn.load(arguments.run, device="cpu")
    assert isinstance(run, Translator), f"{arguments.run} is not a translation run"
    results.update(translation_training(run, arguments.data, arguments.steps, results))
    print(f"translation training done: {results}", flush=True)
    results.update(
        translation_decoding(
            run, arguments.data, arguments.sentences, arguments.reference_beam_sentences
        )
    )
    print("decoding done", flush=True)
    results.update(onnx_decoding(arguments.run, arguments.data, arguments.sentences))
    print("ONNX decoding done", flush=True)
    results.update(classifier_training(arguments.data, arguments.steps))
    results.update(speech_training(arguments.data, arguments.steps))
    results["peak_memory_mib"] = peak_memory_mib()
    results["model"] = "configs/multi30k_de_en.yaml (trained run of benchmarks/multi30k.py)"
    if arguments.note:
        results["note"] = arguments.note
    write_results(
        "speed",
        {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in results.items()
        },
    )


if __name__ == "__main__":
    main()
