"""The predictors of exported folders: ONNX Runtime sessions, the run's tokenizers and
vocabularies, and numpy search. No PyTorch."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import numpy as np
import yaml

from attnrnn.data.shortlists import SHORTLIST_FILE, Shortlist, read_shortlist
from attnrnn.errors import ConfigError, RunError
from attnrnn.onnx.search import Hypothesis, SearchSettings, TopK, search
from attnrnn.tasks.text import EOS, TextSide, truncate

# What onnx.json says of an export this predictor reads (written by attnrnn.onnx.export).
# Version 2: a translation step stops before the output layer (output.onnx applies it, or
# shortlist_output.onnx over a lexical shortlist); version 1 exports still load.
FORMAT = "attnrnn-onnx"
VERSION = 2
READABLE_VERSIONS = (1, 2)
R = TypeVar("R")
SEARCH_FIELDS = tuple(item.name for item in fields(SearchSettings))


def load_exported(directory: Path, threads: int | None = None) -> Any:
    from attnrnn.onnx import MANIFEST

    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise RunError(f"{directory}: no {MANIFEST}; export a run with `attnrnn export RUN "
                       "--format onnx --output DIR`")  # fmt: skip
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        config = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise RunError(f"{directory}: unreadable export ({error})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") not in READABLE_VERSIONS:
        raise RunError(
            f"{manifest_path}: not an attnrnn ONNX export of version "
            f"{' or '.join(map(str, READABLE_VERSIONS))} "
            f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})"
        )
    predictors: dict[str, Callable[..., Any]] = {
        "classification": OnnxClassifier,
        "speech": OnnxRecognizer,
        "summarization": OnnxSummarizer,
        "translation": OnnxTranslator,
    }
    predictor = predictors.get(manifest.get("task", ""))
    if predictor is None:
        raise RunError(f"{manifest_path}: no ONNX predictor for task {manifest.get('task')!r}")
    return predictor(directory, manifest, config, threads)


def session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "the ONNX runtime needs the onnxruntime package: pip install 'attnrnn[onnx]'"
        ) from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def padded(rows: Sequence[Sequence[int]], pad_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, S) int64 ids padded at the end and their lengths (B,)."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    ids = np.full((len(rows), int(lengths.max())), pad_index, dtype=np.int64)
    for number, row in enumerate(rows):
        ids[number, : len(row)] = row
    return ids, lengths


def batched(
    lengths: Sequence[int], max_rows: int, max_tokens: int, run: Callable[[list[int]], list[R]]
) -> list[R]:
    """``run`` over batches of similar length (longest first), results in input order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    results: list[Any] = [None] * len(lengths)
    start = 0
    while start < len(order):
        end = start + 1
        while (
            end < len(order)
            and end - start < max_rows
            and (end - start + 1) * lengths[order[start]] <= max_tokens
        ):
            end += 1
        indices = order[start:end]
        for index, result in zip(indices, run(indices), strict=True):
            results[index] = result
        start = end
    return results


def namespace(value: Any) -> Any:
    """A config mapping as attributes (``config.inference.max_batch_size``), as the
    PyTorch model's config dataclasses read."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: namespace(item) for key, item in value.items()})
    return value


class Exported:
    """What every predictor has: the folder, its manifest, the run's config (as
    attributes: ``config``; as a mapping: ``settings``) and the ONNX Runtime sessions.

    With ``task``, ``parse_input``, ``predict``, ``record`` and ``line`` it offers what
    the CLI's ``predict`` uses of a PyTorch model."""

    command = "predict"
    progress: Any = None

    def __init__(
        self, directory: Path, manifest: dict[str, Any], config: dict[str, Any], threads: int | None
    ) -> None:
        self.directory, self.manifest, self.settings = directory, manifest, config
        self.config = namespace(config)
        self.task = SimpleNamespace(
            name=manifest["task"], command=self.command, input_files=False, options=()
        )
        self.sessions = {
            name: session(directory / file, threads) for name, file in manifest["graphs"].items()
        }
        self.top_k: TopK | None = None  # beam search's choice of candidates (topk.onnx)
        if "topk" in self.sessions:
            graph = self.sessions["topk"]

            def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
                feeds = {"scores": scores, "k": np.array([k], dtype=np.int64)}
                values, indices = graph.run(None, feeds)
                return values, indices

            self.top_k = top_k
        inference = config.get("inference") or {}
        self.max_rows = int(inference.get("max_batch_size", 64))
        self.max_tokens = int(inference.get("batch_tokens", 8000))

    def parse_input(self, line: str, options: dict[str, Any]) -> str:
        return line.strip()

    def record(self, result: dict[str, Any]) -> dict[str, Any]:
        """A result as the JSON object the CLI prints (``--json``): results are records."""
        return result


# --------------------------------------------------------------------------- classification


class OnnxClassifier(Exported):
    """A text classifier: :meth:`predict` gives label, probabilities, tokens, attention."""

    def __init__(self, *arguments: Any) -> None:
        super().__init__(*arguments)
        self.text = TextSide.load(self.directory)
        labels = json.loads((self.directory / "labels.json").read_text(encoding="utf-8"))
        self.labels: list[str] = labels
        data = self.settings.get("data") or {}
        self.max_length = int(data.get("max_length", 400))
        self.truncate = str(data.get("truncate", "head"))

    def encode(self, text: str) -> list[int]:
        vocab = self.text.vocab
        return truncate(self.text.encode(text) or [vocab.unk_index], self.max_length, self.truncate)

    def predict(self, texts: Sequence[str], **options: Any) -> list[dict[str, Any]]:
        if options:
            raise ConfigError(f"predict takes no options, got {', '.join(options)}")
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = [self.encode(text) for text in texts]

        def run(indices: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
            tokens, lengths = padded([ids[i] for i in indices], self.text.vocab.pad_index)
            probabilities, attention = self.sessions["classifier"].run(
                None, {"tokens": tokens, "lengths": lengths}
            )
            return [
                (probabilities[row], attention[row, :, : len(ids[index])])
                for row, index in enumerate(indices)
            ]

        scored = batched([len(row) for row in ids], self.max_rows, self.max_tokens, run)
        records = []
        for text, token_ids, (row, weights) in zip(texts, ids, scored, strict=True):
            tokens = truncate(self.text.tokenizer.tokenize(text), self.max_length, self.truncate)
            if len(tokens) != len(token_ids):
                tokens = ["<unk>"] * len(token_ids)
            records.append(
                {
                    "label": self.labels[int(row.argmax())],
                    "probabilities": {
                        label: float(p) for label, p in zip(self.labels, row, strict=True)
                    },
                    "tokens": tokens
                    if len(tokens) == len(token_ids)
                    else ["<unk>"] * len(token_ids),
                    "attention": weights.tolist(),
                }
            )
        return records

    def line(self, result: dict[str, Any]) -> str:
        """The label and the probabilities as JSON, as the PyTorch classifier's."""
        fields = {"label": result["label"], "probabilities": result["probabilities"]}
        return json.dumps(fields, ensure_ascii=False)


# --------------------------------------------------------------------------- translation


@dataclass
class StepState:
    """The decoder state of every row, by name (what the step graph reads), and the
    names of the arrays that depend only on the source (those the step does not change)."""

    tensors: dict[str, np.ndarray]
    source_only: frozenset[str] = frozenset()

    def select(self, rows: np.ndarray) -> StepState:
        return self.reorder(rows, rows)

    def reorder(self, rows: np.ndarray, sources: np.ndarray | None) -> StepState:
        """See :func:`attnrnn.onnx.search.reorder`."""
        tensors = {}
        for name, value in self.tensors.items():
            chosen = sources if name in self.source_only else rows
            tensors[name] = value if chosen is None else value[chosen]
        return StepState(tensors, self.source_only)


class StepGraph:
    """The exported decoder step as a step model of :mod:`attnrnn.onnx.search`."""

    def __init__(self, graph: Any, manifest: dict[str, Any]) -> None:
        self.graph = graph
        self.changing = manifest["changing_state"]
        specials = manifest["special_tokens"]
        self.pad_index, self.bos_index, self.eos_index = (
            specials["pad"],
            specials["bos"],
            specials["eos"],
        )

    def step(self, prev_tokens: np.ndarray, state: StepState) -> tuple[Any, StepState, Any]:
        outputs = self.graph.run(None, {"previous": prev_tokens.astype(np.int64), **state.tensors})
        log_probs, attention, *changed = outputs
        return log_probs, self.advanced(state, changed), attention

    def advanced(self, state: StepState, changed: Sequence[np.ndarray]) -> StepState:
        """``state`` with the arrays a step changed."""
        tensors = dict(state.tensors)
        tensors.update(zip(self.changing, changed, strict=True))
        return StepState(tensors, state.source_only)


class FeatureStepGraph(StepGraph):
    """A translation step exported in two parts (version 2): the step up to the output
    layer, then ``output.onnx`` over the whole vocabulary, or, with ``outputs`` (a
    shortlist's rows of the output layer), ``shortlist_output.onnx`` over those only."""

    def __init__(self, graph: Any, manifest: dict[str, Any], output: Any, shortlist: Any) -> None:
        super().__init__(graph, manifest)
        self.output, self.shortlist_output = output, shortlist

    def step(
        self,
        prev_tokens: np.ndarray,
        state: StepState,
        outputs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[Any, StepState, Any]:
        feeds = {"previous": prev_tokens.astype(np.int64), **state.tensors}
        features, attention, *changed = self.graph.run(None, feeds)
        if outputs is None:
            (log_probs,) = self.output.run(None, {"features": features})
        else:
            weight, bias = outputs
            feeds = {"features": features, "weight": weight, "bias": bias}
            (log_probs,) = self.shortlist_output.run(None, feeds)
        return log_probs, self.advanced(state, changed), attention


class ShortlistedStep:
    """A step model whose outputs are the target ids ``ids`` (V',) only, as
    :class:`attnrnn.decoding.shortlist.Shortlisted`: its tokens are positions in ``ids``;
    :meth:`restore` maps finished hypotheses back to target ids."""

    bos_index: int
    eos_index: int
    pad_index: int

    def __init__(
        self, model: FeatureStepGraph, ids: np.ndarray, weight: np.ndarray, bias: np.ndarray
    ):
        self.model, self.ids = model, ids
        position = {int(token): index for index, token in enumerate(ids.tolist())}
        for name in ("bos_index", "eos_index", "pad_index"):
            special = getattr(model, name)
            if special not in position:
                raise RunError(f"the shortlist lacks the model's {name} ({special})")
            setattr(self, name, position[special])
        self.weight, self.bias = weight[ids], bias[ids]  # (V', A), (V',): once per batch

    def step(self, prev_tokens: np.ndarray, state: StepState) -> tuple[Any, StepState, Any]:
        return self.model.step(self.ids[prev_tokens], state, outputs=(self.weight, self.bias))

    def restore(self, hypotheses: list[list[Hypothesis]]) -> list[list[Hypothesis]]:
        ids = self.ids.tolist()
        return [
            [replace(h, tokens=[ids[token] for token in h.tokens]) for h in n_best]
            for n_best in hypotheses
        ]


def search_settings(base: dict[str, Any], **options: Any) -> SearchSettings:
    """The run's search section with search options (``beam``, ``n_best``, any field)."""
    changes = {key: value for key, value in options.items() if value is not None}
    if "beam" in changes:
        changes["beam_size"] = changes.pop("beam")
    unknown = [key for key in changes if key not in SEARCH_FIELDS]
    if unknown:
        raise ConfigError(f"unknown search option {unknown[0]!r}")
    settings = {key: value for key, value in base.items() if key in SEARCH_FIELDS}
    settings.update(changes)
    n_best = int(settings.get("n_best", 1))
    if n_best > int(settings.get("beam_size", 5)):
        if "beam_size" in changes:
            raise ConfigError(f"n_best ({n_best}) cannot exceed the beam ({changes['beam_size']})")
        settings["beam_size"] = n_best
    if "beam_size" in changes and "n_best" not in changes:
        settings["n_best"] = min(int(base.get("n_best", 1)), int(changes["beam_size"]))
    return SearchSettings(**settings)


class OnnxTranslator(Exported):
    """A translator: :meth:`translate` (= :meth:`predict`) with greedy or beam search."""

    command = "translate"

    def __init__(self, *arguments: Any) -> None:
        super().__init__(*arguments)
        self.source = TextSide.load(self.directory, "source_")
        self.target = TextSide.load(self.directory, "target_")
        self.fields: list[str] = self.manifest["state"]
        self.step_model: StepGraph = StepGraph(self.sessions["step"], self.manifest)
        self.output_layer: tuple[np.ndarray, np.ndarray] | None = None
        if "output" in self.sessions:  # version 2: the output layer apart
            self.step_model = FeatureStepGraph(
                self.sessions["step"],
                self.manifest,
                self.sessions["output"],
                self.sessions["shortlist_output"],
            )
        data = self.settings.get("data") or {}
        self.max_source_length = int(data.get("max_source_length", 200))
        self._shortlist: Shortlist | None = None

    def shortlist(self) -> tuple[Shortlist, np.ndarray, np.ndarray]:
        """The export's lexical shortlist and the output layer's weight and bias."""
        if not isinstance(self.step_model, FeatureStepGraph):
            raise ConfigError(
                f"{self.directory} was exported by an earlier attnrnn, without the output "
                "layer apart: export the run again to translate with --shortlist"
            )
        if self._shortlist is None:
            shortlist = read_shortlist(self.directory)
            if shortlist is None:
                raise ConfigError(
                    f"{self.directory} has no lexical shortlist ({SHORTLIST_FILE}); write one "
                    "into the run with `attnrnn shortlist RUN`, then export it again"
                )
            self._shortlist = shortlist
        if self.output_layer is None:
            files = self.manifest["output_layer"]
            try:
                self.output_layer = tuple(
                    np.load(self.directory / files[name], allow_pickle=False)
                    for name in ("weight", "bias")
                )
            except (OSError, ValueError) as error:
                raise RunError(f"{self.directory}: unreadable output layer ({error})") from None
        assert self.output_layer is not None
        return self._shortlist, *self.output_layer

    def encode_source(self, text: str) -> list[int]:
        ids = self.source.encode(text) or [self.source.vocab.unk_index]
        return ids[: self.max_source_length]

    def decode_ids(
        self, sources: Sequence[Sequence[int]], settings: SearchSettings, shortlist: bool = False
    ) -> list[list[Hypothesis]]:
        """N-best lists of token-id sources, in input order; ``shortlist``: score only the
        export's lexical shortlist for each batch (as the PyTorch translator's)."""
        lexical = self.shortlist() if shortlist else None

        def run(indices: list[int]) -> list[list[Hypothesis]]:
            batch = [sources[i] for i in indices]
            ids, lengths = padded(batch, self.step_model.pad_index)
            state = self.sessions["encoder"].run(None, {"source": ids, "lengths": lengths})
            source_only = frozenset(self.fields) - frozenset(self.step_model.changing)
            first = StepState(dict(zip(self.fields, state, strict=True)), source_only)
            if lexical is None:
                return search(self.step_model, first, lengths, settings, self.top_k)
            table, weight, bias = lexical
            candidates = np.array(table.candidates(batch), dtype=np.int64)
            step = ShortlistedStep(
                cast(FeatureStepGraph, self.step_model), candidates, weight, bias
            )
            return step.restore(search(step, first, lengths, settings, self.top_k))

        rows = max(1, self.max_rows // max(settings.beam_size, 1))
        return batched([len(s) for s in sources], rows, self.max_tokens, run)

    def translate(self, texts: str | Sequence[str], **options: Any) -> list[dict[str, Any]]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        shortlist = bool(options.pop("shortlist", False))
        settings = search_settings(self.settings.get("search") or {}, **options)
        ids = [self.encode_source(text) for text in texts]
        return [
            self.translation(text, source_ids, n_best)
            for text, source_ids, n_best in zip(
                texts, ids, self.decode_ids(ids, settings, shortlist), strict=True
            )
        ]

    predict = translate

    def line(self, result: dict[str, Any]) -> str:
        """The translation, then its alternatives, tab-separated."""
        return "\t".join([result["translation"], *result["alternatives"]])

    def translation(
        self, text: str, source_ids: list[int], n_best: list[Hypothesis]
    ) -> dict[str, Any]:
        """What :meth:`attnrnn.tasks.translation.Translator.record` gives."""
        source_tokens = self.source.tokenizer.tokenize(text)[: len(source_ids)]
        if len(source_tokens) != len(source_ids):
            source_tokens = self.source.vocab.decode(source_ids)
        best, *alternatives = [self.alternative(h, len(source_ids)) for h in n_best]
        return {
            "translation": best["text"],
            "score": best["score"],
            "alternatives": [alternative["text"] for alternative in alternatives],
            "source_tokens": source_tokens,
            "target_tokens": best["target_tokens"],
            "attention": best["attention"],
            "alternatives_detail": alternatives,
        }

    def alternative(self, hypothesis: Hypothesis, source_length: int) -> dict[str, Any]:
        target_tokens = self.target.vocab.decode(hypothesis.tokens)
        if len(hypothesis.attention) > len(hypothesis.tokens):
            target_tokens = [*target_tokens, EOS]
        attention = hypothesis.attention[: len(target_tokens), :source_length]
        return {
            "text": self.target.decode(hypothesis.tokens),
            "score": hypothesis.score,
            "target_tokens": target_tokens,
            "attention": attention.tolist(),
        }


# --------------------------------------------------------------------------- summarization


class CopyStepGraph(StepGraph):
    """The pointer-generator's exported step: the rows' extended source ids travel in the
    state; ``extra`` (X,) says how many copy ids the batch's sources add (its length)."""

    def __init__(self, graph: Any, manifest: dict[str, Any], extra: np.ndarray) -> None:
        super().__init__(graph, manifest)
        self.extra = extra
        self.generation_probability: np.ndarray | None = None

    def step(self, prev_tokens: np.ndarray, state: StepState) -> tuple[Any, StepState, Any]:
        feeds = {"previous": prev_tokens.astype(np.int64), "extra": self.extra, **state.tensors}
        log_probs, attention, p_gen, *changed = self.graph.run(None, feeds)
        self.generation_probability = p_gen
        tensors = dict(state.tensors)
        tensors.update(zip(self.changing, changed, strict=True))
        return log_probs, StepState(tensors, state.source_only), attention


class OnnxSummarizer(Exported):
    """A pointer-generator summarizer: :meth:`summarize` (= :meth:`predict`), with each
    output token's copy probability and attention."""

    command = "summarize"

    def __init__(self, *arguments: Any) -> None:
        super().__init__(*arguments)
        self.text = TextSide.load(self.directory)
        self.fields: list[str] = self.manifest["state"]
        data = self.settings.get("data") or {}
        self.max_source_length = int(data.get("max_source_length", 400))
        self.max_target_length = int(data.get("max_target_length", 100))
        self.source_field = str(data.get("source_field", "dialogue"))
        self.copy = bool(self.manifest["copy"])
        self.vocab_size = int(self.manifest["vocab_size"])
        self.unk_index = int(self.manifest["special_tokens"]["unk"])

    def parse_input(self, line: str, options: dict[str, Any]) -> str:
        """A line that starts with ``{`` is a JSON object (its ``field``); else the text."""
        from attnrnn.data.documents import document_line

        return document_line(line, options.get("field") or self.source_field)

    def _ids(self, ids: Sequence[int]) -> list[int]:
        """Extended ids as the model reads them: without copying, unknown words are <unk>."""
        return (
            list(ids) if self.copy else [self.unk_index if i >= self.vocab_size else i for i in ids]
        )

    def _start(self, documents: Sequence[Any]) -> tuple[CopyStepGraph, StepState, np.ndarray]:
        pad = int(self.manifest["special_tokens"]["pad"])
        source, lengths = padded([self._ids(d.source) for d in documents], pad)
        state = self.sessions["encoder"].run(None, {"source": source, "lengths": lengths})
        extra_count = max((len(d.unknown) for d in documents), default=0) if self.copy else 0
        step = CopyStepGraph(
            self.sessions["step"], self.manifest, np.zeros(extra_count, np.float32)
        )
        tensors = dict(zip(self.fields, state, strict=True))
        tensors["source_ids"] = source
        source_only = frozenset(tensors) - frozenset(step.changing)
        return step, StepState(tensors, source_only), lengths

    def copy_probabilities(self, document: Any, output: list[int]) -> list[float]:
        """1 - p_gen at every output step (T + 1,), stepping through ``output``."""
        step, state, _ = self._start([document])
        values = []
        for token in [step.bos_index, *output]:
            _, state, _ = step.step(np.array([token]), state)
            assert step.generation_probability is not None
            values.append(float(1.0 - step.generation_probability[0]))
        return values

    def summarize(self, texts: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        from attnrnn.data.casing import readable_summary
        from attnrnn.data.documents import Document, decode_ids, document_text, encode_documents

        name = options.pop("field", None) or self.source_field
        settings = search_settings(self.settings.get("search") or {}, **options)
        texts = [texts] if isinstance(texts, str) else list(texts)
        sources = [text if isinstance(text, str) else document_text(text, name) for text in texts]
        documents = [Document(text, (), f"input:{n}") for n, text in enumerate(sources, 1)]
        tokenizer, vocab = self.text.tokenizer, self.text.vocab
        split = encode_documents(
            documents, tokenizer, vocab, self.max_source_length, self.max_target_length
        )

        def run(indices: list[int]) -> list[list[Hypothesis]]:
            step, state, lengths = self._start([split.documents[i] for i in indices])
            return search(step, state, lengths, settings, self.top_k)

        rows = max(1, self.max_rows // max(settings.beam_size, 1))
        lengths = [len(document.source) for document in split.documents]
        hypotheses = batched(lengths, rows, self.max_tokens, run)
        records = []
        for text, document, n_best in zip(sources, split.documents, hypotheses, strict=True):
            best = n_best[0]
            tokens = decode_ids(best.tokens, document, vocab)
            copy = self.copy_probabilities(document, best.tokens)
            record: dict[str, Any] = {
                "summary": readable_summary(tokens, document.casing),
                "score": best.score,
                "tokens": tokens,
                "copy_probability": copy[: len(tokens)],
                "source_tokens": tokenizer.tokenize(text)[: len(document.source)],
                "attention": best.attention[: len(tokens)].tolist(),
            }
            if len(n_best) > 1:
                details = []
                for hypothesis in n_best[1:]:
                    words = decode_ids(hypothesis.tokens, document, vocab)
                    details.append(
                        {
                            "text": readable_summary(words, document.casing),
                            "score": hypothesis.score,
                            "target_tokens": words,
                            "attention": hypothesis.attention[: len(words)].tolist(),
                        }
                    )
                record["alternatives"] = [item["text"] for item in details]
                record["alternatives_detail"] = details
            records.append(record)
        return records

    predict = summarize

    def line(self, result: dict[str, Any]) -> str:
        return "\t".join([result["summary"], *result.get("alternatives", [])])


# --------------------------------------------------------------------------- speech


class OnnxRecognizer(Exported):
    """A speech recognizer: :meth:`transcribe` (= :meth:`predict`) audio files or sample
    arrays, with joint CTC / attention beam search."""

    command = "transcribe"

    def __init__(self, *arguments: Any) -> None:
        from attnrnn.data.audio_files import FeatureConfig

        super().__init__(*arguments)
        self.task.input_files = True
        if self.settings.get("lm"):
            raise ConfigError(
                f"{self.directory}: the run decodes with a language model (lm: "
                f"{self.settings['lm']}), which the ONNX predictor does not run; export a "
                "run without lm, or transcribe with the PyTorch run"
            )
        self.target = TextSide.load(self.directory)
        self.features = FeatureConfig(**(self.settings.get("features") or {}))
        statistics = json.loads((self.directory / "normalizer.json").read_text())
        self.mean = np.asarray(statistics["mean"], dtype=np.float32)
        self.std = np.asarray(statistics["std"], dtype=np.float32)
        self.fields: list[str] = self.manifest["state"]
        self.step_model = StepGraph(self.sessions["step"], self.manifest)
        self.ctc_weight = float(self.settings.get("ctc_weight", 0.3))

    def feature_array(self, item: Any, number: int, sample_rate: int | None) -> np.ndarray:
        """Normalized features (frames, F) of an audio file or a sample array."""
        from attnrnn.data.audio_files import array_samples, log_mel, read_samples

        config = self.features
        if isinstance(item, str | Path):
            samples = read_samples(item, config.sample_rate, config.max_seconds)
        else:
            samples = array_samples(item, sample_rate, config, f"<array {number}>")
        return (log_mel(samples, config) - self.mean) / self.std

    def transcribe(
        self, inputs: Any, sample_rate: int | None = None, **options: Any
    ) -> list[dict[str, Any]]:
        from attnrnn.onnx.ctc import JointCTCAttention

        items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
        weight = options.pop("ctc_weight", None)
        weight = self.ctc_weight if weight is None else float(weight)
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"ctc_weight must be in [0, 1], got {weight}")
        settings = search_settings(self.settings.get("search") or {}, **options)
        features = [self.feature_array(item, n, sample_rate) for n, item in enumerate(items)]

        def run(indices: list[int]) -> list[list[Hypothesis]]:
            chosen = [features[i] for i in indices]
            lengths = np.array([len(f) for f in chosen], dtype=np.int64)
            batch = np.zeros((len(chosen), int(lengths.max()), chosen[0].shape[1]), np.float32)
            for row, feature in enumerate(chosen):
                batch[row, : len(feature)] = feature
            ctc_log_probs, ctc_lengths, *state = self.sessions["encoder"].run(
                None, {"features": batch, "lengths": lengths}
            )
            source_only = frozenset(self.fields) - frozenset(self.step_model.changing)
            first = StepState(dict(zip(self.fields, state, strict=True)), source_only)
            model: Any = self.step_model
            if weight > 0.0:
                model = JointCTCAttention(
                    self.step_model, ctc_log_probs, ctc_lengths, weight, self.step_model.pad_index
                )
                first = model.init_state(first)
            return search(model, first, ctc_lengths.astype(np.int64), settings, self.top_k)

        rows = max(1, self.max_rows // max(settings.beam_size, 1))
        hypotheses = batched([len(f) for f in features], rows, self.max_tokens, run)
        records = []
        for number, (item, n_best) in enumerate(zip(items, hypotheses, strict=True)):
            best = n_best[0]
            tokens = self.target.vocab.decode(best.tokens)
            if len(best.attention) > len(best.tokens):
                tokens = [*tokens, EOS]
            records.append(
                {
                    "audio": str(item) if isinstance(item, str | Path) else f"<array {number}>",
                    "text": self.target.decode(best.tokens),
                    "score": best.score,
                    "tokens": tokens,
                    "attention": best.attention[: len(tokens)].tolist(),
                    "alternatives": [self.target.decode(h.tokens) for h in n_best[1:]],
                }
            )
        return records

    predict = transcribe

    def line(self, result: dict[str, Any]) -> str:
        return "\t".join([result["audio"], result["text"], *result["alternatives"]])
