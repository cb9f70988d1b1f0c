"""The tasks attnrnn trains, by the name a configuration's ``task:`` key gives.

A new task is one module (a :class:`~attnrnn.tasks.base.Task` and its
:class:`~attnrnn.tasks.base.TrainedModel`) and one line here.

``TASKS`` is built on first use, so that the torch-free modules of this package
(:mod:`attnrnn.tasks.text`) can be imported without PyTorch (the ONNX runtime,
:mod:`attnrnn.onnx`, reads the same assets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnrnn.tasks.base import Task

    TASKS: dict[str, Task]

_tasks: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name != "TASKS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _tasks:
        from attnrnn.tasks.classification import ClassificationTask
        from attnrnn.tasks.language_model import LanguageModelTask
        from attnrnn.tasks.speech import SpeechTask
        from attnrnn.tasks.summarization import SummarizationTask
        from attnrnn.tasks.translation import TranslationTask

        for task in (
            ClassificationTask(),
            LanguageModelTask(),
            SpeechTask(),
            SummarizationTask(),
            TranslationTask(),
        ):
            _tasks[task.name] = task
    return _tasks
