"""Human effort: the real-time factor (RTF) of human transcription.

Label Studio records for every annotation a ``lead_time``: the seconds the
annotator spent on it. For audio, effort is best compared as a real-time factor::

    RTF = seconds of human work / seconds of audio

(an RTF of 4 means four minutes of work per minute of audio). :func:`real_time_factor`
reports the pooled RTF (total work over total audio, robust to many short clips)
and the median per-annotation RTF (robust to an annotator who left the tab open).
:func:`compare_prelabel_effort` compares annotations made with and without a model
pre-label, with a two-sided Mann-Whitney U test on the per-annotation RTFs (Mann &
Whitney, 1947); pre-labels should lower the RTF.

Input is one row per annotation, with columns ``task``, ``lead_time`` (seconds)
and either a ``duration`` column (seconds of audio) or a ``durations`` mapping
``task -> seconds``. A missing ``lead_time`` (older Label Studio exports lack it)
is skipped and counted in ``n_missing_lead_time``; a negative one, a task without
duration or a non-positive duration raise ValueError naming the task.

Example:
    >>> annotations = pd.DataFrame({"task": ["c1", "c2"], "lead_time": [40.0, 90.0]})
    >>> real_time_factor(annotations, durations={"c1": 10.0, "c2": 20.0}).rtf
    4.333333333333333
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from ._common import InsufficientDataError, check_columns, preview, to_series

__all__ = [
    "EffortComparison",
    "EffortPerMinute",
    "RealTimeFactor",
    "compare_prelabel_effort",
    "effort_per_audio_minute",
    "real_time_factor",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealTimeFactor:
    """Human work relative to audio length.

    Attributes:
        n: Annotations counted (with a lead time).
        work_seconds: Sum of their lead times.
        audio_seconds: Sum of their audio durations (a clip done twice counts twice).
        rtf: ``work_seconds / audio_seconds``.
        median_rtf: Median of the per-annotation ``lead_time / duration``.
        n_missing_lead_time: Annotations skipped because their lead time is missing.
    """

    n: int
    work_seconds: float
    audio_seconds: float
    rtf: float
    median_rtf: float
    n_missing_lead_time: int = 0


@dataclass(frozen=True)
class EffortComparison:
    """Effort with and without model pre-labels.

    Attributes:
        with_prelabels: RTF of the annotations that started from a pre-label.
        without_prelabels: RTF of the annotations made from scratch.
        speedup: ``without_prelabels.rtf / with_prelabels.rtf`` (> 1: pre-labels help).
        p_value: Two-sided Mann-Whitney U p-value on per-annotation RTFs.
    """

    with_prelabels: RealTimeFactor
    without_prelabels: RealTimeFactor
    speedup: float
    p_value: float


def _prepare(df: pd.DataFrame, durations: pd.Series | Mapping[Hashable, float] | None) -> pd.DataFrame:
    """Return rows with float columns lead_time, duration and rtf (missing lead times dropped)."""
    check_columns(df, ("task", "lead_time"))
    if df["task"].isna().any():
        raise ValueError(f"df has a missing 'task' in rows {preview(df.index[df['task'].isna()])}")
    data = df.copy()
    if durations is not None:
        table = to_series(durations, name="duration", what="durations")
        unknown = pd.Index(pd.unique(data["task"])).difference(table.index)
        if len(unknown):
            raise ValueError(
                f"no audio duration for task(s) {preview(unknown)}; add them to durations"
            )
        data["duration"] = table.loc[data["task"]].to_numpy()
    elif "duration" not in data.columns:
        raise ValueError(
            "the audio length is unknown: give df a 'duration' column (seconds) "
            "or pass durations={task: seconds}"
        )
    lead = pd.to_numeric(data["lead_time"], errors="coerce")
    not_numeric = data.index[lead.isna() & data["lead_time"].notna()]
    if len(not_numeric):
        raise ValueError(
            f"lead_time is not a number for tasks {preview(data.loc[not_numeric, 'task'].tolist())}"
        )
    duration = pd.to_numeric(data["duration"], errors="coerce")
    bad_duration = data.index[~(duration > 0)]
    if len(bad_duration):
        raise ValueError(
            "audio duration must be a positive number of seconds; tasks "
            f"{preview(data.loc[bad_duration, 'task'].tolist())} have "
            f"{preview(data.loc[bad_duration, 'duration'].tolist())}"
        )
    negative = data.index[lead < 0]
    if len(negative):
        raise ValueError(
            f"lead_time is negative for tasks {preview(data.loc[negative, 'task'].tolist())}; "
            "it must be seconds of work (>= 0)"
        )
    data["lead_time"] = lead.astype(float)
    data["duration"] = duration.astype(float)
    data["rtf"] = data["lead_time"] / data["duration"]
    return data


def _summarize(rows: pd.DataFrame, *, what: str) -> RealTimeFactor:
    timed = rows[rows["lead_time"].notna()]
    missing = len(rows) - len(timed)
    if timed.empty:
        raise InsufficientDataError(
            f"no {what} with a lead time ({missing} annotation(s) lack one); "
            "the real-time factor needs timed annotations"
        )
    work = float(timed["lead_time"].sum())
    audio = float(timed["duration"].sum())
    return RealTimeFactor(
        n=len(timed),
        work_seconds=work,
        audio_seconds=audio,
        rtf=work / audio,
        median_rtf=float(np.median(timed["rtf"])),
        n_missing_lead_time=missing,
    )


def real_time_factor(
    df: pd.DataFrame,
    *,
    durations: pd.Series | Mapping[Hashable, float] | None = None,
) -> RealTimeFactor:
    """Real-time factor of human transcription.

    Args:
        df: One row per annotation with ``task`` and ``lead_time`` (seconds), and
            ``duration`` (seconds of audio) unless ``durations`` is given.
        durations: Audio seconds per task (Series or dict); overrides ``duration``.

    Returns:
        A :class:`RealTimeFactor`.

    Raises:
        ValueError: On a missing/non-positive duration or a negative lead time
            (the message names the tasks).
        InsufficientDataError: If no annotation has a lead time.

    Example:
        >>> annotations = pd.DataFrame({"task": [1, 2, 3], "lead_time": [30.0, None, 50.0],
        ...                             "duration": [10.0, 10.0, 10.0]})
        >>> result = real_time_factor(annotations)
        >>> result.rtf, result.n, result.n_missing_lead_time
        (4.0, 2, 1)
    """
    return _summarize(_prepare(df, durations), what="annotation")


def compare_prelabel_effort(
    df: pd.DataFrame,
    *,
    durations: pd.Series | Mapping[Hashable, float] | None = None,
    prelabeled_column: str = "prelabeled",
) -> EffortComparison:
    """Compare the real-time factor of annotations with and without pre-labels.

    Args:
        df: As for :func:`real_time_factor`, plus a boolean column (default
            ``prelabeled``) that is True where the annotator started from a model
            pre-label.
        durations: Audio seconds per task (Series or dict); overrides ``duration``.
        prelabeled_column: Name of the boolean column.

    Returns:
        An :class:`EffortComparison`.

    Raises:
        ValueError: On bad input, a missing or non-boolean pre-label flag (the rows
            are named).
        InsufficientDataError: If either group has no timed annotation.

    Example:
        >>> annotations = pd.DataFrame({
        ...     "task": [1, 2, 3, 4, 5, 6],
        ...     "lead_time": [20.0, 25.0, 30.0, 60.0, 50.0, 70.0],
        ...     "duration": [10.0] * 6,
        ...     "prelabeled": [True, True, True, False, False, False]})
        >>> comparison = compare_prelabel_effort(annotations)
        >>> comparison.with_prelabels.rtf, comparison.without_prelabels.rtf, comparison.speedup
        (2.5, 6.0, 2.4)
        >>> round(comparison.p_value, 3)
        0.1
    """
    check_columns(df, ("task", "lead_time", prelabeled_column))
    flags = df[prelabeled_column]
    bad = df.index[~flags.map(lambda v: isinstance(v, (bool, np.bool_)))]
    if len(bad):
        raise ValueError(
            f"{prelabeled_column!r} must be True or False; rows {preview(bad)} "
            f"(tasks {preview(df.loc[bad, 'task'].tolist())}) hold {preview(flags.loc[bad].tolist())}"
        )
    data = _prepare(df, durations)
    mask = data[prelabeled_column].astype(bool)
    with_pre = _summarize(data[mask], what="pre-labelled annotation")
    without_pre = _summarize(data[~mask], what="annotation without pre-label")
    a = data.loc[mask & data["lead_time"].notna(), "rtf"].to_numpy()
    b = data.loc[~mask & data["lead_time"].notna(), "rtf"].to_numpy()
    p_value = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    if with_pre.rtf == 0:
        raise InsufficientDataError(
            "all pre-labelled annotations have lead_time 0; the speed-up is undefined"
        )
    return EffortComparison(with_pre, without_pre, without_pre.rtf / with_pre.rtf, p_value)


@dataclass(frozen=True)
class EffortPerMinute:
    """Human seconds per minute of audio people worked on, in all and with and without pre-labels.

    Attributes:
        all: Seconds of work per audio minute over every timed annotation.
        with_prelabels: The same for annotations that started from the model's pre-label (``None``: none).
        without_prelabels: The same for annotations made from scratch (``None``: none).
        n_with: Timed annotations with a pre-label.
        n_without: Timed annotations without one.
        n_missing_lead_time: Annotations left out because their lead time is missing.
    """

    all: float
    with_prelabels: float | None
    without_prelabels: float | None
    n_with: int
    n_without: int
    n_missing_lead_time: int = 0


def effort_per_audio_minute(
    df: pd.DataFrame,
    *,
    durations: pd.Series | Mapping[Hashable, float] | None = None,
    prelabeled_column: str | None = "prelabeled",
) -> EffortPerMinute:
    """Human seconds of work per minute of audio (60 x the pooled real-time factor), with and without pre-labels.

    Unlike :func:`compare_prelabel_effort`, a group without annotations is ``None``, not an error: a batch
    where every task carried a pre-label still has a cost per minute.

    Args:
        df: As for :func:`real_time_factor`; with ``prelabeled_column`` (booleans; a missing value counts as
            pre-labelled, as Label Studio tasks pushed with predictions are) to split the two groups.
        durations: Audio seconds per task (Series or dict); overrides ``duration``.
        prelabeled_column: Name of the pre-label column (``None`` or absent: no split, both groups ``None``
            except as counted in ``all``).

    Returns:
        An :class:`EffortPerMinute`.

    Raises:
        ValueError: On bad input (see :func:`real_time_factor`).
        InsufficientDataError: If no annotation has a lead time.

    Example:
        >>> annotations = pd.DataFrame({"task": ["s1", "s2", "s3"], "lead_time": [30.0, 45.0, 120.0],
        ...                             "duration": [15.0, 15.0, 20.0], "prelabeled": [True, True, False]})
        >>> e = effort_per_audio_minute(annotations)
        >>> e.all, e.with_prelabels, e.without_prelabels, e.n_with, e.n_without
        (234.0, 150.0, 360.0, 2, 1)
    """
    data = _prepare(df, durations)
    overall = _summarize(data, what="annotation")
    timed = data[data["lead_time"].notna()]
    if prelabeled_column is None or prelabeled_column not in data.columns:
        return EffortPerMinute(60 * overall.rtf, None, None, 0, 0, overall.n_missing_lead_time)
    flags = timed[prelabeled_column].map(lambda v: True if v is None or (isinstance(v, float) and np.isnan(v))
                                         else v)
    bad = timed.index[~flags.map(lambda v: isinstance(v, (bool, np.bool_)))]
    if len(bad):
        raise ValueError(f"{prelabeled_column!r} must be True, False or missing; rows {preview(bad)} hold "
                         f"{preview(timed.loc[bad, prelabeled_column].tolist())}")
    mask = flags.astype(bool)

    def per_minute(rows: pd.DataFrame) -> float | None:
        return None if rows.empty else 60 * float(rows["lead_time"].sum() / rows["duration"].sum())

    return EffortPerMinute(60 * overall.rtf, per_minute(timed[mask]), per_minute(timed[~mask]), int(mask.sum()),
                           int((~mask).sum()), overall.n_missing_lead_time)
