"""The tasks attnrnn trains, by the name a configuration's ``task:`` key gives.

A new task is one module (a :class:`~attnrnn.tasks.base.Task` and its
:class:`~attnrnn.tasks.base.TrainedModel`) and one line here.
"""

from __future__ import annotations

from attnrnn.tasks.base import Task
from attnrnn.tasks.classification import ClassificationTask

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        ClassificationTask(),
    )
}
