"""``attnrnn diagnose``: run the attention diagnostics of a trained run on labelled data and
write ``diagnostics.json`` and a self-contained ``diagnostics.html``.

A diagnosis is a list of sections (:func:`attnrnn.diagnostics.common.section`), each with
headline numbers (``summary``), per-example values (``distributions``, drawn as histograms)
and notes. The classifier sections are made here from :mod:`attnrnn.diagnostics.classifier`
and :mod:`attnrnn.diagnostics.baselines`; the encoder-decoder and speech sections come from
:mod:`attnrnn.diagnostics.seq2seq` and :mod:`attnrnn.diagnostics.speech`.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch

from attnrnn.diagnostics import classifier as tests
from attnrnn.diagnostics.baselines import mlp_transfer, uniform_pooling
from attnrnn.diagnostics.common import evaluating, mean, median, section
from attnrnn.diagnostics.measures import entropy, jensen_shannon, total_variation
from attnrnn.errors import ConfigError
from attnrnn.extras import require
from attnrnn.models.classifier import TextClassifier
from attnrnn.tasks.base import TrainedModel

Log = Callable[[str], None]
FORMAT = 1
"""Version of the diagnostics.json layout."""


@dataclass(frozen=True)
class DiagnoseOptions:
    """How much work the diagnostics do.

    limit: texts diagnosed (a seeded sample of the data when it has more).
    permutations: random permutations of each text's attention.
    epsilon: the output change (total variation) adversarial attention may cause.
    ig_steps: integration steps of integrated gradients.
    mlp_train: training texts of the pooled-MLP baseline (0: skip it).
    seed: the sample, the permutations, random erasure and the adversarial restarts.
    """

    limit: int = 200
    permutations: int = 100
    epsilon: float = 0.01
    ig_steps: int = 50
    mlp_train: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("limit", "permutations", "ig_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"diagnose: {name} must be at least 1, got {getattr(self, name)}")
        if self.mlp_train < 0:
            raise ConfigError(f"diagnose: mlp_train must not be negative, got {self.mlp_train}")
        if not 0 < self.epsilon < 1:
            raise ConfigError(f"diagnose: epsilon must be in (0, 1), got {self.epsilon}")


def sample(count: int, limit: int, seed: int) -> list[int]:
    """``limit`` indices of ``count`` items drawn with ``seed``, in their original order."""
    if count <= limit:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))


# --------------------------------------------------------------------------- classifier


def _is_filler(token: str, stop_words: frozenset[str]) -> bool:
    """A stop-word (scikit-learn's English list) or a token of punctuation only."""
    return token.lower() in stop_words or all(c in string.punctuation for c in token)


def classifier_sections(
    trained: TrainedModel,
    ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None,
    texts: Sequence[str],
    options: DiagnoseOptions,
    compare: Sequence[TrainedModel] = (),
    train: tuple[Sequence[Sequence[int]], Sequence[int]] | None = None,
    log: Log = lambda message: None,
) -> list[dict[str, Any]]:
    """The diagnostics of an attention-pooled classifier on encoded texts ``ids`` (their
    raw ``texts`` for the seed comparison), scored against ``labels`` when given."""
    model = cast(TextClassifier, trained.model)
    pad = trained.assets.text.vocab.pad_index
    stop_words = frozenset(require("sklearn.feature_extraction.text").ENGLISH_STOP_WORDS)
    generator = torch.Generator().manual_seed(options.seed)
    agreement: dict[str, list[float]] = {}
    erasure: dict[str, list[float]] = {}
    values: dict[str, list[float]] = {}

    def add(table: dict[str, list[float]], key: str, value: float) -> None:
        table.setdefault(key, []).append(value)

    pooled = uniform_pooling(model, ids, pad)
    predictions = trained.predict(list(texts))  # the tokens as written, one per weight
    for number, text_ids in enumerate(ids):
        if number % 20 == 0:
            log(f"diagnose: text {number + 1}/{len(ids)}")
        tokens, length = torch.tensor(text_ids), len(text_ids)
        attention = pooled.attention[number].mean(dim=0).double()  # (L,)
        if length >= 2:
            k = max(1, min(5, length // 2))  # top 5, top half of a short text
            for method in tests.IMPORTANCE_METHODS:
                scores = tests.importance(model, tokens, length, method, options.ig_steps)  # type: ignore[arg-type]
                result = tests.agreement(attention, scores[:length], k)
                add(agreement, f"kendall_tau_{method}", result["kendall_tau"])
                add(agreement, f"top_k_overlap_{method}", result["top_k_overlap"])
            permuted = tests.permutation_effect(
                model, tokens, length, options.permutations, generator
            )
            add(values, "permutation_median_tvd", permuted.median_output_tvd)
            add(values, "permutation_max_tvd", max(permuted.output_tvd))
            add(values, "permutation_median_jsd", permuted.median_attention_jsd)
            adversarial = tests.adversarial_attention(
                model, tokens, length, options.epsilon, generator=generator
            )
            add(values, "adversarial_jsd", adversarial.attention_jsd)
        ks = [k for k in (1, 2, 5) if k <= length]
        for order in tests.ERASURE_ORDERS:
            erased = tests.erasures(model, tokens, length, ks, order, generator)  # type: ignore[arg-type]
            for k, removal in zip(ks, erased, strict=True):
                add(erasure, f"flip_{order}_k{k}", float(removal.flipped))
                add(erasure, f"drop_{order}_k{k}", removal.probability_drop)
        words = predictions[number].tokens
        filler = torch.tensor([_is_filler(word, stop_words) for word in words], dtype=torch.double)
        add(values, "entropy", float(entropy(attention.numpy(), normalized=True)))
        add(values, "filler_mass", float((attention * filler).sum()))
        add(values, "filler_share", float(filler.mean()))
    sections = [
        _agreement_section(agreement),
        _counterfactual_section(values, options),
        _erasure_section(erasure),
        _uniform_section(pooled.own, pooled.uniform, labels),
        _focus_section(values, model, ids, pad),
    ]
    if compare:
        sections.append(seed_variance(predictions, compare))
    if train is not None and labels is not None:
        log(f"diagnose: training the pooled-MLP baselines on {len(train[0])} texts")
        transfer = mlp_transfer(model, train, (ids, labels), pad, len(trained.assets.labels))
        sections.append(_transfer_section(transfer, pooled.own, labels))
    return sections


def _agreement_section(agreement: dict[str, list[float]]) -> dict[str, Any]:
    return section(
        "importance_agreement",
        "Does attention rank tokens like feature importance?",
        "Kendall τ between each text's attention and the importance of its tokens for the "
        "predicted class by gradient × input, integrated gradients (Captum) and "
        "leave-one-out; 1: the same order, 0: unrelated, -1: reversed. Top-k overlap: the "
        "share of the k most attended tokens that are among the k most important (k = 5, "
        "or half the tokens of a text shorter than 10).",
        {f"median_{key}": median(values) for key, values in agreement.items()},
        agreement,
        ["texts of one token have no ranking and are left out"],
    )


def _counterfactual_section(
    values: dict[str, list[float]], options: DiagnoseOptions
) -> dict[str, Any]:
    keys = (
        "permutation_median_tvd",
        "permutation_max_tvd",
        "permutation_median_jsd",
        "adversarial_jsd",
    )
    adversarial = values.get("adversarial_jsd", [])
    return section(
        "counterfactual_attention",
        "Would other attention give the same prediction?",
        f"Each text's attention replaced by {options.permutations} random permutations of "
        "itself: the change of the class distribution (total variation distance, TVD) and "
        "how far the weights moved (Jensen-Shannon divergence in bits, JSD). Adversarial: "
        f"the largest JSD found for weights that move the output by TVD <= {options.epsilon}. "
        "Small TVD under permutation and large adversarial JSD mean the prediction does not "
        "depend on where the attention is.",
        {
            **{f"median_{key}": median(values.get(key, [])) for key in keys},
            "share_adversarial_jsd_above_0.5": mean([float(v > 0.5) for v in adversarial]),
        },
        {key: values.get(key, []) for key in keys},
    )


def _erasure_section(erasure: dict[str, list[float]]) -> dict[str, Any]:
    summary: dict[str, float | int | None] = {}
    for key, values in erasure.items():
        summary[
            ("flip_rate_" if key.startswith("flip") else "mean_drop_") + key.split("_", 1)[1]
        ] = mean(values)
    return section(
        "erasure",
        "Does removing the most attended tokens change the decision?",
        "The k tokens with the most attention, the k with the highest gradient × input, or "
        "k random tokens are removed (k = 1, 2, 5): the share of decisions that flip and the "
        "mean drop of the predicted class's probability. Attention that explains the "
        "prediction flips more decisions than random removal, as many as the gradient.",
        summary,
        {
            key: values
            for key, values in erasure.items()
            if key.startswith("drop") and key.endswith("k1")
        },
    )


def _uniform_section(
    own: torch.Tensor, uniform: torch.Tensor, labels: Sequence[int] | None
) -> dict[str, Any]:
    tvd = total_variation(own.numpy(), uniform.numpy()).tolist()
    summary: dict[str, float | int | None] = {"median_output_tvd": median(tvd)}
    if labels is not None:
        gold = torch.tensor(list(labels))
        accuracy = float((own.argmax(-1) == gold).double().mean())
        flat = float((uniform.argmax(-1) == gold).double().mean())
        summary.update(
            accuracy=accuracy, accuracy_uniform_attention=flat, accuracy_drop=accuracy - flat
        )
    summary["decisions_changed"] = float((own.argmax(-1) != uniform.argmax(-1)).double().mean())
    return section(
        "uniform_attention",
        "Does the model need its attention? (Wiegreffe & Pinter)",
        "The same trained model with the attention replaced by uniform weights over the "
        "valid tokens. A small accuracy drop means the task is solved without attention, and "
        "the weights say little about the decision whatever they look like.",
        summary,
        {"output_tvd": tvd},
    )


def _focus_section(
    values: dict[str, list[float]], model: Any, ids: Sequence[Sequence[int]], pad: int
) -> dict[str, Any]:
    from attnrnn.data.batching import pad_sequences
    from attnrnn.models.classifier import conicity

    conicities: list[float] = []
    with evaluating(model, no_grad=True):
        for start in range(0, len(ids), 64):
            tokens, lengths = pad_sequences(ids[start : start + 64], pad)
            device = model.embedding.weight.device
            states = tests.encoder_states(model, tokens.to(device), lengths.to(device))
            mask = torch.arange(tokens.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
            conicities += conicity(states, mask.to(device)).tolist()
    return section(
        "focus",
        "Where does the attention go?",
        "Entropy of each text's attention divided by its maximum (0: one token, 1: uniform); "
        "the attention mass on stop-words and punctuation, next to the share of such tokens "
        "(what uniform attention would give them); and the conicity of the encoder states "
        "(mean cosine to their mean; near 1: all states alike, so any weighting pools the "
        "same vector, Mohankumar et al. 2020).",
        {
            "median_entropy": median(values.get("entropy", [])),
            "mean_filler_mass": mean(values.get("filler_mass", [])),
            "mean_filler_share": mean(values.get("filler_share", [])),
            "median_conicity": median(conicities),
        },
        {
            "entropy": values.get("entropy", []),
            "filler_mass": values.get("filler_mass", []),
            "conicity": conicities,
        },
    )


def seed_variance(predictions: Sequence[Any], compare: Sequence[TrainedModel]) -> dict[str, Any]:
    """JSD between the attention of ``predictions`` (this run's) and each other run's on
    the same texts (runs that differ in the seed: Wiegreffe & Pinter's seed variance);
    texts the runs tokenize differently are left out."""
    divergences: list[float] = []
    skipped = 0
    for other in compare:
        theirs = other.predict([prediction.text for prediction in predictions])
        for mine, other_prediction in zip(predictions, theirs, strict=True):
            if mine.tokens != other_prediction.tokens:
                skipped += 1
                continue
            divergences.append(float(jensen_shannon(mine.weights, other_prediction.weights)))
    notes = (
        [f"{skipped} text(s) tokenized differently by another run were left out"] if skipped else []
    )
    return section(
        "seed_variance",
        "Is the attention stable across seeds? (Wiegreffe & Pinter)",
        f"Jensen-Shannon divergence (bits) between this run's attention and that of "
        f"{len(compare)} run(s) trained the same way with other seeds, text by text. "
        "Attention that changes a lot between equally accurate runs is one of many possible.",
        {"median_jsd": median(divergences), "runs_compared": len(compare)},
        {"jsd": divergences},
        notes,
    )


def _transfer_section(transfer: Any, own: torch.Tensor, labels: Sequence[int]) -> dict[str, Any]:
    summary = asdict(transfer)
    summary["gain_over_uniform"] = transfer.frozen_attention_accuracy - transfer.uniform_accuracy
    return section(
        "mlp_transfer",
        "Do the weights help a model that cannot attend? (Wiegreffe & Pinter)",
        "A per-token MLP whose token vectors are averaged with fixed weights and classified "
        "by a linear layer, trained on training texts with uniform weights and with this "
        "model's attention frozen; accuracy on the diagnosed texts. Attention that beats "
        "uniform weights here carries information about the label by itself.",
        summary,
    )


# --------------------------------------------------------------------------- the command

DIAGNOSED_TASKS = ("classification", "translation", "summarization", "speech")


def diagnose(
    trained: TrainedModel,
    data: str | None = None,
    options: DiagnoseOptions = DiagnoseOptions(),
    compare: Sequence[TrainedModel] = (),
    alignments: str | None = None,
    log: Log = lambda message: None,
    alignment_units: str | None = None,
) -> dict[str, Any]:
    """Diagnose ``trained`` on labelled ``data`` (default: the run's test split).

    ``compare``: runs of the same configuration with other seeds (classifiers).
    ``alignments``: reference links of ``data`` in Pharaoh format (encoder-decoders), in
    ``alignment_units`` (``words`` or ``characters``; default: the run's
    ``data.alignment_units``).
    Returns the diagnostics.json document.
    """
    task = trained.task.name
    if task not in DIAGNOSED_TASKS:
        raise ConfigError(
            f"diagnose: no diagnostics for {task} runs (supported: {', '.join(DIAGNOSED_TASKS)})"
        )
    if compare and task != "classification":
        raise ConfigError("diagnose: --compare is for classifiers")
    if (alignments or alignment_units) and task != "translation":
        raise ConfigError("diagnose: --alignments is for translation runs")
    if alignment_units not in (None, "words", "characters"):
        raise ConfigError(
            f"diagnose: alignment units are words or characters, not {alignment_units}"
        )
    location, role, examples = trained.labelled_examples(data, "diagnose")
    chosen = sample(len(examples), options.limit, options.seed)
    examples = [examples[index] for index in chosen]
    log(f"diagnose: {len(examples)} of the examples of {location}")
    with trained.lock:
        if task == "classification":
            sections = _classifier(trained, examples, role, options, compare, log)
        elif task == "speech":
            sections = _speech(trained, examples, role, options, log)
        else:
            units = str(alignment_units or getattr(trained.config.data, "alignment_units", "words"))
            references = None
            if alignments:
                references = _references(trained, examples, chosen, alignments, units)
            sections = _seq2seq(trained, examples, role, options, references, log)
    from attnrnn import __version__

    return {
        "format": FORMAT,
        "attnrnn_version": __version__,
        "run": str(trained.directory) if trained.directory else None,
        "task": task,
        "data": location,
        "examples": len(examples),
        "options": asdict(options),
        "sections": sections,
    }


def _classifier(
    trained: TrainedModel,
    examples: list[Any],
    role: str,
    options: DiagnoseOptions,
    compare: Sequence[TrainedModel],
    log: Log,
) -> list[dict[str, Any]]:
    split = trained.task.encode(trained.config, trained.assets, examples, role)
    train = None
    if options.mlp_train and split.labels is not None:
        location = trained.resolve(trained.config.data.train)
        training = trained.task.read_split(trained.config, location, "train")
        training = [training[i] for i in sample(len(training), options.mlp_train, options.seed)]
        encoded = trained.task.encode(trained.config, trained.assets, training, "train")
        train = (encoded.ids, encoded.labels)
    texts = [example.text for example in examples]
    return classifier_sections(
        trained, split.ids, split.labels, texts, options, compare, train, log
    )


def write_diagnostics(document: dict[str, Any], folder: Path) -> list[Path]:
    """Write ``folder/diagnostics.json`` and ``folder/diagnostics.html`` (self-contained:
    the summary tables and a histogram per distribution), each atomically."""
    import html

    from attnrnn.html_charts import html_page, render_sections, values_table
    from attnrnn.training.files import write_json_atomic, write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "diagnostics.json", folder / "diagnostics.html"
    write_json_atomic(json_path, document)
    facts = {key: document[key] for key in ("run", "task", "data", "examples")}
    body = (
        f"<h1>Attention diagnostics: {html.escape(str(document['run'] or document['task']))}</h1>"
        + values_table({**facts, **document["options"]})
        + "<p>What each test measures and how to read it: docs/diagnostics.md.</p>"
        + render_sections(document["sections"])
    )
    write_text_atomic(html_path, html_page("attnrnn diagnostics", body))
    return [json_path, html_path]


def _speech(
    trained: TrainedModel, examples: list[Any], role: str, options: DiagnoseOptions, log: Log
) -> list[dict[str, Any]]:
    from attnrnn.diagnostics.speech import diagnose_speech

    split = trained.task.encode(trained.config, trained.assets, examples, role)
    return diagnose_speech(trained, split)  # type: ignore[arg-type]


def _seq2seq(
    trained: TrainedModel,
    examples: list[Any],
    role: str,
    options: DiagnoseOptions,
    references: list[Any] | None,
    log: Log,
) -> list[dict[str, Any]]:
    """Translation and summarization: encode the sampled pairs with the task's own code."""
    from attnrnn.diagnostics.seq2seq import diagnose_seq2seq

    split = trained.task.encode(trained.config, trained.assets, examples, role)
    if trained.task.name == "summarization":
        sources = [document.source for document in split.documents]
        targets = [document.target for document in split.documents]
    else:
        sources, targets = split.sources, split.targets
    log(f"diagnose: {len(sources)} pairs")
    return diagnose_seq2seq(trained, sources, targets, references, seed=options.seed)


def _references(
    trained: TrainedModel, examples: list[Any], chosen: Sequence[int], path: str, units: str
) -> list[Any]:
    """The :class:`~attnrnn.diagnostics.alignment.Reference` of each sampled pair from a
    Pharaoh file with one line per pair of the diagnosed data, in ``units`` (words: spread
    over each word's tokens; characters: the character model's tokens). Pairs whose
    tokens cannot be traced to units get None."""
    from attnrnn.data.alignments import measure_links, read_links
    from attnrnn.diagnostics.alignment import Reference
    from attnrnn.errors import DataError
    from attnrnn.tasks.translation import token_units

    alignments = read_links(path)
    if len(alignments) <= max(chosen, default=-1):
        raise DataError(f"{len(alignments)} alignment lines: the data has more pairs", path)
    if units == "characters" and trained.config.tokenizer.type != "character":
        raise ConfigError("diagnose: character alignment units need a character tokenizer")
    assets = trained.assets
    references: list[Any] = []
    for index, example in zip(chosen, examples, strict=True):
        alignment = alignments[index]
        source_units = token_units(assets.source.tokenizer, example.source, units)
        target_units = token_units(assets.target.tokenizer, example.target or "", units)
        if source_units is None or target_units is None:
            references.append(None)
            continue
        sure, possible = measure_links(alignment)  # (target, source) links
        words = units == "words"
        references.append(
            Reference(
                frozenset(sure),
                frozenset(possible),
                tuple(source_units) if words else None,
                tuple(target_units) if words else None,
            )
        )
    return references
