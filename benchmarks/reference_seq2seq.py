"""A plain reference implementation of the Multi30k translation model, for speed ratios.

The same architecture as ``configs/multi30k_de_en.yaml`` (shared 256-d
embeddings, 2-layer BiGRU encoder of 256 per direction, Luong GRU decoder of
512 with input feeding, additive attention of 256, tied 256-d output layer),
written the way a first implementation usually is:

- the encoder runs ``nn.GRU`` over packed sequences;
- the decoder is a Python loop over ``nn.GRUCell``, recomputing the key
  projection of the attention at every step;
- the output layer runs on every position, padding included;
- batches are random (no length bucketing);
- beam search decodes one sentence at a time.

It is not used by attnrnn; ``benchmarks/speed.py`` times it beside attnrnn in
the same run, so every speed figure is also a ratio.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class ReferenceSeq2Seq(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        pad_index: int,
        embedding_size: int = 256,
        encoder_size: int = 256,
        decoder_size: int = 512,
        attention_size: int = 256,
    ) -> None:
        super().__init__()
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_index)
        self.encoder = nn.GRU(
            embedding_size, encoder_size, num_layers=2, bidirectional=True, batch_first=True
        )
        memory_size = 2 * encoder_size
        self.bridge = nn.Linear(memory_size, decoder_size)
        self.cell = nn.GRUCell(embedding_size + embedding_size, decoder_size)
        self.query_projection = nn.Linear(decoder_size, attention_size, bias=False)
        self.key_projection = nn.Linear(memory_size, attention_size)
        self.energy = nn.Linear(attention_size, 1, bias=False)
        self.attentional = nn.Linear(memory_size + decoder_size, embedding_size)
        self.output = nn.Linear(embedding_size, vocab_size)
        self.output.weight = self.embedding.weight

    @torch.no_grad()
    def load_attnrnn(self, model: nn.Module) -> None:
        """Copy the weights of an attnrnn Seq2Seq of the same shape (configs/multi30k_*),
        so that both implementations compute the same translations."""
        weights = model.state_dict()
        self.embedding.weight.copy_(weights["source_embedding.weight"])
        for layer in range(2):
            for direction, suffix in ((0, ""), (1, "_reverse")):
                prefix = f"encoder.layers.{layer}.{direction}."
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.encoder, f"{name}_l{layer}{suffix}").copy_(
                        weights[f"{prefix}{name}_l0"]
                    )
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.cell, name).copy_(weights[f"decoder.rnn.{name}_l0"])
        pairs = {
            "bridge": "bridge",
            "query_projection": "decoder.attention.query_projection",
            "key_projection": "decoder.attention.key_projection",
            "energy": "decoder.attention.energy",
            "attentional": "decoder.attentional_layer",
            "output": "output_layer",
        }
        for mine, theirs in pairs.items():
            for name, parameter in getattr(self, mine).named_parameters():
                parameter.copy_(weights[f"{theirs}.{name}"])

    def encode(self, source: torch.Tensor, lengths: torch.Tensor):
        packed = pack_padded_sequence(
            self.embedding(source), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, hidden = self.encoder(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True)  # (B, S, 2H)
        mask = torch.arange(memory.size(1)).unsqueeze(0) < lengths.unsqueeze(1)  # (B, S)
        summary = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2H)
        return memory, mask, torch.tanh(self.bridge(summary))

    def decode_step(self, token, hidden, feed, memory, mask):
        embedded = self.embedding(token)  # (B, E)
        hidden = self.cell(torch.cat([embedded, feed], dim=-1), hidden)  # (B, H)
        keys = self.key_projection(memory)  # recomputed every step, (B, S, A)
        scores = self.energy(torch.tanh(keys + self.query_projection(hidden).unsqueeze(1)))
        scores = scores.squeeze(-1).masked_fill(~mask, -math.inf)  # (B, S)
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # (B, 2H)
        feed = torch.tanh(self.attentional(torch.cat([context, hidden], dim=-1)))  # (B, E)
        return self.output(feed), hidden, feed

    def loss(self, source, lengths, target_input, target_output, label_smoothing=0.1):
        memory, mask, hidden = self.encode(source, lengths)
        feed = memory.new_zeros(source.size(0), self.embedding.embedding_dim)
        logits = []
        for position in range(target_input.size(1)):
            step_logits, hidden, feed = self.decode_step(
                target_input[:, position], hidden, feed, memory, mask
            )
            logits.append(step_logits)
        stacked = torch.stack(logits, dim=1)  # (B, T, V) padding included
        return F.cross_entropy(
            stacked.transpose(1, 2),
            target_output,
            ignore_index=self.pad_index,
            label_smoothing=label_smoothing,
        )

    @torch.no_grad()
    def greedy(self, source, lengths, bos, eos, max_length):
        memory, mask, hidden = self.encode(source, lengths)
        B = source.size(0)
        feed = memory.new_zeros(B, self.embedding.embedding_dim)
        token = torch.full((B,), bos, dtype=torch.long)
        outputs, done = [], torch.zeros(B, dtype=torch.bool)
        for _ in range(max_length):
            logits, hidden, feed = self.decode_step(token, hidden, feed, memory, mask)
            token = logits.argmax(dim=-1)
            outputs.append(token)
            done |= token == eos
            if done.all():
                break
        return torch.stack(outputs, dim=1)

    @torch.no_grad()
    def beam_one(self, source, bos, eos, beam_size, max_length, alpha=1.0):
        """Beam search for one sentence (1, S): the straightforward way."""
        memory, mask, hidden = self.encode(source, torch.tensor([source.size(1)]))
        beams = [([bos], 0.0, hidden, memory.new_zeros(1, self.embedding.embedding_dim))]
        finished = []
        for _ in range(max_length):
            candidates = []
            for tokens, score, beam_hidden, feed in beams:
                logits, new_hidden, new_feed = self.decode_step(
                    torch.tensor([tokens[-1]]), beam_hidden, feed, memory, mask
                )
                log_probs = F.log_softmax(logits, dim=-1)[0]
                top = log_probs.topk(beam_size)
                for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                    candidates.append(([*tokens, index], score + value, new_hidden, new_feed))
            candidates.sort(key=lambda item: item[1], reverse=True)
            beams = []
            for candidate in candidates[:beam_size]:
                if candidate[0][-1] == eos:
                    length = len(candidate[0]) - 1
                    finished.append((candidate[0], candidate[1] / ((5 + length) / 6) ** alpha))
                else:
                    beams.append(candidate)
            if len(finished) >= beam_size or not beams:
                break
        if not finished:
            finished = [(tokens, score) for tokens, score, _, _ in beams]
        return max(finished, key=lambda item: item[1])[0][1:]
