"""Optional dependencies, installed with the extra of the task that needs them.

``pip install attnrnn`` is enough for text classification (and language-model
pretraining); translation, speech recognition and summarization each bring their
own libraries (``attnrnn[translation]``, ``attnrnn[speech]``,
``attnrnn[summarization]``, ``attnrnn[serve]`` for ``attnrnn serve``, or
``attnrnn[all]``). :func:`require` imports one and,
when it is missing, says which extra to install instead of a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from attnrnn.errors import AttnrnnError

# module -> (the PyPI package, the extra that installs it)
PROVIDERS = {
    "sacrebleu": ("sacrebleu", "translation"),
    "soundfile": ("soundfile", "speech"),
    "scipy": ("scipy", "speech"),
    "jiwer": ("jiwer", "speech"),
    "rouge_score": ("rouge-score", "summarization"),
    "sacremoses": ("sacremoses", "summarization"),
    "gensim": ("gensim", "word2vec"),
    "captum": ("captum", "diagnostics"),
    "eflomal": ("eflomal", "alignment"),
    "sklearn": ("scikit-learn", "diagnostics"),
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "multipart": ("python-multipart", "serve"),
    "onnx": ("onnx", "onnx"),
    "onnxscript": ("onnxscript", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
}


class MissingDependency(AttnrnnError):
    """An optional library that this use of attnrnn needs is not installed."""


def require(module: str) -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingDependency` naming the
    package and the attnrnn extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package, extra = PROVIDERS.get(top, (top, "all"))
        raise MissingDependency(
            f"this needs the {package} package: pip install 'attnrnn[{extra}]'"
        ) from None
