"""The CUDA path: every task model trains a step and decodes on the GPU exactly as on the
CPU. Skipped where there is no CUDA device (the project's CI machines have none);
`benchmarks/speed_gpu.py` times the GPU path."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from attnrnn.config import EncoderConfig, InferenceConfig, TrainerConfig, from_dict
from attnrnn.data.tokenizers import WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import SearchConfig
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.models.seq2seq import DecoderConfig, Seq2Seq, Seq2SeqConfig
from attnrnn.models.speech import SpeechModelConfig, SpeechRecognizer
from attnrnn.tasks import speech, summarization, translation
from attnrnn.tasks.text import SPECIALS, TextSide
from attnrnn.tasks.translation import (
    ParallelSplit,
    TranslationDataConfig,
    TranslationRunConfig,
    TranslationTask,
    Translator,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
PAD, UNK, BOS, EOS = 0, 1, 2, 3
V = 14
SEARCH = SearchConfig(beam_size=3, n_best=2, max_length_offset=4, no_repeat_ngram_size=3)


def sharpened(model: torch.nn.Module) -> torch.nn.Module:
    """Scale output layers so an untrained model makes confident, varied choices."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "output" in name or "ctc" in name:
                parameter.mul_(6.0)
    return model.double().eval()


def same_hypotheses(on_cpu, on_cuda) -> None:
    assert len({tuple(n[0].tokens) for n in on_cpu}) > 1  # varied, non-trivial outputs
    for cpu_best, cuda_best in zip(on_cpu, on_cuda, strict=True):
        assert [h.tokens for h in cpu_best] == [h.tokens for h in cuda_best]
        for a, b in zip(cpu_best, cuda_best, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-6)


def decoder(attention: str) -> DecoderConfig:
    return DecoderConfig(
        style="luong",
        cell="lstm",
        hidden_size=16,
        attention=attention,
        attention_size=8,
        output_dropout=0.0,
    )


def decode_sources(model: Seq2Seq, sources: list[list[int]], device: torch.device) -> list:
    """N-best lists of token-id sources through the translation task's batched decoding."""
    config = TranslationRunConfig(data=TranslationDataConfig(train="unused", dev="unused"))
    translator = Translator(TranslationTask(), config, None, model, device)
    return translator.decode_ids(sources, SEARCH)


def test_translation_trains_and_decodes_on_cuda():
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=8,
        embedding_dropout=0.0,
        encoder=EncoderConfig(cell="gru", hidden_size=8),
        decoder=decoder("additive"),
    )
    model = sharpened(Seq2Seq(V, V, config, PAD, BOS, EOS))
    sources = [[random.Random(n).randrange(4, V) for _ in range(3 + n % 5)] for n in range(9)]
    on_cpu = decode_sources(model, sources, CPU)
    gpu_model = copy.deepcopy(model).to(CUDA)
    same_hypotheses(on_cpu, decode_sources(gpu_model, sources, CUDA))
    split = ParallelSplit(sources, [s[::-1] for s in sources], [""] * len(sources))
    batch = translation.collate(split, range(len(sources)), PAD, BOS, EOS).to(CUDA)
    # training mode (cuDNN RNNs backpropagate only there); no dropout: same loss as the CPU
    loss, _ = translation.sequence_loss(gpu_model.train(), batch, label_smoothing=0.1)
    loss.backward()
    expected, _ = translation.sequence_loss(
        model.train(), translation.collate(split, range(len(sources)), PAD, BOS, EOS), 0.1
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(p.grad is not None and p.grad.is_cuda for p in gpu_model.parameters())


def transcribe_features(model, features, search, ctc_weight, trainer, device):
    """N-best lists of features through the speech task's batched decoding."""
    config = speech.SpeechRunConfig(
        data=speech.SpeechDataConfig(train="unused.tsv"),
        inference=InferenceConfig(trainer.batch_tokens, trainer.max_batch_size),
        ctc_weight=ctc_weight,
    )
    recognizer = speech.Recognizer(speech.SpeechTask(), config, None, model, device)
    return recognizer.hypotheses(features, search)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_speech_trains_and_decodes_on_cuda(ctc_weight, tiny_speech_model):
    torch.manual_seed(0)
    model_section = tiny_speech_model(listener={"num_layers": 2}, decoder={"output_dropout": 0.3})
    config = from_dict(SpeechModelConfig, model_section)
    model = sharpened(SpeechRecognizer(20, 9, config, PAD, BOS, EOS))
    generator = torch.Generator().manual_seed(1)
    features = [torch.randn(n, 20, generator=generator, dtype=torch.float64) for n in (40, 23, 31)]
    trainer = TrainerConfig()
    on_cpu = transcribe_features(model, features, SEARCH, ctc_weight, trainer, CPU)
    gpu_model = copy.deepcopy(model).to(CUDA)
    on_cuda = transcribe_features(gpu_model, features, SEARCH, ctc_weight, trainer, CUDA)
    same_hypotheses(on_cpu, on_cuda)
    split = speech.SpeechSplit(features, [[4, 5, 6], [7, 8], [4, 4, 5, 6]], ["", "", ""])
    batch = speech.collate(split, [0, 1, 2], gpu_model).to(CUDA)
    loss, _ = gpu_model.train().joint_loss(
        batch.features, batch.lengths, batch.target_input, batch.target_output, 0.1
    )
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in gpu_model.parameters())


def test_pointer_generator_trains_and_decodes_on_cuda():
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=8,
        share_embeddings=True,
        encoder=EncoderConfig(cell="lstm", hidden_size=8),
        decoder=decoder("coverage"),
    )
    model = sharpened(PointerGenerator(V, config, PAD, BOS, EOS, UNK, copy=True))
    vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>", *"abcdefghij"], specials=SPECIALS)
    words = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "zork", "blip"]
    documents = [
        summarization.Document(
            " ".join(random.Random(n).choice(words) for _ in range(4 + n)), ("a zork",), "x"
        )
        for n in range(6)
    ]
    tokenizer = WordTokenizer(lowercase=True, split_contractions=False)
    assets = summarization.SummarizationAssets(TextSide(tokenizer, vocab))
    run = summarization.SummarizationRunConfig(summarization.SummarizationDataConfig("-"))
    split = summarization.encode_split(documents, assets, run.data)
    task = summarization.SummarizationTask()
    on_cpu = summarization.Summarizer(task, run, assets, model, CPU).hypotheses(split, SEARCH)
    gpu_model = copy.deepcopy(model).to(CUDA)
    on_cuda = summarization.Summarizer(task, run, assets, gpu_model, CUDA).hypotheses(split, SEARCH)
    assert [n_best[0].tokens for n_best in on_cpu] == [n_best[0].tokens for n_best in on_cuda]
    batch = summarization.collate(split, range(len(split)), gpu_model).to(CUDA)
    loss, _ = summarization.summarization_loss(gpu_model.train(), batch, coverage_weight=1.0)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in gpu_model.parameters())


@pytest.mark.parametrize("scale", [1.0, 400.0])  # 400: some target probabilities underflow
def test_fused_output_loss_on_cuda_equals_pytorch(scale):
    from attnrnn.nn.losses import linear_cross_entropy

    generator = torch.Generator().manual_seed(5)
    inputs = scale * torch.randn(300, 8, generator=generator, dtype=torch.float64)
    weight = torch.randn(V, 8, generator=generator, dtype=torch.float64)
    bias = torch.randn(V, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, V, (300,), generator=generator)
    results = []
    for fused in (True, False):
        leaves = [t.to(CUDA).requires_grad_() for t in (inputs, weight, bias)]
        if fused:
            loss = linear_cross_entropy(*leaves, targets.to(CUDA), 0.1, block_rows=64)
        else:
            logits = torch.nn.functional.linear(*leaves)
            loss = torch.nn.functional.cross_entropy(logits, targets.to(CUDA), label_smoothing=0.1)
        loss.backward()
        results.append([loss.detach()] + [leaf.grad for leaf in leaves])
    assert torch.isfinite(results[0][0])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want)


def test_fast_path_switch_on_cuda():
    """On CUDA only the fused output loss is hand-written (the encoder and decoder keep
    cuDNN), and ``hand_written(False)`` routes it through autograd too; the loss is the
    same either way."""
    from attnrnn.nn import hand_written

    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=8,
        embedding_dropout=0.0,
        encoder=EncoderConfig(cell="gru", hidden_size=8),
        decoder=DecoderConfig(hidden_size=16, attention="additive", output_dropout=0.0),
    )
    model = Seq2Seq(V, V, config, PAD, BOS, EOS).double().to(CUDA).train()
    source = torch.randint(4, V, (3, 5), device=CUDA)
    target_input, target_output = torch.randint(4, V, (2, 3, 4), device=CUDA)
    losses = {}
    for hand in (True, False):
        with hand_written(hand):
            output = model(source, torch.tensor([5, 4, 2], device=CUDA), target_input)
            attentional = output.attentional.flatten(0, 1)
            losses[hand] = model.output_loss(attentional, target_output.flatten(), 0.1)
        names, seen, stack = set(), set(), [losses[hand].grad_fn]
        while stack:  # every node of the backward graph
            node = stack.pop()
            if node is not None and node not in seen:
                seen.add(node)
                names.add(type(node).__name__)
                stack.extend(next_node for next_node, _ in node.next_functions)
        assert ("_LinearCrossEntropyBackward" in names) is hand
        assert not names & {"GRURecurrenceBackward", "LuongGRUAdditiveBackward"}
    torch.testing.assert_close(losses[True], losses[False])


class CudaRegression:
    """A linear regression on the GPU that records the dtype of its forward pass."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(64, 8, generator=generator).to(CUDA)
        self.targets = (self.inputs.cpu() @ torch.randn(8, 1, generator=generator)).to(CUDA)
        self.dtypes: set[torch.dtype] = set()

    def train_batches(self, epoch: int, group: int = 1) -> list[list[int]]:
        return [list(range(start, start + 16)) for start in range(0, 64, 16)]

    def compute_loss(self, model, batch):
        from attnrnn.training.trainer import LossOutput

        predictions = model(self.inputs[batch])
        self.dtypes.add(predictions.dtype)
        loss = torch.nn.functional.mse_loss(predictions.float(), self.targets[batch])
        return LossOutput(loss, len(batch))

    def evaluate(self, model) -> dict[str, float]:
        with torch.no_grad():
            predictions = model(self.inputs).float()
        return {"mse": float(torch.nn.functional.mse_loss(predictions, self.targets))}


@pytest.mark.parametrize("precision, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_mixed_precision_training_on_cuda(tmp_path, precision, dtype):
    """fp16 trains through a gradient scaler whose scale the checkpoint keeps; bf16 without."""
    from attnrnn.config import OptimizerConfig
    from attnrnn.training.trainer import Trainer

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1).to(CUDA)
    task = CudaRegression()

    def trainer(epochs: int) -> Trainer:
        return Trainer(
            model,
            task,
            OptimizerConfig(learning_rate=0.05, warmup_steps=0, schedule="constant"),
            TrainerConfig(
                epochs=epochs, progress=False, early_stopping_patience=None, precision=precision
            ),
            tmp_path / "run",
            metric="mse",
            higher_is_better=False,
        )

    first = trainer(30)
    first.train()
    assert task.dtypes == {dtype} and model.weight.dtype == torch.float32
    assert task.evaluate(model)["mse"] < 0.05
    if precision == "fp16":
        assert first.scaler is not None and first.state.loss_scale == first.scaler.get_scale()
        again = trainer(31)
        again.resume()
        assert again.scaler is not None and again.scaler.get_scale() == first.state.loss_scale
    else:
        assert first.scaler is None and first.state.loss_scale is None
