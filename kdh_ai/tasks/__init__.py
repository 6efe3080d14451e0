"""Task types: what differs between transcription and classification (see :mod:`kdh_ai.tasks.base`)."""

from __future__ import annotations

from kdh_ai.errors import InvalidInputError
from kdh_ai.tasks.base import Prelabeler, TaskType

__all__ = ["Prelabeler", "TaskType", "get_task"]


def get_task(name: str) -> TaskType:
    """The task type called ``name``.

    Raises:
        ValueError: Unknown task type (the message lists the valid ones).
    """
    if name == "transcription":
        from kdh_ai.tasks.transcription import TranscriptionTask

        return TranscriptionTask()
    if name == "classification":
        from kdh_ai.tasks.classification import ClassificationTask

        return ClassificationTask()
    raise InvalidInputError(f"unknown task type {name!r}; valid: 'transcription', 'classification'")
