"""The tasks attnrnn trains, by the name a configuration's ``task:`` key gives.

A new task is one module (a :class:`~attnrnn.tasks.base.Task` and its
:class:`~attnrnn.tasks.base.TrainedModel`) and one line here.
"""

from __future__ import annotations

from attnrnn.tasks.base import Task
from attnrnn.tasks.classification import ClassificationTask
from attnrnn.tasks.language_model import LanguageModelTask
from attnrnn.tasks.speech import SpeechTask
from attnrnn.tasks.summarization import SummarizationTask
from attnrnn.tasks.translation import TranslationTask

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        ClassificationTask(),
        LanguageModelTask(),
        SpeechTask(),
        SummarizationTask(),
        TranslationTask(),
    )
}
