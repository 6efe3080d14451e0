"""Classification quality: accuracy, per-class precision/recall/F1, confusion matrix.

The numbers come from scikit-learn (Pedregosa et al., 2011, "Scikit-learn: Machine
Learning in Python", JMLR 12). This module adds input checks and the alignment of
predictions to gold by task id.

``y_true`` and ``y_pred`` are either two equally long sequences, or two pandas
Series indexed by task. With Series, every task of ``y_true`` (the gold) must have
a prediction; predictions for tasks without gold are ignored (that is the usual
case: gold covers a sample of the batch).

Example:
    >>> accuracy(["cat", "dog", "dog"], ["cat", "dog", "cat"])
    0.6666666666666666
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ._common import InsufficientDataError, check_labels_in_schema, preview

__all__ = [
    "ClassificationReport",
    "accuracy",
    "classification_report",
    "confusion_matrix",
]

logger = logging.getLogger(__name__)


def _aligned(
    y_true: Any, y_pred: Any, labels: Sequence[Hashable] | None
) -> tuple[pd.Series, pd.Series]:
    if isinstance(y_true, pd.Series) and isinstance(y_pred, pd.Series):
        if not y_pred.index.is_unique:
            raise ValueError("y_pred has duplicate task ids in its index")
        missing = y_true.index.difference(y_pred.index)
        if len(missing):
            raise ValueError(
                f"{len(missing)} gold task(s) have no prediction: {preview(missing)}; "
                "predict them or drop them from y_true"
            )
        extra = len(y_pred.index.difference(y_true.index))
        if extra:
            logger.debug("ignoring %d predictions for tasks without gold", extra)
        true = y_true
        pred = y_pred.loc[y_true.index]
    else:
        true = pd.Series(list(y_true), dtype=object)
        pred = pd.Series(list(y_pred), dtype=object)
        if len(true) != len(pred):
            raise ValueError(
                f"y_true has {len(true)} items but y_pred has {len(pred)}; they must match"
            )
    if len(true) == 0:
        raise InsufficientDataError("no items to evaluate: y_true is empty")
    for name, values in (("y_true", true), ("y_pred", pred)):
        missing_values = values.index[values.isna()]
        if len(missing_values):
            raise ValueError(
                f"{name} has missing labels at {preview(missing_values)}; "
                "drop those items or label them"
            )
    check_labels_in_schema(true, labels, what="y_true")
    check_labels_in_schema(pred, labels, what="y_pred")
    return true, pred


def _label_list(true: pd.Series, pred: pd.Series, labels: Sequence[Hashable] | None) -> list:
    if labels is not None:
        return list(labels)
    seen = pd.unique(pd.concat([true, pred], ignore_index=True))
    try:
        return sorted(seen)
    except TypeError:
        return list(seen)


def accuracy(
    y_true: Sequence[Hashable] | pd.Series,
    y_pred: Sequence[Hashable] | pd.Series,
    *,
    labels: Sequence[Hashable] | None = None,
) -> float:
    """Share of items whose predicted label equals the gold label.

    Args:
        y_true: Gold labels (sequence, or Series indexed by task).
        y_pred: Predicted labels (same length, or Series indexed by task).
        labels: Optional label schema; any other value raises ValueError.

    Returns:
        Accuracy in [0, 1].

    Raises:
        ValueError: On mismatched input, missing labels or labels outside the schema.
        InsufficientDataError: If there are no items.

    Example:
        >>> gold = pd.Series({"t1": 1, "t2": 0})
        >>> pred = pd.Series({"t2": 0, "t1": 0, "t3": 1})   # t3 has no gold: ignored
        >>> accuracy(gold, pred)
        0.5
    """
    true, pred = _aligned(y_true, y_pred, labels)
    return float(skm.accuracy_score(true.to_numpy(), pred.to_numpy()))


def confusion_matrix(
    y_true: Sequence[Hashable] | pd.Series,
    y_pred: Sequence[Hashable] | pd.Series,
    *,
    labels: Sequence[Hashable] | None = None,
) -> pd.DataFrame:
    """Confusion matrix as a DataFrame: rows are gold labels, columns predictions.

    Args:
        y_true: Gold labels.
        y_pred: Predicted labels.
        labels: Label schema and order of rows/columns (default: sorted labels seen).

    Returns:
        Integer DataFrame with ``index.name == "true"`` and ``columns.name == "predicted"``.

    Raises:
        ValueError: On mismatched input or labels outside the schema.
        InsufficientDataError: If there are no items.

    Example:
        >>> confusion_matrix(["a", "a", "b"], ["a", "b", "b"])
        predicted  a  b
        true           
        a          1  1
        b          0  1
    """
    true, pred = _aligned(y_true, y_pred, labels)
    order = _label_list(true, pred, labels)
    matrix = skm.confusion_matrix(true.to_numpy(), pred.to_numpy(), labels=order)
    return pd.DataFrame(
        matrix,
        index=pd.Index(order, name="true"),
        columns=pd.Index(order, name="predicted"),
    )


@dataclass(frozen=True)
class ClassificationReport:
    """Accuracy, per-class metrics and confusion matrix of one evaluation.

    Attributes:
        n: Number of evaluated items.
        accuracy: Share of correct items.
        per_class: DataFrame indexed by label with ``precision``, ``recall``, ``f1``,
            ``support`` (gold items of the class) and ``predicted`` (items predicted
            as the class). A class that is never predicted has precision 0.0 and a
            class absent from gold has recall 0.0 (scikit-learn's
            ``zero_division=0``); ``support``/``predicted`` show when that happened.
        macro_f1: Unweighted mean F1 over the classes.
        confusion: The confusion matrix (see :func:`confusion_matrix`).
    """

    n: int
    accuracy: float
    per_class: pd.DataFrame
    macro_f1: float
    confusion: pd.DataFrame


def classification_report(
    y_true: Sequence[Hashable] | pd.Series,
    y_pred: Sequence[Hashable] | pd.Series,
    *,
    labels: Sequence[Hashable] | None = None,
) -> ClassificationReport:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true: Gold labels (sequence, or Series indexed by task).
        y_pred: Predicted labels (sequence, or Series indexed by task).
        labels: Label schema and order (default: sorted labels seen).

    Returns:
        A :class:`ClassificationReport`.

    Raises:
        ValueError: On mismatched input or labels outside the schema.
        InsufficientDataError: If there are no items.

    Example:
        >>> report = classification_report(["spam", "ham", "ham", "spam"],
        ...                                ["spam", "ham", "spam", "spam"])
        >>> report.accuracy
        0.75
        >>> report.per_class.round(3)
               precision  recall     f1  support  predicted
        label                                              
        ham        1.000     0.5  0.667        2          1
        spam       0.667     1.0  0.800        2          3
    """
    true, pred = _aligned(y_true, y_pred, labels)
    order = _label_list(true, pred, labels)
    t, p = true.to_numpy(), pred.to_numpy()
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        t, p, labels=order, zero_division=0.0
    )
    predicted = np.array([(pred == label).sum() for label in order], dtype=int)
    per_class = pd.DataFrame(
        {
            "precision": precision.astype(float),
            "recall": recall.astype(float),
            "f1": f1.astype(float),
            "support": support.astype(int),
            "predicted": predicted,
        },
        index=pd.Index(order, name="label"),
    )
    matrix = skm.confusion_matrix(t, p, labels=order)
    return ClassificationReport(
        n=len(true),
        accuracy=float(skm.accuracy_score(t, p)),
        per_class=per_class,
        macro_f1=float(np.mean(f1)) if len(order) else 0.0,
        confusion=pd.DataFrame(
            matrix,
            index=pd.Index(order, name="true"),
            columns=pd.Index(order, name="predicted"),
        ),
    )
