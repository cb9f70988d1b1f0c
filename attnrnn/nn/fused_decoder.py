"""Teacher-forced Luong decoder (GRU, additive attention, input feeding) with a
hand-written backward pass through time.

Input feeding links every step to the previous one, so teacher forcing loops
over the target one step at a time. Through autograd each step then leaves
its own small matmuls for the weight gradients, a gradient-accumulating add
per weight, a (B, S, M) outer product for the memory's gradient (a batched
matmul with inner size 1, the slowest shape there is) and another add, step
after step. :class:`LuongGRUAdditive` runs the same computation as
:meth:`attnrnn.nn.decoders.RNNDecoder.step` in a loop, keeps what the backward
pass needs, and in the backward pass carries only the recurrent gradients
from step to step; every weight gradient, the memory's and the key's
gradients and the embeddings' gradient are then a few large matmuls over all
steps at once. The embedding half of the GRU's input projection is likewise
one matmul over all steps in the forward pass.

It is used by ``RNNDecoder.forward`` when gradients are wanted and the decoder
is a one-layer Luong GRU with input feeding and :class:`AdditiveAttention`
(the Multi30k recipe); the tests check its values and gradients against the
step-by-step path.
"""

from __future__ import annotations

from typing import Any

import torch

from attnrnn.nn.gru import fold_recurrent_bias, gru_step, gru_step_backward
from attnrnn.nn.masking import masked_softmax


class LuongGRUAdditive(torch.autograd.Function):
    """See the module docstring. Shapes: B rows, T steps, S source positions.

    Forward arguments: embedded (B, T, E); hidden (B, H) initial state; memory
    (B, S, M); keys (B, S, K) projected keys; mask (B, S) bool; then the GRU's
    weight_ih (3H, E + F), weight_hh (3H, H), bias_ih, bias_hh (3H,); the
    attention's query weight (K, H) and energy weight (1, K); the attentional
    layer's weight (F, M + H) and bias (F,). Returns attentional vectors
    (B, T, F) and attention weights (B, T, S).
    """

    @staticmethod
    def forward(
        ctx: Any,
        embedded: torch.Tensor,
        hidden: torch.Tensor,
        memory: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        weight_ih: torch.Tensor,
        weight_hh: torch.Tensor,
        bias_ih: torch.Tensor,
        bias_hh: torch.Tensor,
        query_weight: torch.Tensor,
        energy_weight: torch.Tensor,
        out_weight: torch.Tensor,
        out_bias: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, E = embedded.shape
        H = hidden.size(1)
        F = out_weight.size(0)
        M = memory.size(2)
        weight_feed = weight_ih[:, E:]  # (3H, F)
        energy = energy_weight.view(-1)  # (K,)
        # The embedding half of the input projection, all steps in one matmul,
        # time-major so that each step's rows are one contiguous block.
        steps_first = embedded.transpose(0, 1).reshape(T * B, E)
        bias = fold_recurrent_bias(bias_ih, bias_hh)
        inputs = torch.addmm(bias, steps_first, weight_ih[:, :E].t()).view(T, B, 3 * H)
        hiddens = embedded.new_empty(T + 1, B, H)  # h_0 .. h_T
        hiddens[0] = hidden
        # Per-step tensors in lists: one buffer for all steps would be large enough to
        # come from a fresh mmap (page faults) at every batch.
        caches = []  # what each GRU step keeps for the backward pass
        feeds = embedded.new_empty(T + 1, B, F)  # f_{-1} = 0, f_0 .. f_{T-1}
        feeds[0] = 0.0
        feed = feeds[0]
        energies = []  # (B, S, K) per step: tanh(W_q h + k)
        weights = embedded.new_empty(T, B, memory.size(1))
        joined = embedded.new_empty(T, B, M + H)  # [c_t; h_t]
        for t in range(T):
            projected = inputs[t]  # (B, 3H); f_{-1} = 0 adds nothing at t = 0
            if t > 0:
                projected.addmm_(feed, weight_feed.t())
            current = hiddens[t + 1]
            caches.append(gru_step(projected, hiddens[t], weight_hh, bias_hh[2 * H :], out=current))
            query = current @ query_weight.t()  # (B, K)
            energies.append(torch.add(keys, query.unsqueeze(1)).tanh_())  # (B, S, K)
            scores = energies[t] @ energy  # (B, S)
            weights[t] = masked_softmax(scores, mask)
            joined[t, :, :M] = torch.bmm(weights[t].unsqueeze(1), memory).squeeze(1)
            joined[t, :, M:] = current
            feed = torch.tanh(torch.addmm(out_bias, joined[t], out_weight.t()), out=feeds[t + 1])
        parameters = (weight_ih, weight_hh, query_weight, energy_weight, out_weight)
        ctx.save_for_backward(steps_first, memory, hiddens, feeds, weights, joined, *parameters)
        ctx.caches, ctx.energies, ctx.batch = caches, energies, B
        attentional = feeds[1:].transpose(0, 1)  # (B, T, F)
        return attentional, weights.transpose(0, 1)

    @staticmethod
    def backward(
        ctx: Any, grad_attentional: torch.Tensor | None, grad_weights: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        steps_first, memory, hiddens, feeds, weights, joined, *parameters = ctx.saved_tensors
        weight_ih, weight_hh, query_weight, energy_weight, out_weight = parameters
        caches, energies, B = ctx.caches, ctx.energies, ctx.batch
        T, E = steps_first.size(0) // B, steps_first.size(1)
        H = hiddens.size(2)
        M = memory.size(2)
        weight_feed = weight_ih[:, E:]
        energy = energy_weight.view(-1)
        grad_feed_out = (
            grad_attentional.transpose(0, 1)
            if grad_attentional is not None
            else feeds.new_zeros(T, B, feeds.size(2))
        )  # (T, B, F)
        grad_hidden = hiddens.new_zeros(B, H)
        grad_feed = feeds.new_zeros(B, feeds.size(2))  # from the next step's input
        memory_t = memory.transpose(1, 2).contiguous()  # (B, M, S)
        # The gradient before the tanh, v (1 - u^2) g for the score gradients g, is
        # summed over the steps for the keys and over the source for the query. Kept
        # apart as v (sum g) - v (sum g u^2), it takes two passes over u per step (u^2,
        # and its product with g added to a running sum) and two batched
        # matrix-vector products; v is applied once at the end.
        squares = torch.empty_like(energies[0])  # (B, S, K)
        weighted_squares = torch.zeros_like(squares)  # sum_t g_t u_t^2
        score_sums = weights.new_zeros(B, weights.size(2), 1)  # sum_t g_t
        grad_energy = energy.new_zeros(energy.shape)
        pre_out = feeds.new_empty(T, B, feeds.size(2))  # gradients before the tanh
        grad_queries = feeds.new_empty(T, B, query_weight.size(0))
        grad_contexts = feeds.new_empty(T, B, M)
        grad_inputs = feeds.new_empty(T, B, 3 * H)
        grad_recurrent = feeds.new_empty(T, B, 3 * H)
        for t in reversed(range(T)):
            # f_t = tanh(W_c [c_t; h_t] + b_c)
            feed = feeds[t + 1]
            grad_f = grad_feed_out[t] + grad_feed
            pre = torch.addcmul(grad_f, grad_f * feed, feed, value=-1.0, out=pre_out[t])
            grad_context = torch.mm(pre, out_weight[:, :M], out=grad_contexts[t])  # (B, M)
            grad_hidden = torch.addmm(grad_hidden, pre, out_weight[:, M:])  # (B, H)
            # attention: weights a = softmax(v . tanh(W_q h + k)), context c = a memory
            weight = weights[t]  # (B, S)
            # (B, 1, M) x (B, M, S): a batched matrix-vector product is far slower
            # with the vector on the right.
            grad_weight = torch.bmm(grad_context.unsqueeze(1), memory_t).squeeze(1)  # (B, S)
            if grad_weights is not None:
                grad_weight = grad_weight + grad_weights[:, t]
            grad_scores = weight * (grad_weight - (weight * grad_weight).sum(1, keepdim=True))
            tanh_out = energies[t]  # (B, S, K) u
            grad_energy.addmv_(tanh_out.view(-1, tanh_out.size(2)).t(), grad_scores.view(-1))
            torch.mul(tanh_out, tanh_out, out=squares)
            weighted_squares.addcmul_(squares, grad_scores.unsqueeze(2))
            score_sums += grad_scores.unsqueeze(2)
            # sum_s v (1 - u^2) g = v (sum_s g - sum_s g u^2)
            grad_query = torch.bmm(grad_scores.unsqueeze(1), squares).squeeze(1)  # (B, K)
            grad_query = torch.sub(
                grad_scores.sum(1, keepdim=True), grad_query, out=grad_queries[t]
            ).mul_(energy)
            grad_hidden = torch.addmm(grad_hidden, grad_query, query_weight)
            # GRU: h = (1 - z) n + z h_prev, n = tanh(i_n + r h_n)
            grad_in = grad_inputs[t]
            grad_hidden = gru_step_backward(
                grad_hidden, hiddens[t], caches[t], weight_hh, grad_in, grad_recurrent[t]
            )
            grad_feed = grad_in @ weight_feed  # into f_{t-1}
        # Weight, memory and embedding gradients: a few matmuls over all steps.
        rows = T * B
        flat_in = grad_inputs.view(rows, 3 * H)
        flat_rec = grad_recurrent.view(rows, 3 * H)
        flat_pre = pre_out.view(rows, -1)
        grad_weight_ih = torch.cat(
            [flat_in.t() @ steps_first, flat_in.t() @ feeds[:T].reshape(rows, -1)], dim=1
        )
        grad_weight_hh = flat_rec.t() @ hiddens[:T].reshape(rows, H)
        grad_query_weight = grad_queries.view(rows, -1).t() @ hiddens[1:].reshape(rows, H)
        grad_out_weight = flat_pre.t() @ joined.view(rows, M + H)
        grad_memory = torch.bmm(
            weights.permute(1, 2, 0), grad_contexts.transpose(0, 1)
        )  # (B, S, T) x (B, T, M)
        grad_embedded = (flat_in @ weight_ih[:, :E]).view(T, B, E).transpose(0, 1)
        grad_bias_ih = flat_in.sum(0)
        grad_keys = torch.sub(score_sums, weighted_squares, out=weighted_squares).mul_(energy)
        return (
            grad_embedded,
            grad_hidden,
            grad_memory,
            grad_keys,
            None,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias_ih,
            # r and z: their recurrent gradient is their input gradient (gru_step_backward)
            torch.cat([grad_bias_ih[: 2 * H], flat_rec[:, 2 * H :].sum(0)]),
            grad_query_weight,
            grad_energy.view_as(energy_weight),
            grad_out_weight,
            flat_pre.sum(0),
        )
