"""attnrnn: attention-based recurrent neural networks in PyTorch.

``attnrnn.load(RUN)`` gives a trained model (a run directory or an exported bundle)
ready to use from Python; see docs/api.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from attnrnn.tasks.base import TrainedModel

__all__ = ["__version__", "export", "load", "train"]


def load(
    run: str | Path,
    device: str = "auto",
    int8: bool = False,
    checkpoint: str = "best",
    precision: str = "fp32",
) -> TrainedModel:
    """A trained model from a run directory or an exported bundle; the task (and so the
    methods: ``predict``, ``translate``, ``transcribe``, ``summarize``) comes from its
    configuration. A folder of ``attnrnn export --format onnx`` gives the ONNX Runtime
    predictor of :mod:`attnrnn.onnx` (its predictions are the records ``record`` gives).

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...
        int8: int8 dynamic quantization for CPU inference (translation).
        checkpoint: ``"best"`` (default) or ``"last"``.
        precision: ``"fp32"`` (default) or ``"bf16"``: decoding's matmuls in bfloat16
            (translation), where the hardware has native bfloat16; elsewhere fp32, with
            a warning line on standard error.
    """
    import attnrnn.onnx

    if attnrnn.onnx.is_exported(run):
        return attnrnn.onnx.load(run)
    from attnrnn.tasks.runs import load as load_run

    return load_run(run, device=device, int8=int8, checkpoint_name=checkpoint, precision=precision)


def train(config: Any, run: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train a run configuration (a path to YAML, or a config object) into ``run``;
    return the best checkpoint's dev and test scores."""
    from attnrnn.tasks.runs import read_config
    from attnrnn.tasks.runs import train as train_run

    if isinstance(config, str | Path):
        config = read_config(config)
    return train_run(config, run, resume=resume)


def export(run: str | Path, output: str | Path) -> Path:
    """Write an inference-only bundle of ``run`` (weights, assets, config, model card)."""
    from attnrnn.tasks.runs import export as export_run

    return export_run(run, output)
