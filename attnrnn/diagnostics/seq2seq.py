"""Diagnostics of an attention encoder-decoder (:class:`Seq2Seq` translation models and the
summarization :class:`PointerGenerator`), one source sentence at a time.

Does the attention align, and does the output depend on it?

- Alignment: :func:`forced_attention` on a reference pair, scored against its reference
  links by :mod:`attnrnn.diagnostics.alignment` (AER, precision and recall).
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from unittest import mock

import torch

from attnrnn.decoding.greedy import greedy_search
from attnrnn.decoding.protocol import SearchConfig
from attnrnn.diagnostics.alignment import Reference, alignment_section, word_map
from attnrnn.diagnostics.common import evaluating, mean, median, section, share
from attnrnn.diagnostics.measures import entropy, jensen_shannon, total_variation
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.models.seq2seq import Seq2Seq
from attnrnn.nn.attention import Attention
from attnrnn.tasks.base import TrainedModel

CounterfactualKind = Literal["permuted", "uniform", "zero"]
COUNTERFACTUAL_KINDS: tuple[CounterfactualKind, ...] = ("permuted", "uniform", "zero")

# --------------------------------------------------------------------------- running the model


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
    with evaluating(model, no_grad=True):
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
    with evaluating(model, no_grad=True):
        state = _initial_state(model, source_ids, extended)
        lengths = torch.tensor([len(source_ids)], device=_device(model))  # (1,)
        return greedy_search(model, state, lengths, config)[0][0].tokens


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
    with evaluating(model, no_grad=True), attention_replaced(model, weights):
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
    units = word_map("source_words", source_words or list(range(S)), S)  # (S,)
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
    with evaluating(model, no_grad=True):
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


@dataclass
class _ExampleResults:
    """What the per-source diagnostics found for one source."""

    output_length: int  # greedy output tokens, EOS not counted
    entropies: list[float]  # normalized, per output step
    effects: dict[str, StepEffects]
    erasure: SourceErasure | None
    copies: CopyHits | None


def _alignment_section(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    references: Sequence[Reference | None],
    threshold: float,
) -> dict[str, Any]:
    """The ``alignment`` section of the pairs that have a reference, from the attention of
    the model teacher-forced on their targets."""
    pairs = [
        (source, target, reference)
        for source, target, reference in zip(sources, targets, references, strict=True)
        if reference is not None
    ]
    attentions = [forced_attention(model, source, target) for source, target, _ in pairs]
    chosen = [reference for _, _, reference in pairs]
    return alignment_section(attentions, chosen, threshold, skipped=len(sources) - len(pairs))


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
        summary[f"flip_rate_{kind}"] = share(sum(flipped), len(flipped))
        summary[f"median_tvd_{kind}"] = median(tvd)
        distributions[f"tvd_{kind}_per_step"] = tvd
        distributions[f"flip_rate_{kind}_per_sentence"] = [
            r.effects[kind].flip_rate for r in results
        ]
        if kind != "zero":
            jsd = [value for r in results for value in r.effects[kind].attention_jsd or []]
            summary[f"median_jsd_{kind}"] = median(jsd)
            distributions[f"jsd_{kind}_per_step"] = jsd
    return section(
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
    return section(
        "erasure",
        f"Erasure of the most-attended source {unit}",
        f"The source {unit} with the most attention summed over the output is removed and the "
        "source decoded again: how often the output changes, and how much log-probability "
        "the original output loses (positive: it became less likely).",
        {
            "sources": len(erasures),
            "changed_rate": share(sum(e.changed for e in erasures), len(erasures)),
            "median_log_prob_drop": median(drops),
            "mean_log_prob_drop": mean(drops),
        },
        {"log_prob_drop_per_sentence": drops},
        notes,
    )


def _copying_section(
    results: Sequence[_ExampleResults], output_tokens: int, threshold: float
) -> dict[str, Any]:
    copies = [r.copies for r in results if r.copies is not None]
    copied = sum(len(c.copied) for c in copies)
    hits = sum(sum(c.hits) for c in copies)
    return section(
        "copying",
        "Copied words and the attention",
        f"An output word is copied when its generation probability p_gen is below {threshold} "
        "and the word is in the source; the share of copied words whose most-attended source "
        "position holds that word.",
        {
            "output_tokens": output_tokens,
            "copied_tokens": copied,
            "copied_share": share(copied, output_tokens),
            "most_attended_share": share(hits, copied),
        },
        {"most_attended_share_per_document": [sum(c.hits) / len(c.hits) for c in copies if c.hits]},
        [] if copied else ["No output word was copied."],
    )


def _entropy_section(results: Sequence[_ExampleResults]) -> dict[str, Any]:
    values = [value for r in results for value in r.entropies]
    return section(
        "entropy",
        "Attention entropy",
        "Entropy of each output step's attention divided by its maximum log2(S): 0 when one "
        "source token takes all the weight, 1 when the weight is spread evenly.",
        {"steps": len(values), "mean": mean(values), "median": median(values)},
        {"normalized_entropy_per_step": values},
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
