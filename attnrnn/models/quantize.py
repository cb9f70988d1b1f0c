"""int8 dynamic quantization for CPU inference.

The linear layers and the recurrent layers (GRU, LSTM) get int8 weights and
quantize their inputs on the fly; everything else (embeddings, convolutions,
attention scores, softmax) stays fp32. PyTorch's eager-mode dynamic
quantization does the work (``torch.ao.quantization.quantize_dynamic``): it is
deprecated in favour of torchao, which attnrnn does not depend on, so the
deprecation warnings are silenced here and the benchmark records the BLEU
change (benchmarks/speed.py).
"""

from __future__ import annotations

import warnings
from typing import TypeVar, cast

import torch
from torch import nn

from attnrnn.errors import ConfigError

QUANTIZED_LAYERS = {nn.Linear, nn.GRU, nn.LSTM}
M = TypeVar("M", bound=nn.Module)


def quantize_int8(model: M) -> M:
    """An int8 copy of ``model`` for CPU inference (the original is left as it is)."""
    if any(parameter.device.type != "cpu" for parameter in model.parameters()):
        raise ConfigError("int8 quantization runs on the CPU only; load the run with device cpu")
    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(model, QUANTIZED_LAYERS, dtype=torch.qint8, inplace=False)
    return cast(M, quantized.eval())
