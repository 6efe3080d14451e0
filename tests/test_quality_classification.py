"""kdh_ai.quality.classification: accuracy, per-class P/R/F1, confusion matrix vs scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from kdh_ai.quality import (
    InsufficientDataError,
    accuracy,
    classification_report,
    confusion_matrix,
)


def _random_labels(seed: int, n: int = 300) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    classes = np.array(["negative", "neutral", "positive"])
    true = rng.choice(classes, size=n, p=[0.5, 0.2, 0.3])
    noisy = rng.random(n) < 0.3
    pred = np.where(noisy, rng.choice(classes, size=n), true)
    return true.tolist(), pred.tolist()


def test_report_equals_scikit_learn() -> None:
    true, pred = _random_labels(0)
    report = classification_report(true, pred)
    assert report.n == 300
    assert report.accuracy == pytest.approx(skm.accuracy_score(true, pred))
    p, r, f, s = skm.precision_recall_fscore_support(true, pred, labels=["negative", "neutral", "positive"])
    np.testing.assert_allclose(report.per_class["precision"], p)
    np.testing.assert_allclose(report.per_class["recall"], r)
    np.testing.assert_allclose(report.per_class["f1"], f)
    assert report.per_class["support"].tolist() == s.tolist()
    assert report.macro_f1 == pytest.approx(skm.f1_score(true, pred, average="macro"))
    np.testing.assert_array_equal(report.confusion.to_numpy(), skm.confusion_matrix(true, pred))
    assert report.per_class["predicted"].sum() == 300


def test_series_are_aligned_on_gold_tasks() -> None:
    gold = pd.Series({"t1": "a", "t2": "b", "t3": "a"})
    pred = pd.Series({"t3": "a", "t9": "b", "t2": "a", "t1": "a"})  # shuffled, plus a task without gold
    assert accuracy(gold, pred) == pytest.approx(2 / 3)
    matrix = confusion_matrix(gold, pred)
    assert matrix.loc["b", "a"] == 1 and matrix.to_numpy().sum() == 3


def test_missing_prediction_for_a_gold_task_is_named() -> None:
    with pytest.raises(ValueError, match="1 gold task\\(s\\) have no prediction: 't2'"):
        accuracy(pd.Series({"t1": 1, "t2": 0}), pd.Series({"t1": 1}))


def test_labels_outside_the_schema() -> None:
    with pytest.raises(ValueError, match="y_pred has 1 value\\(s\\) outside the label schema: 'maybe'"):
        accuracy(["yes", "no"], ["yes", "maybe"], labels=["yes", "no"])


def test_schema_fixes_order_and_keeps_unused_classes() -> None:
    report = classification_report(["b", "b"], ["b", "a"], labels=["c", "b", "a"])
    assert list(report.per_class.index) == ["c", "b", "a"]
    assert report.per_class.loc["c"].to_dict() == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}
    assert report.confusion.loc["b", "a"] == 1


def test_bad_input() -> None:
    with pytest.raises(InsufficientDataError, match="y_true is empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="y_pred has missing labels"):
        accuracy([1, 2], [1, None])
