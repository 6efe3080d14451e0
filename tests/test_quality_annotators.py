"""kdh_ai.quality.annotators: Wilson interval, gold accuracy per annotator, annotator WER."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from kdh_ai.quality import (
    InsufficientDataError,
    annotator_wer,
    gold_accuracy,
    wer,
    wilson_interval,
)


@pytest.mark.parametrize(("correct", "n"), [(0, 1), (1, 1), (0, 7), (7, 7), (3, 10), (431, 500), (1, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_equals_statsmodels(correct: int, n: int, confidence: float) -> None:
    expected = proportion_confint(correct, n, alpha=1 - confidence, method="wilson")
    np.testing.assert_allclose(wilson_interval(correct, n, confidence=confidence), expected, atol=1e-12)


def test_wilson_bad_input() -> None:
    with pytest.raises(InsufficientDataError, match="n == 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="need 0 <= correct <= n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        wilson_interval(1, 2, confidence=95)


@pytest.fixture()
def judgments() -> pd.DataFrame:
    return pd.DataFrame({
        "task": ["g1", "g2", "g3", "g1", "g2", "x1", "x2"],
        "worker": ["ann", "ann", "ann", "bob", "bob", "bob", "cy"],
        "label": ["spam", "ham", "ham", "ham", "ham", "spam", "ham"]})


GOLD = {"g1": "spam", "g2": "ham", "g3": "spam"}


def test_gold_accuracy_per_annotator_and_overall(judgments: pd.DataFrame) -> None:
    report = gold_accuracy(judgments, GOLD)
    assert report.per_annotator.loc["ann", ["n", "correct"]].tolist() == [3, 2]
    assert report.per_annotator.loc["bob", ["n", "correct"]].tolist() == [2, 1]
    assert report.overall.n == 5 and report.overall.correct == 3
    assert report.overall.accuracy == pytest.approx(0.6)
    assert (report.overall.ci_low, report.overall.ci_high) == pytest.approx(wilson_interval(3, 5))
    assert report.n_gold_tasks == 3
    ann = report.for_annotator("ann")
    assert ann.accuracy == pytest.approx(2 / 3)
    assert (ann.ci_low, ann.ci_high) == pytest.approx(proportion_confint(2, 3, method="wilson"))


def test_annotator_without_gold_and_unknown_annotator(judgments: pd.DataFrame) -> None:
    report = gold_accuracy(judgments, GOLD)
    assert report.without_gold == ("cy",)
    assert "cy" not in report.per_annotator.index
    with pytest.raises(InsufficientDataError, match="annotator 'cy' did no gold task"):
        report.for_annotator("cy")
    with pytest.raises(ValueError, match="unknown annotator 'dan'; known annotators: 'ann', 'bob', 'cy'"):
        report.for_annotator("dan")


def test_no_gold_is_explicit(judgments: pd.DataFrame) -> None:
    with pytest.raises(InsufficientDataError, match="none of the 5 judged task\\(s\\) has a gold label"):
        gold_accuracy(judgments, {"other": "spam"})
    with pytest.raises(InsufficientDataError, match="gold is empty"):
        gold_accuracy(judgments, {})


def test_labels_outside_schema(judgments: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="label has 2 value\\(s\\) outside the label schema: 'spam' at tasks 'g1', 'x1'"):
        gold_accuracy(judgments, GOLD, labels=["ham", "eggs"])
    with pytest.raises(ValueError, match="gold has 1 value\\(s\\) outside the label schema: 'eggs'"):
        gold_accuracy(judgments, {"g1": "eggs"}, labels=["ham", "spam"])


def test_missing_label_is_named(judgments: pd.DataFrame) -> None:
    judgments.loc[2, "label"] = None
    with pytest.raises(ValueError, match="missing 'label': rows 2 \\(tasks 'g3'\\)"):
        gold_accuracy(judgments, GOLD)


def test_annotator_wer_matches_corpus_wer() -> None:
    refs = {"c1": "the quick brown fox", "c2": "jumps over the lazy dog", "c3": "hello"}
    df = pd.DataFrame({
        "task": ["c1", "c2", "c1", "c2", "c9"],
        "worker": ["ann", "ann", "bob", "bob", "cy"],
        "text": ["The quick brown fox.", "jumps over a lazy dog", "the quick fox", "jumps over the lazy dog", "hi"]})
    result = annotator_wer(df, refs)
    ann = wer([refs["c1"], refs["c2"]], ["The quick brown fox.", "jumps over a lazy dog"])
    bob = wer([refs["c1"], refs["c2"]], ["the quick fox", "jumps over the lazy dog"])
    assert result.per_annotator.loc["ann", "wer"] == pytest.approx(ann)
    assert result.per_annotator.loc["bob", "wer"] == pytest.approx(bob)
    assert result.per_annotator["reference_words"].tolist() == [9, 9]
    assert result.overall_wer == pytest.approx(2 / 18)
    assert result.n == 4 and result.without_gold == ("cy",)
    with pytest.raises(InsufficientDataError, match="has a reference"):
        annotator_wer(df, {"zz": "text"})
    with pytest.raises(ValueError, match="choose one of: 'english', 'basic', 'none'"):
        annotator_wer(df, refs, normalizer="klingon")
