"""Reusable attention and recurrent building blocks, usable on their own like ``torch.nn``.

``hand_written(False)`` (:mod:`attnrnn.nn.fast_paths`) runs training through autograd
instead of the hand-written fast paths.
"""

from attnrnn.nn.attention import (
    ATTENTIONS,
    AdditiveAttention,
    Attention,
    DotAttention,
    GeneralAttention,
    MultiHeadAttention,
    ScaledDotAttention,
    build_attention,
)
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.encoders import EncoderOutput, RNNEncoder
from attnrnn.nn.fast_paths import hand_written
from attnrnn.nn.masking import lengths_to_mask, masked_softmax
from attnrnn.nn.pooling import AttentionPooling, PoolingOutput

__all__ = [
    "ATTENTIONS",
    "AdditiveAttention",
    "Attention",
    "AttentionPooling",
    "DotAttention",
    "Dropout",
    "EncoderOutput",
    "GeneralAttention",
    "MultiHeadAttention",
    "PoolingOutput",
    "RNNEncoder",
    "ScaledDotAttention",
    "build_attention",
    "hand_written",
    "lengths_to_mask",
    "masked_softmax",
]
