"""Annotator quality against gold: accuracy with a Wilson 95 % interval, and WER.

Gold items are tasks whose true answer is known (expert labels, or a client's
reference). :func:`gold_accuracy` scores every annotator on the gold tasks they
did; :func:`annotator_wer` does the same for transcripts.

The interval is Wilson's score interval (Wilson, 1927, "Probable inference, the law
of succession, and statistical inference", JASA 22(158)); it stays inside [0, 1] and
behaves well for small ``n`` and accuracies near 0 or 1, unlike the normal
approximation. It equals ``statsmodels``' ``proportion_confint(method="wilson")``.

Example:
    >>> low, high = wilson_interval(9, 10)
    >>> round(low, 3), round(high, 3)
    (0.596, 0.982)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from scipy.stats import norm

from ._common import (
    InsufficientDataError,
    check_columns,
    check_labels_in_schema,
    check_no_missing,
    preview,
    to_series,
)
from .text import DEFAULT_NORMALIZER, Normalizer, get_normalizer, item_error_rates

__all__ = [
    "AccuracyEstimate",
    "AnnotatorWER",
    "GoldAccuracy",
    "annotator_wer",
    "gold_accuracy",
    "wilson_interval",
]

logger = logging.getLogger(__name__)


def wilson_interval(correct: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``correct / n``.

    Args:
        correct: Number of successes (0 <= correct <= n).
        n: Number of trials (n >= 1).
        confidence: Coverage of the interval, in (0, 1). Default 0.95.

    Returns:
        ``(low, high)``, both within [0, 1].

    Raises:
        ValueError: If the counts are impossible or ``confidence`` is outside (0, 1).
        InsufficientDataError: If ``n == 0`` (no trials: no interval).

    Example:
        >>> wilson_interval(0, 5)[0]
        0.0
        >>> [round(x, 4) for x in wilson_interval(43, 50, confidence=0.9)]
        [0.7608, 0.9223]
    """
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if n == 0:
        raise InsufficientDataError("no trials (n == 0): an interval needs at least one item")
    if n < 0 or correct < 0 or correct > n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct!r}, n={n!r}")
    z = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    p = correct / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class AccuracyEstimate:
    """An accuracy with its count and Wilson interval.

    Attributes:
        n: Judgments scored against gold.
        correct: Judgments equal to gold.
        accuracy: ``correct / n``.
        ci_low: Lower bound of the Wilson interval.
        ci_high: Upper bound of the Wilson interval.
        confidence: Coverage of the interval (e.g. 0.95).
    """

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    confidence: float

    @classmethod
    def from_counts(cls, correct: int, n: int, *, confidence: float = 0.95) -> AccuracyEstimate:
        """Build an estimate from counts (``n >= 1``).

        Example:
            >>> AccuracyEstimate.from_counts(8, 10).accuracy
            0.8
        """
        low, high = wilson_interval(correct, n, confidence=confidence)
        return cls(int(n), int(correct), correct / n, low, high, confidence)


@dataclass(frozen=True)
class GoldAccuracy:
    """Accuracy on gold, per annotator and overall.

    Attributes:
        per_annotator: DataFrame indexed by ``worker`` with ``n``, ``correct``,
            ``accuracy``, ``ci_low``, ``ci_high``; only annotators with at least
            one gold judgment; sorted by worker.
        overall: All gold judgments pooled (each judgment counts once; the
            interval ignores that judgments cluster by annotator, so it is narrower
            than a per-annotator bootstrap would be).
        without_gold: Annotators who did no gold task (no accuracy for them).
        n_gold_tasks: Gold tasks that received at least one judgment.
    """

    per_annotator: pd.DataFrame
    overall: AccuracyEstimate
    without_gold: tuple[Hashable, ...]
    n_gold_tasks: int

    def for_annotator(self, worker: Hashable) -> AccuracyEstimate:
        """The estimate for one annotator.

        Raises:
            ValueError: If ``worker`` is unknown (the message lists known annotators).
            InsufficientDataError: If ``worker`` did no gold task.
        """
        if worker in self.without_gold:
            raise InsufficientDataError(
                f"annotator {worker!r} did no gold task; their accuracy is unknown. "
                "Route some gold tasks to them"
            )
        if worker not in self.per_annotator.index:
            known = list(self.per_annotator.index) + list(self.without_gold)
            raise ValueError(f"unknown annotator {worker!r}; known annotators: {preview(known, 10)}")
        row = self.per_annotator.loc[worker]
        return AccuracyEstimate(
            int(row["n"]),
            int(row["correct"]),
            float(row["accuracy"]),
            float(row["ci_low"]),
            float(row["ci_high"]),
            self.overall.confidence,
        )


def _gold_series(gold: pd.Series | Mapping, *, what: str = "gold") -> pd.Series:
    series = to_series(gold, name="gold", what=what)
    if series.empty:
        raise InsufficientDataError(f"{what} is empty: there are no gold tasks to score against")
    if not series.index.is_unique:
        raise ValueError(f"{what} has duplicate tasks: {preview(series.index[series.index.duplicated()])}")
    missing = series.index[series.isna()]
    if len(missing):
        raise ValueError(f"{what} has missing values for tasks {preview(missing)}; drop them")
    return series


def gold_accuracy(
    df: pd.DataFrame,
    gold: pd.Series | Mapping[Hashable, Hashable],
    *,
    confidence: float = 0.95,
    labels: Sequence[Hashable] | None = None,
) -> GoldAccuracy:
    """Accuracy of each annotator (and of all judgments) on gold tasks.

    Args:
        df: Judgments with columns ``task``, ``worker``, ``label``.
        gold: True label per task (Series indexed by task, or dict). Tasks of ``df``
            without gold are ignored.
        confidence: Coverage of the Wilson intervals (default 0.95).
        labels: Optional label schema; labels or gold outside it raise ValueError.

    Returns:
        A :class:`GoldAccuracy`.

    Raises:
        ValueError: On malformed input or labels outside the schema.
        InsufficientDataError: If ``gold`` is empty or no judged task has gold.

    Example:
        >>> df = pd.DataFrame({"task": [1, 2, 3, 1, 2, 4],
        ...                    "worker": ["ann", "ann", "ann", "bob", "bob", "cy"],
        ...                    "label": ["x", "y", "x", "x", "x", "y"]})
        >>> report = gold_accuracy(df, {1: "x", 2: "y", 3: "y"})
        >>> report.per_annotator[["n", "correct", "accuracy"]]
                n  correct  accuracy
        worker                      
        ann     3        2  0.666667
        bob     2        1  0.500000
        >>> report.without_gold, report.overall.accuracy
        (('cy',), 0.6)
        >>> round(report.for_annotator("bob").ci_low, 3)
        0.095
    """
    check_columns(df, ("task", "worker", "label"))
    check_no_missing(df, ("task", "worker", "label"))
    gold_series = _gold_series(gold)
    check_labels_in_schema(df["label"], labels, what="label", tasks=df["task"])
    check_labels_in_schema(gold_series, labels, what="gold")
    on_gold = df[df["task"].isin(gold_series.index)]
    if on_gold.empty:
        raise InsufficientDataError(
            f"none of the {df['task'].nunique()} judged task(s) has a gold label "
            f"(gold covers {len(gold_series)} other task(s)); add gold tasks to the batch"
        )
    correct = on_gold["label"].to_numpy() == gold_series.loc[on_gold["task"]].to_numpy()
    scored = pd.DataFrame({"worker": on_gold["worker"].to_numpy(), "correct": correct})
    grouped = scored.groupby("worker", sort=True)["correct"].agg(["size", "sum"])
    rows = []
    for worker, (n, hits) in grouped.iterrows():
        estimate = AccuracyEstimate.from_counts(int(hits), int(n), confidence=confidence)
        rows.append((worker, estimate.n, estimate.correct, estimate.accuracy, estimate.ci_low, estimate.ci_high))
    per_annotator = pd.DataFrame(
        rows, columns=["worker", "n", "correct", "accuracy", "ci_low", "ci_high"]
    ).set_index("worker")
    all_workers = pd.unique(df["worker"])
    without = tuple(w for w in all_workers if w not in per_annotator.index)
    overall = AccuracyEstimate.from_counts(int(correct.sum()), len(correct), confidence=confidence)
    return GoldAccuracy(per_annotator, overall, without, int(on_gold["task"].nunique()))


@dataclass(frozen=True)
class AnnotatorWER:
    """Word error rate of each annotator against reference transcripts.

    Attributes:
        per_annotator: DataFrame indexed by ``worker`` with ``n`` (gold items),
            ``reference_words``, ``errors`` and ``wer`` (errors / reference words,
            over that annotator's items), sorted by worker.
        overall_wer: Errors / reference words over all gold transcripts.
        n: Transcripts scored.
        without_gold: Annotators who transcribed no item with a reference.
    """

    per_annotator: pd.DataFrame
    overall_wer: float
    n: int
    without_gold: tuple[Hashable, ...]


def annotator_wer(
    df: pd.DataFrame,
    references: pd.Series | Mapping[Hashable, str],
    *,
    normalizer: Normalizer = DEFAULT_NORMALIZER,
) -> AnnotatorWER:
    """WER of each annotator's transcripts against gold references.

    Args:
        df: Transcripts with columns ``task``, ``worker``, ``text``.
        references: Reference transcript per task (Series indexed by task, or dict).
        normalizer: Normalizer for both sides (default ``"english"``; ``"basic"``
            for other languages).

    Returns:
        An :class:`AnnotatorWER`.

    Raises:
        ValueError: On malformed input or an empty normalized reference (named).
        InsufficientDataError: If no transcribed task has a reference.

    Example:
        >>> df = pd.DataFrame({"task": ["c1", "c1", "c2"], "worker": ["ann", "bob", "ann"],
        ...                    "text": ["Hello there world", "hello world", "good morning"]})
        >>> result = annotator_wer(df, {"c1": "hello there world", "c2": "good morning"})
        >>> result.per_annotator
                n  reference_words  errors       wer
        worker                                      
        ann     2                5       0  0.000000
        bob     1                3       1  0.333333
        >>> result.overall_wer
        0.125
    """
    check_columns(df, ("task", "worker", "text"))
    check_no_missing(df, ("task", "worker", "text"))
    get_normalizer(normalizer)  # validate the name early
    refs = _gold_series(references, what="references")
    on_gold = df[df["task"].isin(refs.index)].reset_index(drop=True)
    if on_gold.empty:
        raise InsufficientDataError(
            f"none of the {df['task'].nunique()} transcribed task(s) has a reference; "
            "add reference transcripts for some of them"
        )
    items = item_error_rates(
        pd.Series(refs.loc[on_gold["task"]].to_numpy(), index=on_gold.index),
        pd.Series(on_gold["text"].to_numpy(), index=on_gold.index),
        normalizer=normalizer,
    )
    items["worker"] = on_gold["worker"].to_numpy()
    grouped = items.groupby("worker", sort=True).agg(
        n=("errors", "size"), reference_words=("reference_length", "sum"), errors=("errors", "sum")
    )
    grouped["wer"] = grouped["errors"] / grouped["reference_words"]
    without = tuple(w for w in pd.unique(df["worker"]) if w not in grouped.index)
    overall = float(items["errors"].sum() / items["reference_length"].sum())
    return AnnotatorWER(grouped, overall, len(items), without)
