"""Diagnostics of an attention encoder-decoder (:class:`Seq2Seq` translation models and the
summarization :class:`PointerGenerator`), one source sentence at a time.

Does the attention align, and does the output depend on it?

- Alignment: :func:`forced_attention` on a reference pair, read as links
  (:func:`alignment_scores`: AER, precision and recall of argmax and threshold links against
  sure / possible reference links); :func:`word_attention` and :func:`word_index_of_pieces`
  move subword attention to words, the units of a statistical aligner.
- Counterfactual attention (:func:`counterfactual_steps`): at each decoding step the step's
  weights are replaced (randomly permuted, uniform, or all zero, i.e. a zero context) while
  everything else of the step stays as it was; does the next token change?
- Erasure (:func:`erase_most_attended`): remove the most-attended source token or word and
  decode again.
- Copying (:func:`copy_attention_hits`): does the pointer-generator attend most to the
  source word it copies?

:func:`diagnose_seq2seq` runs them all on a trained :class:`Translator` or
:class:`Summarizer` and returns the report's sections. Every function takes token ids of one
source (S,) without padding; for the pointer-generator these are the extended ids of
:mod:`attnrnn.data.documents` (``EncodedDocument.source``), and targets and outputs may hold
extended ids too. Models run in eval mode without gradients (their mode is restored after).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from unittest import mock

import torch

from attnrnn.decoding.greedy import greedy_search
from attnrnn.decoding.protocol import SearchConfig
from attnrnn.diagnostics.measures import (
    Link,
    alignment_error_rate,
    argmax_links,
    entropy,
    jensen_shannon,
    link_precision_recall,
    threshold_links,
    total_variation,
)
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.models.seq2seq import Seq2Seq
from attnrnn.nn.attention import Attention
from attnrnn.tasks.base import TrainedModel

CounterfactualKind = Literal["permuted", "uniform", "zero"]
COUNTERFACTUAL_KINDS: tuple[CounterfactualKind, ...] = ("permuted", "uniform", "zero")
WORD_START = "\u2581"  # SentencePiece's mark of a piece that starts a word

# --------------------------------------------------------------------------- running the model


@contextlib.contextmanager
def _inference(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode without gradients; restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model: Seq2Seq) -> torch.device:
    return model.target_embedding.weight.device


def _extended_size(model: Seq2Seq, source_ids: Sequence[int]) -> int:
    """V + X of a pointer-generator's extended vocabulary for this source (0 otherwise)."""
    if isinstance(model, PointerGenerator):
        return max(model.vocab_size, max(source_ids) + 1)
    return 0


def _scored_ids(model: Seq2Seq, ids: Sequence[int]) -> list[int]:
    """``ids`` as the model can score them: a pointer-generator without copying reads
    extended ids as ``<unk>`` (as summarization's batching does)."""
    if isinstance(model, PointerGenerator) and not model.copy:
        return [model.unk_index if i >= model.vocab_size else i for i in ids]
    return list(ids)


def _initial_state(model: Seq2Seq, source_ids: Sequence[int], extended_size: int) -> Any:
    """The decoder state before the first step for one source (S,)."""
    if not source_ids:
        raise ValueError("the source has no tokens")
    device = _device(model)
    source = torch.tensor([list(source_ids)], device=device)  # (1, S)
    lengths = torch.tensor([len(source_ids)], device=device)  # (1,)
    if isinstance(model, PointerGenerator):
        return model.init_state(model.encode_with_copy(source, lengths, extended_size))
    return model.init_state(model.encode(source, lengths))


@dataclass
class ForcedRun:
    """A teacher-forced, step-by-step pass of the decoder over one target (T tokens).

    inputs: (T+1,) the token fed at each step (BOS y_1 ... y_T).
    outputs: (T+1,) the token scored at each step (y_1 ... y_T EOS).
    states: the T+1 decoder states, each the one before its step.
    log_probs: (T+1, V) next-token log-probabilities (V + X for a pointer-generator).
    attention: (T+1, S) the attention of each step.
    """

    inputs: torch.Tensor
    outputs: torch.Tensor
    states: list[Any]
    log_probs: torch.Tensor
    attention: torch.Tensor

    @property
    def log_prob(self) -> float:
        """log P(y_1 ... y_T EOS | source)."""
        return float(self.log_probs.gather(1, self.outputs.unsqueeze(1)).sum())


def forced_run(
    model: Seq2Seq,
    source_ids: Sequence[int],
    target_ids: Sequence[int],
    extended_size: int | None = None,
) -> ForcedRun:
    """Teacher-force ``target_ids`` (T,) through ``model`` one step at a time (the steps
    search takes), keeping every step's state. ``extended_size``: a pointer-generator's
    V + X (default: what the source needs; pass the original's for a shortened source)."""
    extended = extended_size or _extended_size(model, source_ids)
    target = _scored_ids(model, target_ids)
    device = _device(model)
    inputs = torch.tensor([model.bos_index, *target], device=device)  # (T+1,)
    outputs = torch.tensor([*target, model.eos_index], device=device)  # (T+1,)
    with _inference(model):
        state = _initial_state(model, source_ids, extended)
        states, all_log_probs, weights = [], [], []
        for token in inputs:
            states.append(state)
            log_probs, state, attention = model.step(token.view(1), state)
            all_log_probs.append(log_probs[0])
            weights.append(attention[0])
    return ForcedRun(inputs, outputs, states, torch.stack(all_log_probs), torch.stack(weights))


def forced_attention(
    model: Seq2Seq, source_ids: Sequence[int], target_ids: Sequence[int]
) -> torch.Tensor:
    """The teacher-forced attention (T+1, S), on the CPU, of one pair: rows are the steps
    that predict y_1 ... y_T and then EOS, columns the source tokens."""
    return forced_run(model, source_ids, target_ids).attention.float().cpu()


def greedy_output(
    model: Seq2Seq,
    source_ids: Sequence[int],
    search: SearchConfig,
    extended_size: int | None = None,
) -> list[int]:
    """The greedy output ids of one source (without EOS), under ``search``'s length limits
    and constraints (its beam size is ignored)."""
    extended = extended_size or _extended_size(model, source_ids)
    config = dataclasses.replace(search, beam_size=1, n_best=1)
    with _inference(model):
        state = _initial_state(model, source_ids, extended)
        lengths = torch.tensor([len(source_ids)], device=_device(model))  # (1,)
        return greedy_search(model, state, lengths, config)[0][0].tokens


# --------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Reference:
    """Reference links of one pair, ``(target_index, source_index)``.

    In token units of the model, or in words when ``source_words`` and ``target_words``
    (the word index of every source / target token, see :func:`word_index_of_pieces`) are
    given: the attention is then moved to words by :func:`word_attention`. ``possible``
    may hold only the ambiguous links; P is taken as ``possible ∪ sure``.

    The date task's character links are token links of its character model:
    ``Reference(links.sure, links.possible)`` for ``links = date_links(pair)``. A word
    aligner's Pharaoh output is read by :meth:`from_pharaoh`.
    """

    sure: frozenset[Link]
    possible: frozenset[Link] = frozenset()
    source_words: tuple[int, ...] | None = None
    target_words: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.source_words is None) != (self.target_words is None):
            raise ValueError("give both word maps (source_words and target_words) or neither")

    @classmethod
    def from_pharaoh(
        cls,
        text: str,
        source_words: Sequence[int] | None = None,
        target_words: Sequence[int] | None = None,
    ) -> Reference:
        """The links of one line in Pharaoh format: ``i-j`` a sure and ``i?j`` a possible
        link of source unit i to target unit j (0-based, source first, as aligners such as
        eflomal and fast_align write them), separated by spaces."""
        links: dict[str, set[Link]] = {"-": set(), "?": set()}
        for item in text.split():
            separator = "?" if "?" in item else "-"
            source, _, target = item.partition(separator)
            if not source.isdigit() or not target.isdigit():
                raise ValueError(f"not a Pharaoh link (i-j or i?j): {item!r}")
            links[separator].add((int(target), int(source)))
        return cls(
            frozenset(links["-"]),
            frozenset(links["?"]),
            None if source_words is None else tuple(source_words),
            None if target_words is None else tuple(target_words),
        )


@dataclass(frozen=True)
class _PredictedLinks:
    """Links read off one attention matrix, and the reference they are scored against."""

    argmax: frozenset[Link]
    threshold: frozenset[Link]
    sure: frozenset[Link]
    possible: frozenset[Link]  # P = possible ∪ sure


def _predicted_links(
    attention: Any,
    sure: Sequence[Link] | frozenset[Link],
    possible: Sequence[Link] | frozenset[Link],
    threshold: float,
    all_rows: bool,
) -> _PredictedLinks:
    sure_set = frozenset(sure)
    possible_set = sure_set | frozenset(possible)
    argmax, above = argmax_links(attention), threshold_links(attention, threshold)
    if not all_rows:
        rows = {target for target, _ in possible_set}
        argmax = {link for link in argmax if link[0] in rows}
        above = {link for link in above if link[0] in rows}
    return _PredictedLinks(frozenset(argmax), frozenset(above), sure_set, possible_set)


_SCORE_NAMES = tuple(
    f"{measure}_{links}"
    for links in ("argmax", "threshold")
    for measure in ("aer", "precision", "recall")
)


def _scores(links: _PredictedLinks) -> dict[str, float]:
    scores = {}
    for name, predicted in (("argmax", links.argmax), ("threshold", links.threshold)):
        scores[f"aer_{name}"] = alignment_error_rate(predicted, links.sure, links.possible)
        precision = link_precision_recall(predicted, links.possible).precision
        scores[f"precision_{name}"] = precision
        scores[f"recall_{name}"] = link_precision_recall(predicted, links.sure).recall
    return scores


def alignment_scores(
    attention: Any,
    sure: Sequence[Link] | frozenset[Link],
    possible: Sequence[Link] | frozenset[Link] = (),
    threshold: float = 0.5,
    all_rows: bool = False,
) -> dict[str, float]:
    """Alignment quality of attention (T, S) against reference links (target, source).

    Links are read off the attention two ways: the argmax of every row, and every weight
    of at least ``threshold``. As is standard for AER, only target rows with at least one
    reference link (sure or possible) get links: a row the reference leaves unaligned (the
    "-" of a date, a function word) is not counted against precision; ``all_rows=True``
    links every row. Returns ``aer_``, ``precision_`` (against sure ∪ possible) and
    ``recall_`` (against sure) for ``argmax`` and ``threshold`` (Och & Ney; see
    :mod:`attnrnn.diagnostics.measures` for empty sets).
    """
    return _scores(_predicted_links(attention, sure, possible, threshold, all_rows))


def word_index_of_pieces(pieces: Sequence[str], word_start: str | None = WORD_START) -> list[int]:
    """The word index (0-based) of every token.

    SentencePiece (``word_start="▁"``): a piece starting with "▁" starts a new word, any
    other continues the word before it (the first piece always starts word 0); the words
    are those of the whitespace-split text. ``word_start=None``: every token is a word (word
    tokenizers).
    """
    if word_start is None:
        return list(range(len(pieces)))
    words, index = [], -1
    for position, piece in enumerate(pieces):
        if position == 0 or piece.startswith(word_start):
            index += 1
        words.append(index)
    return words


def _word_map(name: str, words: Sequence[int], size: int) -> torch.Tensor:
    """A checked word map (size,): every word 0 ... W-1 has at least one token."""
    if len(words) != size:
        raise ValueError(f"{name} has {len(words)} entries for {size} tokens")
    if size and sorted(set(words)) != list(range(max(words) + 1)):
        raise ValueError(f"{name} must number the words 0, 1, ... without gaps")
    return torch.tensor(list(words), dtype=torch.long)


def word_attention(
    attention: Any, source_word_of_token: Sequence[int], target_word_of_token: Sequence[int]
) -> torch.Tensor:
    """Token attention (T, S) as word attention (T_words, S_words), float64.

    A source word gets the sum of its pieces' weights, a target word the mean of its
    pieces' rows; rows are renormalised to sum to 1. An attention with one row more than
    ``target_word_of_token`` has its last row (the EOS step) dropped.
    """
    matrix = torch.as_tensor(attention).detach().to("cpu", torch.float64)
    T = len(target_word_of_token)
    if matrix.dim() == 2 and matrix.size(0) == T + 1:
        matrix = matrix[:T]  # the EOS row has no target word
    if matrix.dim() != 2 or matrix.size(0) != T:
        raise ValueError(f"need attention (T, S) with T = {T}, got {tuple(matrix.shape)}")
    source = _word_map("source_word_of_token", source_word_of_token, matrix.size(1))
    target = _word_map("target_word_of_token", target_word_of_token, T)
    source_count = int(source.max()) + 1 if source.numel() else 0
    target_count = int(target.max()) + 1 if target.numel() else 0
    by_source = matrix.new_zeros(T, source_count).index_add_(1, source, matrix)  # (T, Sw)
    summed = by_source.new_zeros(target_count, source_count).index_add_(0, target, by_source)
    counts = torch.bincount(target, minlength=target_count).clamp_min(1)  # (Tw,)
    mean = summed / counts.unsqueeze(1)  # (Tw, Sw)
    return mean / mean.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


# --------------------------------------------------------------------------- counterfactual steps


@contextlib.contextmanager
def attention_replaced(model: Seq2Seq, weights: torch.Tensor) -> Iterator[None]:
    """While inside, each decoder step of ``model`` over N rows attends with ``weights``
    (N, S) instead of its own, so its context is ``weights @ memory``; everything else
    of the step (the RNN, the output layer, copying) runs as usual.

    This wraps the forward of ``model.decoder.attention`` (restored on exit); attention
    whose context is not ``weights @ values`` (multi-head) raises ``ValueError``.
    """
    attention = model.decoder.attention
    if type(attention).forward is not Attention.forward:
        name = type(attention).__name__
        raise ValueError(f"{name}'s context is not weights @ values: its weights cannot be set")

    def forward(
        query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if query.size(1) != 1 or query.size(0) != weights.size(0):
            raise ValueError(f"weights {tuple(weights.shape)} for a query {tuple(query.shape)}")
        step = weights.to(device=values.device, dtype=values.dtype).unsqueeze(1)  # (N, 1, S)
        return torch.bmm(step, values), step  # (N, 1, M), (N, 1, S)

    with mock.patch.object(attention, "forward", forward):
        yield


def _stacked(states: Sequence[Any]) -> Any:
    """One state of N rows from N one-row states: dataclasses of tensors whose first
    dimension is the row, as the step protocol's states are (a tensor that all share,
    such as the memory, is expanded, not copied)."""
    first = states[0]
    values = {}
    for item in dataclasses.fields(first):
        parts = [getattr(state, item.name) for state in states]
        head = parts[0]
        if isinstance(head, torch.Tensor):
            shared = all(part is head for part in parts)
            values[item.name] = (
                head.expand(len(parts), *head.shape[1:]) if shared else torch.cat(parts, dim=0)
            )
        elif dataclasses.is_dataclass(head):
            values[item.name] = _stacked(parts)
    return dataclasses.replace(first, **values)


def replaced_step_log_probs(model: Seq2Seq, run: ForcedRun, weights: torch.Tensor) -> torch.Tensor:
    """Next-token log-probabilities (T+1, V) of every step of ``run`` when step t attends
    with ``weights[t]`` (weights: (T+1, S)). Each step starts from the original run's state
    before it, so a replacement changes that step only."""
    with _inference(model), attention_replaced(model, weights):
        log_probs, _, _ = model.step(run.inputs, _stacked(run.states))
    return log_probs  # (T+1, V)


def counterfactual_weights(
    attention: torch.Tensor, kind: CounterfactualKind, generator: torch.Generator
) -> torch.Tensor:
    """Replacement weights (N, S) for attention rows (N, S) over S valid positions:
    ``permuted`` shuffles each row (``generator``, a CPU generator, draws the orders),
    ``uniform`` gives every position 1/S, ``zero`` gives no weight at all (a zero context)."""
    N, S = attention.shape
    if kind == "permuted":
        order = torch.rand(N, S, generator=generator).argsort(dim=-1)  # (N, S)
        return attention.gather(1, order.to(attention.device))
    if kind == "uniform":
        return torch.full_like(attention, 1.0 / S)
    if kind == "zero":
        return torch.zeros_like(attention)
    raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(COUNTERFACTUAL_KINDS)}")


@dataclass
class StepEffects:
    """What replacing one step's attention did, per decoding step (T+1, the EOS step too).

    flipped: the most probable next token changed (raw argmax, before any search constraint).
    output_tvd: total variation distance between the next-token distributions.
    attention_jsd: Jensen-Shannon divergence (bits) of the replaced from the original
        weights; None for ``zero`` weights, which are no distribution.
    """

    flipped: list[bool]
    output_tvd: list[float]
    attention_jsd: list[float] | None

    @property
    def flip_rate(self) -> float:
        return sum(self.flipped) / len(self.flipped)


def _step_effects(
    original: torch.Tensor,
    replaced: torch.Tensor,
    weights: torch.Tensor,
    replaced_weights: torch.Tensor | None,
) -> StepEffects:
    """Compare next-token log-probabilities (N, V) and attention (N, S) of N steps before
    and after their weights were replaced (``replaced_weights`` None: zero weights).

    The distributions are renormalised: a pointer-generator's copy distribution is its
    attention, so with zero weights what is left is p_gen times the vocabulary distribution.
    """
    flipped = original.argmax(dim=-1) != replaced.argmax(dim=-1)  # (N,)
    tvd = total_variation(original.double().softmax(-1), replaced.double().softmax(-1))  # (N,)
    jsd = None if replaced_weights is None else jensen_shannon(weights, replaced_weights).tolist()
    return StepEffects(flipped.tolist(), tvd.tolist(), jsd)


def counterfactual_steps(
    model: Seq2Seq,
    source_ids: Sequence[int],
    target_ids: Sequence[int],
    generator: torch.Generator,
    kinds: Sequence[CounterfactualKind] = COUNTERFACTUAL_KINDS,
) -> dict[str, StepEffects]:
    """Teacher-force ``target_ids`` (a reference, or the model's own greedy output) and
    replace the attention of one step at a time by each of ``kinds``
    (:func:`counterfactual_weights`); the effects of every kind, per step."""
    run = forced_run(model, source_ids, target_ids)
    effects: dict[str, StepEffects] = {}
    for kind in kinds:
        weights = counterfactual_weights(run.attention, kind, generator)  # (T+1, S)
        replaced = replaced_step_log_probs(model, run, weights)
        kept = None if kind == "zero" else weights
        effects[kind] = _step_effects(run.log_probs, replaced, run.attention, kept)
    return effects


# --------------------------------------------------------------------------- erasure and copying


@dataclass
class SourceErasure:
    """The effect of removing the most-attended source token or word.

    removed: its source positions. output, erased_output: greedy outputs before and after.
    log_prob_drop: log P(output | source) - log P(output | source without it), both with
        EOS (positive: the original output became less likely).
    """

    removed: list[int]
    output: list[int]
    erased_output: list[int]
    log_prob_drop: float

    @property
    def changed(self) -> bool:
        return self.output != self.erased_output


def _erasure(
    model: Seq2Seq,
    source_ids: Sequence[int],
    run: ForcedRun,
    search: SearchConfig,
    source_words: Sequence[int] | None,
) -> SourceErasure:
    """:func:`erase_most_attended` given the forced run of the greedy output."""
    S = len(source_ids)
    units = _word_map("source_words", source_words or list(range(S)), S)  # (S,)
    received = run.attention.sum(dim=0).cpu().double()  # (S,) over all output steps
    by_unit = received.new_zeros(int(units.max()) + 1).index_add_(0, units, received)
    top = int(by_unit.argmax())  # the first of equal maxima
    removed = (units == top).nonzero().squeeze(1).tolist()
    if len(removed) == S:
        raise ValueError("the source has a single word: erasing it leaves nothing")
    kept = [token for position, token in enumerate(source_ids) if position not in removed]
    extended = _extended_size(model, source_ids)
    output = run.outputs[:-1].tolist()
    erased_output = greedy_output(model, kept, search, extended)
    erased = forced_run(model, kept, output, extended)
    return SourceErasure(removed, output, erased_output, run.log_prob - erased.log_prob)


def erase_most_attended(
    model: Seq2Seq,
    source_ids: Sequence[int],
    search: SearchConfig,
    source_words: Sequence[int] | None = None,
) -> SourceErasure:
    """Decode one source greedily, remove the source token (or, given ``source_words``,
    the word index of every token, the word) that received the most attention summed over
    all output steps, and decode again. A source of one token or word raises ``ValueError``."""
    output = greedy_output(model, source_ids, search)
    run = forced_run(model, source_ids, output)
    return _erasure(model, source_ids, run, search, source_words)


@dataclass
class CopyHits:
    """Copied output tokens and whether the most-attended source position holds them.

    copied: positions in the output of the tokens produced mostly by copying (p_gen below
        the threshold) that occur in the source. hits: per copied token, the most-attended
        source position holds that token.
    """

    copied: list[int]
    hits: list[bool]


def copy_attention_hits(
    model: PointerGenerator,
    source_ids: Sequence[int],
    output_ids: Sequence[int],
    threshold: float = 0.5,
) -> CopyHits:
    """For every output token (extended ids, without EOS) that the pointer-generator
    copied (generation probability p_gen < ``threshold`` and the token is in the source),
    is the source position it attends to most an occurrence of that token? (Its copy
    probability is ``(1 - p_gen)`` times the attention on all occurrences.)"""
    device = _device(model)
    with _inference(model):
        result = model.copy_forward(
            torch.tensor([list(source_ids)], device=device),  # (1, S)
            torch.tensor([len(source_ids)], device=device),
            torch.tensor([[model.bos_index, *output_ids]], device=device),  # (1, T+1)
            torch.tensor([[*output_ids, model.eos_index]], device=device),
            _extended_size(model, source_ids),
        )
    T = len(output_ids)
    generation = result.generation_probability[0, :T].tolist()  # (T,) EOS step dropped
    most_attended = result.attention[0, :T].argmax(dim=-1).tolist()  # (T,)
    in_source = set(source_ids)
    copied, hits = [], []
    for position, token in enumerate(output_ids):
        if generation[position] < threshold and token in in_source:
            copied.append(position)
            hits.append(source_ids[most_attended[position]] == token)
    return CopyHits(copied, hits)


# --------------------------------------------------------------------------- the report


def _number(value: float | None) -> float | None:
    """A JSON number: rounded to 4 decimals, None for NaN, infinity or nothing."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)


def _numbers(values: Sequence[float]) -> list[float]:
    return [round(float(value), 4) for value in values if math.isfinite(value)]


def _median(values: Sequence[float]) -> float | None:
    return _number(statistics.median(values)) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return _number(statistics.fmean(values)) if values else None


def _share(count: int, total: int) -> float | None:
    return _number(count / total) if total else None


def _section(
    name: str,
    title: str,
    explanation: str,
    summary: dict[str, float | int | None],
    distributions: dict[str, list[float]],
    notes: list[str],
) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "explanation": explanation,
        "summary": summary,
        "distributions": distributions,
        "notes": notes,
    }


def _offset(links: frozenset[Link], targets: int, sources: int) -> set[Link]:
    return {(target + targets, source + sources) for target, source in links}


def _pooled(
    pairs: Sequence[_PredictedLinks], shapes: Sequence[tuple[int, int]]
) -> dict[str, float]:
    """Corpus-level scores: the links of all pairs in one block-diagonal alignment."""
    pooled: dict[str, set[Link]] = {"argmax": set(), "threshold": set(), "sure": set(), "P": set()}
    targets = sources = 0
    for links, (T, S) in zip(pairs, shapes, strict=True):
        for key, value in (
            ("argmax", links.argmax),
            ("threshold", links.threshold),
            ("sure", links.sure),
            ("P", links.possible),
        ):
            pooled[key] |= _offset(value, targets, sources)
        targets, sources = targets + T, sources + S
    frozen = {key: frozenset(value) for key, value in pooled.items()}
    return _scores(
        _PredictedLinks(frozen["argmax"], frozen["threshold"], frozen["sure"], frozen["P"])
    )


def _alignment_section(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    references: Sequence[Reference | None],
    threshold: float,
) -> dict[str, Any]:
    pairs, shapes, per_pair = [], [], []
    in_words = False
    for source, target, reference in zip(sources, targets, references, strict=True):
        if reference is None:
            continue
        attention = forced_attention(model, source, target)  # (T+1, S)
        if reference.source_words is not None and reference.target_words is not None:
            attention = word_attention(attention, reference.source_words, reference.target_words)
            in_words = True
        else:
            attention = attention[: len(target)]  # (T, S): the EOS row has no reference
        links = _predicted_links(attention, reference.sure, reference.possible, threshold, False)
        pairs.append(links)
        shapes.append((attention.size(0), attention.size(1)))
        per_pair.append(_scores(links))
    summary: dict[str, float | int | None] = {"pairs": len(pairs), "threshold": threshold}
    pooled = _pooled(pairs, shapes) if pairs else dict.fromkeys(_SCORE_NAMES)
    summary.update({key: _number(value) for key, value in pooled.items()})
    summary["median_aer_argmax"] = _median([scores["aer_argmax"] for scores in per_pair])
    notes = [
        "Links come from the attention of the model teacher-forced on the reference target "
        "(the EOS step left out); target rows without any reference link are not linked.",
        "Summary scores pool the links of all pairs (corpus-level AER); the distributions "
        "are per pair.",
    ]
    if in_words:
        notes.append(
            "Token attention was moved to words (source pieces summed, target pieces "
            "averaged); a statistical aligner's links are a silver reference: read the "
            "numbers as agreement with that aligner."
        )
    if len(pairs) < len(sources):
        notes.append(f"{len(sources) - len(pairs)} pairs without a reference were skipped.")
    return _section(
        "alignment",
        "Alignment with the reference",
        "Alignment error rate (0 is perfect) and precision / recall of the links read off the "
        f"attention: each target token's most-attended source token (argmax) and every "
        f"weight of at least {threshold} (threshold), against sure and possible reference links.",
        summary,
        {
            "aer_argmax_per_pair": _numbers([s["aer_argmax"] for s in per_pair]),
            "aer_threshold_per_pair": _numbers([s["aer_threshold"] for s in per_pair]),
        },
        notes,
    )


@dataclass
class _ExampleResults:
    """What the per-source diagnostics found for one source."""

    output_length: int  # greedy output tokens, EOS not counted
    entropies: list[float]  # normalized, per output step
    effects: dict[str, StepEffects]
    erasure: SourceErasure | None
    copies: CopyHits | None


def _diagnose_source(
    model: Seq2Seq,
    source: Sequence[int],
    target: Sequence[int] | None,
    words: Sequence[int] | None,
    search: SearchConfig,
    generator: torch.Generator,
    copy_threshold: float,
) -> _ExampleResults:
    output = greedy_output(model, source, search)
    run = forced_run(model, source, output)
    entropies = entropy(run.attention, normalized=True).tolist()  # (T+1,)
    effects = counterfactual_steps(model, source, output if target is None else target, generator)
    single_unit = len(set(words)) == 1 if words is not None else len(source) == 1
    erasure = None if single_unit else _erasure(model, source, run, search, words)
    copies = None
    if isinstance(model, PointerGenerator) and model.copy:
        copies = copy_attention_hits(model, source, output, copy_threshold)
    return _ExampleResults(len(output), entropies, effects, erasure, copies)


def _counterfactual_section(results: Sequence[_ExampleResults], on: str) -> dict[str, Any]:
    summary: dict[str, float | int | None] = {
        "steps": sum(len(r.effects["uniform"].flipped) for r in results)
    }
    distributions: dict[str, list[float]] = {}
    for kind in COUNTERFACTUAL_KINDS:
        flipped = [flip for r in results for flip in r.effects[kind].flipped]
        tvd = [value for r in results for value in r.effects[kind].output_tvd]
        summary[f"flip_rate_{kind}"] = _share(sum(flipped), len(flipped))
        summary[f"median_tvd_{kind}"] = _median(tvd)
        distributions[f"tvd_{kind}_per_step"] = _numbers(tvd)
        distributions[f"flip_rate_{kind}_per_sentence"] = _numbers(
            [r.effects[kind].flip_rate for r in results]
        )
        if kind != "zero":
            jsd = [value for r in results for value in r.effects[kind].attention_jsd or []]
            summary[f"median_jsd_{kind}"] = _median(jsd)
            distributions[f"jsd_{kind}_per_step"] = _numbers(jsd)
    return _section(
        "counterfactual_steps",
        "Counterfactual attention at each decoding step",
        "At each step of the "
        + ("reference target" if on == "target" else "model's own greedy output")
        + " (teacher-forced) the step's attention is replaced, that step only: permuted, "
        "uniform, or zero (a zero context vector). Flip rate: how often the most probable "
        "next token changes; TVD: how far the next-token distribution moves (0 to 1).",
        summary,
        distributions,
        [
            "Each replacement starts from the original run's state before that step; "
            "JSD (bits) measures how far the replaced weights are from the original ones."
        ],
    )


def _erasure_section(results: Sequence[_ExampleResults], unit: str) -> dict[str, Any]:
    erasures = [r.erasure for r in results if r.erasure is not None]
    drops = [erasure.log_prob_drop for erasure in erasures]
    notes = []
    if len(erasures) < len(results):
        notes.append(f"{len(results) - len(erasures)} sources of a single {unit} were skipped.")
    return _section(
        "erasure",
        f"Erasure of the most-attended source {unit}",
        f"The source {unit} with the most attention summed over the output is removed and the "
        "source decoded again: how often the output changes, and how much log-probability "
        "the original output loses (positive: it became less likely).",
        {
            "sources": len(erasures),
            "changed_rate": _share(sum(e.changed for e in erasures), len(erasures)),
            "median_log_prob_drop": _median(drops),
            "mean_log_prob_drop": _mean(drops),
        },
        {"log_prob_drop_per_sentence": _numbers(drops)},
        notes,
    )


def _copying_section(
    results: Sequence[_ExampleResults], output_tokens: int, threshold: float
) -> dict[str, Any]:
    copies = [r.copies for r in results if r.copies is not None]
    copied = sum(len(c.copied) for c in copies)
    hits = sum(sum(c.hits) for c in copies)
    return _section(
        "copying",
        "Copied words and the attention",
        f"An output word is copied when its generation probability p_gen is below {threshold} "
        "and the word is in the source; the share of copied words whose most-attended source "
        "position holds that word.",
        {
            "output_tokens": output_tokens,
            "copied_tokens": copied,
            "copied_share": _share(copied, output_tokens),
            "most_attended_share": _share(hits, copied),
        },
        {
            "most_attended_share_per_document": _numbers(
                [sum(c.hits) / len(c.hits) for c in copies if c.hits]
            )
        },
        [] if copied else ["No output word was copied."],
    )


def _entropy_section(results: Sequence[_ExampleResults]) -> dict[str, Any]:
    values = [value for r in results for value in r.entropies]
    return _section(
        "entropy",
        "Attention entropy",
        "Entropy of each output step's attention divided by its maximum log2(S): 0 when one "
        "source token takes all the weight, 1 when the weight is spread evenly.",
        {"steps": len(values), "mean": _mean(values), "median": _median(values)},
        {"normalized_entropy_per_step": _numbers(values)},
        ["Steps of the model's greedy output, the EOS step included."],
    )


def diagnose_seq2seq(
    trained: TrainedModel[Any, Any],
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]] | None = None,
    references: Sequence[Reference | None] | None = None,
    source_words: Sequence[Sequence[int]] | None = None,
    counterfactual_on: Literal["output", "target"] = "output",
    threshold: float = 0.5,
    copy_threshold: float = 0.5,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The diagnostics of a trained :class:`Translator` or :class:`Summarizer` as report
    sections: ``alignment`` (given targets and references), ``counterfactual_steps``,
    ``erasure``, ``copying`` (a pointer-generator that copies) and ``entropy``.

    Args:
        sources: token ids of each source (a summarizer's extended ids).
        targets: the reference target ids of each source (without BOS / EOS), or None.
        references: the reference links of each pair (None for a pair without), in token
            or word units (:class:`Reference`); needs ``targets``.
        source_words: the word index of every source token, to erase words, not tokens.
        counterfactual_on: teacher-force the counterfactual steps on the model's greedy
            ``output`` or on the reference ``target``.
        threshold: the weight that makes a threshold link; copy_threshold: the p_gen below
            which an output word counts as copied. seed: of the random permutations.
    Decoding uses the run's ``search`` settings with beam size 1.
    """
    model = trained.model
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"need an encoder-decoder (Seq2Seq) run, got {type(model).__name__}")
    if (references is not None or counterfactual_on == "target") and targets is None:
        raise ValueError("references and counterfactual_on='target' need the targets")
    for name, values in (("targets", targets), ("references", references), ("words", source_words)):
        if values is not None and len(values) != len(sources):
            raise ValueError(f"{name} has {len(values)} entries for {len(sources)} sources")
    search: SearchConfig = trained.config.search
    generator = torch.Generator().manual_seed(seed)
    sections = []
    with trained.lock:
        if references is not None and targets is not None:
            sections.append(_alignment_section(model, sources, targets, references, threshold))
        results = [
            _diagnose_source(
                model,
                source,
                targets[index] if targets is not None and counterfactual_on == "target" else None,
                source_words[index] if source_words is not None else None,
                search,
                generator,
                copy_threshold,
            )
            for index, source in enumerate(sources)
        ]
    sections.append(_counterfactual_section(results, counterfactual_on))
    sections.append(_erasure_section(results, "word" if source_words is not None else "token"))
    if isinstance(model, PointerGenerator) and model.copy:
        output_tokens = sum(r.output_length for r in results)
        sections.append(_copying_section(results, output_tokens, copy_threshold))
    sections.append(_entropy_section(results))
    return sections
