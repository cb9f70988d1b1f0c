"""Starting a classifier from a language-model run (task ``language_model``): embedding
rows matched by word, RNN weights copied when the architectures agree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, RunError
from attnrnn.models.classifier import TextClassifier
from attnrnn.models.language_model import BidirectionalLanguageModel, LanguageModelConfig

if TYPE_CHECKING:
    from attnrnn.tasks.language_model import LanguageModel

# The configuration file of the language-model runs attnrnn wrote before they were a task.
OLD_CONFIG_FILE = "lm_config.json"


def load_pretrained_encoder(
    run_directory: Path, model: TextClassifier, vocab: Vocab, log: Log = log_stderr
) -> None:
    """Initialise ``model``'s embedding and RNN encoder from a language-model run.

    Embedding rows are copied by token string for every word in both
    vocabularies (the classifier's vocabulary may differ in words and order);
    the others keep their initialisation. The RNN weights are copied whole.

    Raises:
        RunError: the run directory is missing, incomplete, of another task or
            written by an earlier attnrnn.
        ConfigError: the classifier's embedding size or encoder differ from the
            pretrained ones; the message names the setting to change.
    """
    run_directory = Path(run_directory)
    language_model = read_language_model(run_directory)
    check_compatible(run_directory, language_model.config.model, model)
    pretrained = cast(BidirectionalLanguageModel, language_model.model)
    try:
        model.encoder.load_state_dict(pretrained.encoder.state_dict(), strict=True)
    except RuntimeError as error:
        raise RunError(
            f"{run_directory}: RNN weights do not fit the classifier ({error})"
        ) from None
    pretrained_vocab = language_model.assets.text.vocab
    covered = copy_embedding_rows(pretrained.embedding.weight, pretrained_vocab, model, vocab)
    log(
        f"pretrained encoder {run_directory}: embedding rows for {covered} of {len(vocab)} "
        f"vocabulary words ({covered / len(vocab):.1%}), RNN weights copied"
    )
    if covered < len(vocab) / 2:
        log(
            "fewer than half the words have pretrained embeddings: does the classifier use "
            f"the pretraining's tokenizer ({run_directory / 'tokenizer.json'})?"
        )


def read_language_model(run_directory: Path, option: str = "pretrained.encoder") -> LanguageModel:
    """The trained language model of a run directory (its best checkpoint, on the CPU);
    ``option`` names the setting that gave it, in errors."""
    from attnrnn.tasks.language_model import LanguageModel
    from attnrnn.tasks.runs import CONFIG_FILE, load, run_task

    if (run_directory / OLD_CONFIG_FILE).is_file() and not (run_directory / CONFIG_FILE).is_file():
        raise RunError(
            f"{run_directory} was written by an earlier attnrnn ({OLD_CONFIG_FILE}) and cannot be "
            "read any more: retrain it with `attnrnn train` (a language_model config, see "
            "configs/lm_imdb.yaml) or `attnrnn pretrain --method lm`"
        )
    task = run_task(run_directory)
    if task.name != "language_model":
        raise RunError(f"{run_directory} is a {task.name} run; {option} needs a language_model run")
    language_model = load(run_directory, device="cpu")
    assert isinstance(language_model, LanguageModel)
    return language_model


def language_model_vocab(run_directory: Path) -> Vocab:
    """The vocabulary of a language-model run, without loading its weights."""
    from attnrnn.tasks.runs import run_task
    from attnrnn.tasks.text import TextSide

    task = run_task(run_directory)
    if task.name != "language_model":
        raise RunError(
            f"{run_directory} is a {task.name} run; pretrained.encoder needs a language_model run"
        )
    return TextSide.load(run_directory).vocab


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
