"""Models exported by ``attnrnn export RUN --format onnx``, run with ONNX Runtime and
numpy only: this package never imports PyTorch.

    import attnrnn.onnx
    model = attnrnn.onnx.load("exported/")
    model.predict(["a sentence"])      # translate / classify, as the PyTorch model's

``load`` reads ``onnx.json`` (what :mod:`attnrnn.onnx.export` wrote), the run's
config and its tokenizer and vocabulary files, and returns the task's predictor.
Each prediction is the same record the PyTorch model's ``record`` gives (the JSON
the CLI prints): label, probabilities, tokens and attention for a classifier;
translation, score, alternatives, tokens and attention for a translator. Search
(greedy and beam) is :mod:`attnrnn.onnx.search`, the PyTorch search rule for rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "is_exported", "load"]

MANIFEST = "onnx.json"


def is_exported(directory: str | Path) -> bool:
    """Whether ``directory`` holds an ONNX export (its ``onnx.json``)."""
    return (Path(directory) / MANIFEST).is_file()


def load(directory: str | Path, threads: int | None = None) -> Any:
    """The predictor of an exported folder: :class:`~attnrnn.onnx.runtime.OnnxClassifier`
    or :class:`~attnrnn.onnx.runtime.OnnxTranslator`. ``threads``: ONNX Runtime's
    intra-op threads (default: its own choice)."""
    from attnrnn.onnx.runtime import load_exported

    return load_exported(Path(directory), threads)
