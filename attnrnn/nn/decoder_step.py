"""The decoding step of the one-layer Luong GRU decoder with input feeding and additive
attention (the Multi30k recipe), with its weights prepared once for inference.

:meth:`attnrnn.models.target_side.TargetSide.step` runs the step through modules:
``nn.GRU`` for one time step (its input projection multiplies the previous token's
embedding by the same weights at every step, for every row), the attention module and
the output layer. Search calls it once per output token for every row of every beam, so
what is constant across steps is worth doing once per decoding call.
:class:`LuongGRUAdditiveStep` computes the same step with:

- **a token table**: the embedding half of the GRU's input projection, with the input
  biases and the recurrent biases of r and z folded in, for every target token
  (V, 3H): a row gather per step instead of a quarter of the GRU's matmul work
  (when the table is at most :data:`MAX_TABLE_ELEMENTS`; else a gather and a matmul);
- **matmuls in a compute dtype**: the weights of the five matmuls of a step (input feed,
  recurrent, attention query, attentional layer, output layer) are cast once, to
  bfloat16 where the hardware computes in it natively (AMX, AVX512-BF16: several times
  the fp32 matmul rate on one core), or kept as they are. Everything elementwise (the
  gates, tanh of the attention energies, the softmaxes) stays in the weights' own dtype:
  on the CPU bf16 elementwise kernels are slower than fp32 ones and lose precision;
- **the encoder in bf16 weights**: with bf16 matmuls, an RNN encoder runs as a bf16 copy
  of itself rather than under autocast (which casts the weights at every call);
- **no module calls**: the step is a dozen tensor operations on the state's tensors,
  the energy a matrix-vector product.

In the weights' own dtype it computes the same values as ``TargetSide.step`` up to
floating-point rounding (the tests compare the two); in bfloat16 the matmuls round
their inputs and outputs to 8 significant bits, a BLEU change that
``benchmarks/speed.py`` measures. The state it takes and returns is the
:class:`~attnrnn.nn.decoders.DecoderState` of ``TargetSide.step``, so search, beam
reordering and the shortlist (:mod:`attnrnn.decoding.shortlist`) work on either.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.nn.attention import AdditiveAttention
from attnrnn.nn.decoders import DecoderState
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.gru import fold_recurrent_bias, gru_gates
from attnrnn.nn.masking import masked_softmax

# Largest token table (V x 3H elements) kept; beyond it (256 MiB in fp32) the step
# multiplies the gathered embeddings instead.
MAX_TABLE_ELEMENTS = 2**26


def supports(model: nn.Module) -> bool:
    """Whether ``model`` (a :class:`~attnrnn.models.target_side.TargetSide`) has the
    decoder this step computes, with plain (not quantized) layers, in eval mode."""
    decoder = getattr(model, "decoder", None)
    if decoder is None or model.training:
        return False
    return (
        decoder.style == "luong"
        and decoder.input_feeding
        and type(decoder.rnn) is nn.GRU
        and decoder.num_layers == 1
        and type(decoder.attention) is AdditiveAttention
        and type(decoder.attentional_layer) is nn.Linear
        and type(getattr(model, "output_layer", None)) is nn.Linear
        and type(getattr(model, "target_embedding", None)) is nn.Embedding
    )


def project(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``inputs @ weight.T + bias`` with the matmul in ``weight``'s dtype: inputs of
    another dtype are cast to it and the product back, before the bias (kept in the
    inputs' dtype) is added."""
    if weight.dtype == inputs.dtype:
        return F.linear(inputs, weight, bias)
    outputs = F.linear(inputs.to(weight.dtype), weight).to(inputs.dtype)
    return outputs if bias is None else outputs.add_(bias)


class _Linear:
    """A linear layer's weight (out, in), cast once to the compute dtype, and its bias."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype):
        self.weight = weight.detach().to(dtype).contiguous()
        self.bias = None if bias is None else bias.detach()

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return project(inputs, self.weight, self.bias)


class LuongGRUAdditiveStep:
    """The step model (search protocol) of a translation model whose decoder
    :func:`supports` accepts; see the module docstring.

    Args:
        model: the model (its weights are read once, here: build a new step after the
            weights change).
        compute_dtype: the dtype of the matmuls (None: the weights' dtype).
    """

    def __init__(self, model: Any, compute_dtype: torch.dtype | None = None) -> None:
        if not supports(model):
            raise ValueError(
                "LuongGRUAdditiveStep needs a one-layer Luong GRU decoder with input "
                "feeding and additive attention, in eval mode"
            )
        self.model = model
        self.bos_index, self.eos_index = model.bos_index, model.eos_index
        self.pad_index = model.pad_index
        decoder = model.decoder
        rnn, attention = decoder.rnn, decoder.attention
        dtype = rnn.weight_ih_l0.dtype
        self.compute_dtype = compute_dtype or dtype
        E = model.target_embedding.embedding_dim
        self.hidden_size = H = decoder.hidden_size
        with torch.no_grad():
            weight_ih = rnn.weight_ih_l0.detach()  # (3H, E + F)
            bias = fold_recurrent_bias(rnn.bias_ih_l0, rnn.bias_hh_l0)  # (3H,)
            embedding = model.target_embedding.weight.detach()  # (V, E)
            self.token_gates: torch.Tensor | None = None
            if embedding.size(0) * 3 * H <= MAX_TABLE_ELEMENTS:
                self.token_gates = torch.addmm(bias, embedding, weight_ih[:, :E].t())  # (V, 3H)
            else:
                self.embedding = embedding
                self.token_projection = _Linear(weight_ih[:, :E], bias, self.compute_dtype)
            self.feed_projection = _Linear(weight_ih[:, E:], None, self.compute_dtype)
            self.recurrent = _Linear(rnn.weight_hh_l0, None, self.compute_dtype)
            self.bias_hn = rnn.bias_hh_l0.detach()[2 * H :]  # (H,)
            self.query = _Linear(attention.query_projection.weight, None, self.compute_dtype)
            self.energy = attention.energy.weight.detach().view(-1)  # (K,)
            layer = decoder.attentional_layer
            self.attentional = _Linear(layer.weight, layer.bias, self.compute_dtype)
            output = model.output_layer
            self.output_layer = _Linear(output.weight, output.bias, self.compute_dtype)
            # The encoder's RNN in bf16 weights runs faster than under autocast (which
            # casts the weights at every call).
            self.encoder: nn.Module | None = None
            if self.compute_dtype == torch.bfloat16 and isinstance(
                getattr(model, "encoder", None), RNNEncoder
            ):
                self.encoder = copy.deepcopy(model.encoder).to(torch.bfloat16)

    def _autocast(self, device: torch.device) -> Any:
        """bf16 autocast when the matmuls are bf16 (else a no-op context)."""
        bf16 = self.compute_dtype == torch.bfloat16
        return torch.autocast(device.type, torch.bfloat16, enabled=bf16)

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> Any:
        """The model's encoding of a batch; with bf16 matmuls, in bf16 (the encoder is a
        quarter of greedy decoding): an RNN encoder through its bf16 copy, another one
        under bf16 autocast. The memory is then bf16."""
        with self._autocast(source.device):
            if self.encoder is None:
                return self.model.encode(source, lengths)
            return self.model.encode(source, lengths, encoder=self.encoder)

    def init_state(self, encoded: Any) -> DecoderState:
        """The model's initial state (under bf16 autocast with bf16 matmuls), its tensors
        in the weights' dtype: the keys too, once, since every step adds the query to them
        (an add of bf16 keys and an fp32 query converts the keys at every step, and runs
        about a third slower)."""
        with self._autocast(encoded.memory.device):
            state = self.model.init_state(encoded)
        assert state.input_feed is not None and state.projected_keys is not None
        dtype = self.bias_hn.dtype
        return replace(
            state,
            hidden=state.hidden.to(dtype),
            input_feed=state.input_feed.to(dtype),
            coverage=state.coverage.to(dtype),
            memory=state.memory.to(dtype),
            projected_keys=state.projected_keys.to(dtype),
        )

    def step(
        self,
        prev_tokens: torch.Tensor,
        state: DecoderState,
        outputs: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step, as :meth:`~attnrnn.models.target_side.TargetSide.step`.

        Args:
            prev_tokens: (N,) the previous target token of every row.
            outputs: the output layer's weight (V', A), in this step's
                ``output_layer.weight`` dtype, and bias (V',) rows of the only outputs
                to score (a lexical shortlist); None: the whole vocabulary.

        Returns:
            log-probabilities (N, V) in float32, the new state, attention (N, S).
        """
        assert state.input_feed is not None and state.projected_keys is not None
        feed = state.input_feed  # (N, F)
        previous = state.hidden[:, 0]  # (N, H)
        if self.token_gates is not None:
            projected = self.token_gates.index_select(0, prev_tokens)  # (N, 3H)
        else:
            projected = self.token_projection(self.embedding.index_select(0, prev_tokens))
        projected += self.feed_projection(feed)
        recurrent = self.recurrent(previous)  # (N, 3H) W_hh h, no bias
        hidden = torch.empty_like(previous)  # (N, H)
        gru_gates(projected, recurrent, previous, self.bias_hn, out=hidden)
        query = self.query(hidden)  # (N, K)
        energies = torch.add(state.projected_keys, query.unsqueeze(1)).tanh_()  # (N, S, K)
        weights = masked_softmax(energies @ self.energy, state.memory_mask)  # (N, S)
        context = torch.bmm(weights.unsqueeze(1), state.memory).squeeze(1)  # (N, M)
        attentional = self.attentional(torch.cat([context, hidden], dim=1)).tanh_()  # (N, F)
        if outputs is None:
            logits = self.output_layer(attentional)  # (N, V)
        else:
            logits = project(attentional, *outputs)  # (N, V')
        log_probs = F.log_softmax(logits.float(), dim=-1)
        new_state = replace(
            state,
            hidden=hidden.unsqueeze(1),
            input_feed=attentional,
            coverage=state.coverage + weights,
        )
        return log_probs, new_state, weights
