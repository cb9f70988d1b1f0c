"""Pointer-generator with coverage (See et al. 2017): a seq2seq model that can copy.

At every step the decoder mixes two distributions over an *extended*
vocabulary (the fixed vocabulary plus this source's out-of-vocabulary words):

    P(w) = p_gen * P_vocab(w) + (1 - p_gen) * sum of the attention on source positions holding w

with ``p_gen = sigmoid(w^T [a_t; x_t] + b)`` from the attentional vector
``a_t`` (itself a function of the context and the decoder state) and the
input embedding ``x_t``. Source words the vocabulary lacks get ids
``V + k`` (k-th unknown word of that source), so they can be produced by
copying and are turned back into the source's own words after decoding.

With coverage attention (``decoder.attention: coverage``) the running sum of
past attention is fed to the attention, and the loss adds
``sum_s min(a_ts, c_ts)``, which penalizes attending to a position again.

The search protocol is unchanged: ``step`` returns log-probabilities over the
extended vocabulary (N, V + X), and the state carries the extended source ids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.models.seq2seq import EncodedSource, Seq2Seq, Seq2SeqConfig
from attnrnn.nn.decoders import DecoderState

PROBABILITY_FLOOR = 1e-12  # log(0) guard for words neither generated nor copied


@dataclass
class CopySource(EncodedSource):
    """An encoded source with what copying needs.

    source_ids: (B, S) source ids in the extended vocabulary (padding: pad id).
    extended_size: V + X, X the most unknown words of one source in the batch.
    """

    source_ids: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))
    extended_size: int = 0


@dataclass
class CopyState:
    """The decoder state plus the extended source ids of every row (N, S)."""

    decoder: DecoderState
    source_ids: torch.Tensor
    extended_size: int

    def select(self, indices: torch.Tensor) -> CopyState:
        return self.reorder(indices, indices)

    def reorder(self, indices: torch.Tensor, sources: torch.Tensor | None) -> CopyState:
        """See :func:`attnrnn.decoding.protocol.reorder` (the source ids are the source's)."""
        return CopyState(
            self.decoder.reorder(indices, sources),
            self.source_ids if sources is None else self.source_ids.index_select(0, sources),
            self.extended_size,
        )


@dataclass
class CopyOutput:
    """A teacher-forced pass: log P of every target token (B, T), the attention
    (B, T, S), p_gen (B, T) and the coverage loss per position (B, T)."""

    target_log_probs: torch.Tensor
    attention: torch.Tensor
    generation_probability: torch.Tensor
    coverage_loss: torch.Tensor


class PointerGenerator(Seq2Seq):
    """:class:`Seq2Seq` with a copy switch; ``unk_index`` stands in for extended ids
    when they are fed back as inputs. With ``copy=False`` it is the plain attention
    seq2seq (p_gen = 1), so both systems share one code path."""

    def __init__(
        self,
        vocab_size: int,
        config: Seq2SeqConfig,
        pad_index: int,
        bos_index: int,
        eos_index: int,
        unk_index: int,
        copy: bool = True,
    ) -> None:
        super().__init__(vocab_size, vocab_size, config, pad_index, bos_index, eos_index)
        self.vocab_size = vocab_size
        self.unk_index = unk_index
        self.copy = copy
        self.generation_gate = nn.Linear(self.decoder.attentional_size + config.embedding_size, 1)

    def encode_with_copy(
        self, source_ids: torch.Tensor, source_lengths: torch.Tensor, extended_size: int
    ) -> CopySource:
        """Encode extended source ids (B, S); unknown words are read as ``<unk>``."""
        encoded = self.encode(self._in_vocabulary(source_ids), source_lengths)
        return CopySource(
            encoded.memory, encoded.memory_mask, encoded.final, source_ids, extended_size
        )

    def _in_vocabulary(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.masked_fill(ids >= self.vocab_size, self.unk_index)

    def init_state(self, encoded: EncodedSource) -> CopyState:  # type: ignore[override]
        assert isinstance(encoded, CopySource), "encode with encode_with_copy"
        return CopyState(super().init_state(encoded), encoded.source_ids, encoded.extended_size)

    def _generation_probability(
        self, attentional: torch.Tensor, embedded: torch.Tensor
    ) -> torch.Tensor:
        """p_gen (...,) from attentional vectors (..., A) and input embeddings (..., E)."""
        if not self.copy:
            return attentional.new_ones(attentional.shape[:-1], dtype=torch.float32)
        gate = self.generation_gate(torch.cat([attentional, embedded], dim=-1))  # (..., 1)
        return torch.sigmoid(gate.float()).squeeze(-1)

    def _final_probabilities(
        self,
        attentional: torch.Tensor,
        p_gen: torch.Tensor,
        weights: torch.Tensor,
        source_ids: torch.Tensor,
        extended_size: int,
    ) -> torch.Tensor:
        """P over the extended vocabulary (N, V + X) for one step of N rows, given their
        generation probabilities p_gen (N,)."""
        vocabulary = torch.softmax(self.output_logits(attentional).float(), dim=-1)  # (N, V)
        if not self.copy:
            return vocabulary
        p_gen = p_gen.unsqueeze(-1)  # (N, 1)
        N = vocabulary.size(0)
        final = vocabulary.new_zeros(N, extended_size)  # (N, V + X)
        final[:, : self.vocab_size] = p_gen * vocabulary
        return final.scatter_add(1, source_ids, (1.0 - p_gen) * weights.float())

    def step(  # type: ignore[override]
        self, prev_tokens: torch.Tensor, state: CopyState
    ) -> tuple[torch.Tensor, CopyState, torch.Tensor]:
        """One step: log-probabilities over the extended vocabulary (N, V + X)."""
        log_probs, state, weights, _ = self.gated_step(prev_tokens, state)
        return log_probs, state, weights

    def gated_step(
        self, prev_tokens: torch.Tensor, state: CopyState
    ) -> tuple[torch.Tensor, CopyState, torch.Tensor, torch.Tensor]:
        """:meth:`step` and the generation probability p_gen (N,) of every row."""
        embedded = self.embedding_dropout(self.target_embedding(self._in_vocabulary(prev_tokens)))
        attentional, decoder_state, weights = self.decoder.step(embedded, state.decoder)
        p_gen = self._generation_probability(attentional, embedded)  # (N,)
        final = self._final_probabilities(
            attentional, p_gen, weights, state.source_ids, state.extended_size
        )
        log_probs = final.clamp_min(PROBABILITY_FLOOR).log()  # (N, V + X)
        new_state = CopyState(decoder_state, state.source_ids, state.extended_size)
        return log_probs, new_state, weights, p_gen

    def copy_forward(
        self,
        source_ids: torch.Tensor,
        source_lengths: torch.Tensor,
        target_input: torch.Tensor,
        target_output: torch.Tensor,
        extended_size: int,
    ) -> CopyOutput:
        """Teacher-forced pass scoring ``target_output`` (B, T) extended ids."""
        encoded = self.encode_with_copy(source_ids, source_lengths, extended_size)
        state = super().init_state(encoded)
        embedded = self.embedding_dropout(self.target_embedding(self._in_vocabulary(target_input)))
        attentional, attention = self.decoder(embedded, state)  # (B, T, A), (B, T, S)
        log_vocabulary = torch.log_softmax(self.output_logits(attentional).float(), dim=-1)
        in_vocabulary = target_output < self.vocab_size  # (B, T)
        picked = log_vocabulary.gather(
            -1, self._in_vocabulary(target_output).unsqueeze(-1)
        ).squeeze(-1)  # (B, T)
        p_gen = self._generation_probability(attentional, embedded)  # (B, T)
        generated = p_gen * picked.exp() * in_vocabulary  # (B, T)
        matches = source_ids.unsqueeze(1) == target_output.unsqueeze(2)  # (B, T, S)
        copied = (1.0 - p_gen) * (attention.float() * matches).sum(-1)  # (B, T)
        target_log_probs = (generated + copied).clamp_min(PROBABILITY_FLOOR).log()
        return CopyOutput(target_log_probs, attention, p_gen, coverage_loss(attention))


def coverage_loss(attention: torch.Tensor) -> torch.Tensor:
    """See et al.'s ``sum_s min(a_ts, c_ts)`` per step (B, T) for attention (B, T, S),
    with coverage ``c_t`` the sum of the weights of the steps before t."""
    coverage = attention.cumsum(dim=1) - attention  # (B, T, S)
    return torch.minimum(attention, coverage).sum(-1)
