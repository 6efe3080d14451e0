"""What differs between task types, behind one small interface.

A task type says what its items are (audio files or texts), how its answers look in Label Studio (the
labeling template, and conversion of answers to and from Label Studio results), and how its model runs over
a stream of items. Everything else (the job directory, resuming, routing, pushing, pulling, quality,
delivery) is shared by all task types. A new task type is one new module in ``kdh_ai.tasks``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

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
        confidence_is_probability: The model's confidence is a (calibrated) probability that its answer is
            right, so ``1 - confidence`` is its expected error; routing then starts its search where the
            model's expected error equals the people's (see :func:`kdh_ai.routing.choose_threshold`).
    """

    name: ClassVar[str]
    item_kind: ClassVar[str]
    from_name: ClassVar[str]
    to_name: ClassVar[str]
    confidence_is_probability: ClassVar[bool] = False

    @abc.abstractmethod
    def label_config(self, *, labels: Iterable[str] | None = None) -> str:
        """The Label Studio labeling configuration (XML) for this task type."""

    @abc.abstractmethod
    def answer_to_result(self, answer: str) -> list[dict[str, Any]]:
        """A Label Studio ``result`` list holding ``answer`` (used for pre-annotations)."""

    @abc.abstractmethod
    def result_to_answer(self, result: list[dict[str, Any]]) -> str | None:
        """The answer held in a Label Studio ``result`` list (``None`` when it holds none)."""

    def item_errors(self, answers: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Errors and size of each answer against its reference, as an array of shape ``(n, 2)``.

        The error rate of a set of items is ``errors.sum() / size.sum()``: WER for transcription (errors =
        substitutions + deletions + insertions, size = reference words), ``1 - accuracy`` for labels. This
        default counts exact matches (size 1 per item); task types with another measure override it.

        Example:
            >>> class Labels(TaskType):
            ...     name, item_kind, from_name, to_name = "labels", "text", "label", "text"
            ...     def label_config(self, *, labels=None): return ""
            ...     def answer_to_result(self, answer): return []
            ...     def result_to_answer(self, result): return None
            >>> Labels().item_errors(["spam", "ham"], ["spam", "spam"]).tolist()
            [[0.0, 1.0], [1.0, 1.0]]
        """
        if len(answers) != len(references):
            raise ValueError(f"{len(answers)} answers but {len(references)} references")
        wrong = [float(a != r) for a, r in zip(answers, references)]
        return np.column_stack([wrong, np.ones(len(wrong))]) if wrong else np.zeros((0, 2))


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
