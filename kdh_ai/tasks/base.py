"""What differs between task types, behind one small interface.

A task type says what its items are (audio files or texts), how its answers look in Label Studio (the
labeling template, and conversion of answers to and from Label Studio results), and how its model runs over
a stream of items. Everything else (the job directory, resuming, routing, pushing, pulling, quality,
delivery) is shared by all task types. A new task type is one new module in ``kdh_ai.tasks``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from kdh_ai.items import Item
from kdh_ai.records import Prediction

__all__ = ["Prelabeler", "TaskType"]


class TaskType(abc.ABC):
    """The Label Studio side of a task type.

    Attributes:
        name: The task type's name, as written in ``Prediction.task`` (``"transcription"``).
        item_kind: ``"audio"`` or ``"text"``: what :func:`kdh_ai.items.read_items` reads.
        from_name: Name of the Label Studio control tag that holds the answer.
        to_name: Name of the Label Studio object tag that shows the item.
    """

    name: ClassVar[str]
    item_kind: ClassVar[str]
    from_name: ClassVar[str]
    to_name: ClassVar[str]

    @abc.abstractmethod
    def label_config(self, *, labels: Iterable[str] | None = None) -> str:
        """The Label Studio labeling configuration (XML) for this task type."""

    @abc.abstractmethod
    def answer_to_result(self, answer: str) -> list[dict[str, Any]]:
        """A Label Studio ``result`` list holding ``answer`` (used for pre-annotations)."""

    @abc.abstractmethod
    def result_to_answer(self, result: list[dict[str, Any]]) -> str | None:
        """The answer held in a Label Studio ``result`` list (``None`` when it holds none)."""


class Prelabeler(abc.ABC):
    """A model that pre-labels items of one task type.

    Subclasses load their model in the constructor, never at import.

    Attributes:
        task: The task type's name.
        model_info: ``{"name": ..., "version": ...}`` written into every prediction.
        config_hash: Hash of the model and every option that changes its answers.
    """

    task: ClassVar[str]
    model_info: dict[str, str]
    config_hash: str

    @abc.abstractmethod
    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        """Lazily yield predictions, one list per unit of model work, one prediction per item (errors
        included), not necessarily in input order.

        The job runner writes each list to disk before asking for the next one, so a job killed at any
        moment loses at most the work in progress.
        """

    def predict(self, items: Iterable[Item]) -> Iterator[Prediction]:
        """Lazily yield one prediction per item (see :meth:`predict_batches`)."""
        for batch in self.predict_batches(items):
            yield from batch
