"""Starting a classifier from a language-model pretraining run: embedding rows matched
by word, RNN weights copied when the architectures agree."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from attnrnn.config import (
    from_dict,
)
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.vocab import Vocab
from attnrnn.errors import AttnrnnError, ConfigError, RunError
from attnrnn.models.classifier import TextClassifier
from attnrnn.pretrain.language_model import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    WEIGHTS_DIRECTORY,
    LanguageModelConfig,
)
from attnrnn.training.checkpoint import (
    MODEL_FILE,
    checkpoint_path,
)

# --------------------------------------------------------------------------- transfer


def load_pretrained_encoder(
    run_directory: Path, model: TextClassifier, vocab: Vocab, log: Log = log_stderr
) -> None:
    """Initialise ``model``'s embedding and RNN encoder from a pretraining run.

    Embedding rows are copied by token string for every word in both
    vocabularies (the classifier's vocabulary may differ in words and order);
    the others keep their initialisation. The RNN weights are copied whole.

    Raises:
        RunError: the run directory is missing or incomplete.
        ConfigError: the classifier's embedding size or encoder differ from the
            pretrained ones; the message names the setting to change.
    """
    run_directory = Path(run_directory)
    pretrained_config, pretrained_vocab, weights = read_pretraining_run(run_directory)
    check_compatible(run_directory, pretrained_config, model)
    rnn_weights = {
        name.removeprefix("encoder."): tensor
        for name, tensor in weights.items()
        if name.startswith("encoder.")
    }
    try:
        model.encoder.load_state_dict(rnn_weights, strict=True)
    except RuntimeError as error:
        raise RunError(
            f"{run_directory}: RNN weights do not fit the classifier ({error})"
        ) from None
    covered = copy_embedding_rows(weights["embedding.weight"], pretrained_vocab, model, vocab)
    log(
        f"pretrained encoder {run_directory}: embedding rows for {covered} of {len(vocab)} "
        f"vocabulary words ({covered / len(vocab):.1%}), RNN weights copied"
    )
    if covered < len(vocab) / 2:
        log(
            "fewer than half the words have pretrained embeddings: does the classifier use "
            f"the pretraining's tokenizer ({run_directory / TOKENIZER_FILE})?"
        )


def read_pretraining_run(run_directory: Path) -> tuple[LanguageModelConfig, Vocab, dict]:
    """The config, vocabulary and weights of a complete pretraining run directory."""
    if not run_directory.is_dir():
        raise RunError(f"{run_directory}: no such language-model pretraining directory")
    for name in (CONFIG_FILE, VOCAB_FILE):
        if not (run_directory / name).is_file():
            raise RunError(f"{run_directory} is incomplete: {name} is missing")
    weights_path = checkpoint_path(run_directory / WEIGHTS_DIRECTORY) / MODEL_FILE
    try:
        data = json.loads((run_directory / CONFIG_FILE).read_text(encoding="utf-8"))
        config = from_dict(LanguageModelConfig, data)
        vocab = Vocab.load(run_directory / VOCAB_FILE)
        weights = load_file(str(weights_path))
    except (OSError, ValueError, SafetensorError, AttnrnnError) as error:
        raise RunError(f"{run_directory}: cannot read the pretraining run ({error})") from None
    if "embedding.weight" not in weights:
        raise RunError(f"{weights_path}: no embedding weights; is this a language model?")
    return config, vocab, weights


def check_compatible(
    run_directory: Path, pretrained: LanguageModelConfig, model: TextClassifier
) -> None:
    """Raise ConfigError naming the classifier setting that differs from the pretrained one."""
    encoder = model.encoder
    pairs = [
        ("embedding_size", pretrained.embedding_size, model.embedding.embedding_dim),
        ("encoder.cell", pretrained.encoder.cell, encoder.cell),
        ("encoder.hidden_size", pretrained.encoder.hidden_size, encoder.hidden_size),
        ("encoder.num_layers", pretrained.encoder.num_layers, encoder.num_layers),
        ("encoder.bidirectional", pretrained.encoder.bidirectional, encoder.bidirectional),
    ]
    for key, pretrained_value, model_value in pairs:
        if pretrained_value != model_value:
            raise ConfigError(
                f"{run_directory} was pretrained with {key}={pretrained_value} but "
                f"model.{key} is {model_value}; set model.{key}={pretrained_value} to use it"
            )


def copy_embedding_rows(
    pretrained_matrix: torch.Tensor, pretrained_vocab: Vocab, model: TextClassifier, vocab: Vocab
) -> int:
    """Copy the pretrained (V', E) rows into the classifier's (V, E) embedding by token
    string, padding excepted; return how many of the classifier's words were covered."""
    pairs = [
        (index, pretrained_vocab.index(token))
        for index, token in enumerate(vocab)
        if token in pretrained_vocab and index != vocab.pad_index
    ]
    if not pairs:
        return 0
    targets, sources = (torch.tensor(column) for column in zip(*pairs, strict=True))  # (N,) each
    weight = model.embedding.weight
    with torch.no_grad():
        weight[targets.to(weight.device)] = pretrained_matrix[sources].to(weight)  # (N, E)
    return len(pairs)
