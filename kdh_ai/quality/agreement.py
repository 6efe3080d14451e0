"""Inter-annotator agreement: percent agreement, Cohen's kappa, Fleiss' kappa,
Krippendorff's alpha.

All functions take ratings in crowd-kit's long format: a DataFrame with columns
``task``, ``worker`` and ``label``, one row per rating. Missing ratings are simply
absent rows (a row whose ``label`` is None/NaN counts as missing too). A worker may
rate a task only once; duplicate ``(task, worker)`` rows raise ValueError.

Chance-corrected statistics are undefined when there is not enough data (fewer than
two annotators on any task, or a single category used throughout). Then the
functions raise :class:`~kdh_ai.quality.InsufficientDataError` (a ValueError) with
the reason; :func:`agreement_summary` instead records the reason and never raises
for lack of data.

Example:
    >>> ratings = pd.DataFrame({
    ...     "task":   ["t1", "t1", "t2", "t2", "t3", "t3"],
    ...     "worker": ["ann", "bob"] * 3,
    ...     "label":  ["pos", "pos", "neg", "pos", "neg", "neg"]})
    >>> percent_agreement(ratings)
    0.6666666666666666
    >>> round(cohen_kappa(ratings), 3)
    0.4
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import krippendorff
import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from ._common import (
    InsufficientDataError,
    check_choice,
    check_columns,
    check_labels_in_schema,
    preview,
)

__all__ = [
    "ALPHA_LEVELS",
    "AgreementSummary",
    "agreement_summary",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "percent_agreement",
]

logger = logging.getLogger(__name__)

ALPHA_LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")
"""Levels of measurement accepted by :func:`krippendorff_alpha`."""

_KAPPA_WEIGHTS = (None, "linear", "quadratic")


def _ratings(df: pd.DataFrame, labels: Sequence[Hashable] | None) -> pd.DataFrame:
    """Validate ratings; drop missing labels; refuse duplicate (task, worker) pairs."""
    check_columns(df, ("task", "worker", "label"))
    data = df[["task", "worker", "label"]]
    for column in ("task", "worker"):
        if data[column].isna().any():
            rows = data.index[data[column].isna()]
            raise ValueError(f"df has a missing {column!r} in rows {preview(rows)}; drop them")
    missing = int(data["label"].isna().sum())
    if missing:
        logger.debug("ignoring %d missing ratings", missing)
        data = data[data["label"].notna()]
    check_labels_in_schema(data["label"], labels, what="label", tasks=data["task"])
    duplicated = data.duplicated(["task", "worker"], keep=False)
    if duplicated.any():
        pairs = list(
            data.loc[duplicated, ["task", "worker"]].drop_duplicates().itertuples(index=False, name=None)
        )
        raise ValueError(
            f"{len(pairs)} (task, worker) pair(s) are rated more than once: {preview(pairs)}; "
            "keep one rating per pair, e.g. df.drop_duplicates(['task', 'worker'], keep='last')"
        )
    if data.empty:
        raise InsufficientDataError("there are no ratings (df is empty or all labels are missing)")
    return data


def _counts(data: pd.DataFrame) -> pd.DataFrame:
    """Tasks x labels count table, restricted to tasks with two or more ratings."""
    counts = pd.crosstab(data["task"], data["label"])
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.empty:
        raise InsufficientDataError(
            "agreement needs at least one task rated by two or more annotators; "
            f"every one of the {data['task'].nunique()} task(s) has a single rating"
        )
    return counts


def _observed_agreement(counts: pd.DataFrame) -> float:
    table = counts.to_numpy(dtype=float)
    n_i = table.sum(axis=1)
    per_item = ((table * table).sum(axis=1) - n_i) / (n_i * (n_i - 1.0))
    return float(per_item.mean())


def percent_agreement(df: pd.DataFrame, *, labels: Sequence[Hashable] | None = None) -> float:
    """Mean share of agreeing annotator pairs per task (observed agreement).

    For each task with ``n >= 2`` ratings it is the share of the ``n(n-1)`` ordered
    pairs of ratings that agree; the result is the mean over those tasks. With two
    annotators this is the plain share of tasks they label alike. Tasks with one
    rating are skipped. It is not corrected for chance: see the kappas and alpha.

    Args:
        df: Ratings with columns ``task``, ``worker``, ``label``.
        labels: Optional label schema; other labels raise ValueError.

    Returns:
        Agreement in [0, 1].

    Raises:
        ValueError: On malformed input or labels outside the schema.
        InsufficientDataError: If no task has two ratings.

    Example:
        >>> ratings = pd.DataFrame({"task": [1, 1, 1, 2, 2],
        ...                         "worker": ["a", "b", "c", "a", "b"],
        ...                         "label": ["x", "x", "y", "y", "y"]})
        >>> round(percent_agreement(ratings), 4)   # task 1: 2/6 pairs, task 2: 2/2
        0.6667
    """
    return _observed_agreement(_counts(_ratings(df, labels)))


def fleiss_kappa(df: pd.DataFrame, *, labels: Sequence[Hashable] | None = None) -> float:
    """Fleiss' kappa for any number of annotators (nominal labels).

    Fleiss (1971), "Measuring nominal scale agreement among many raters",
    Psychological Bulletin 76(5). With the same number of ratings on every task the
    result equals ``statsmodels.stats.inter_rater.fleiss_kappa``. When tasks have
    different numbers of ratings (missing ratings), the standard generalization is
    used (Fleiss, Levin & Paik, 2003, *Statistical Methods for Rates and
    Proportions*, 3rd ed., ch. 18): per-task agreement uses that task's own number
    of ratings, category shares are pooled over all ratings. Tasks with a single
    rating are skipped.

    Args:
        df: Ratings with columns ``task``, ``worker``, ``label``.
        labels: Optional label schema; other labels raise ValueError.

    Returns:
        Kappa in [-1, 1]; 0 is chance-level agreement.

    Raises:
        ValueError: On malformed input or labels outside the schema.
        InsufficientDataError: If no task has two ratings, or every rating uses the
            same label (chance agreement is then 1 and kappa undefined).

    Example:
        >>> ratings = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2, 3, 3, 3],
        ...                         "worker": ["a", "b", "c"] * 3,
        ...                         "label": ["x", "x", "x", "y", "y", "x", "y", "y", "y"]})
        >>> round(fleiss_kappa(ratings), 4)
        0.55
    """
    counts = _counts(_ratings(df, labels))
    table = counts.to_numpy(dtype=float)
    p_observed = _observed_agreement(counts)
    p_category = table.sum(axis=0) / table.sum()
    p_expected = float((p_category * p_category).sum())
    if np.isclose(p_expected, 1.0):
        raise InsufficientDataError(
            f"Fleiss' kappa is undefined: every rating uses the label {counts.columns[0]!r}"
        )
    return float((p_observed - p_expected) / (1.0 - p_expected))


def cohen_kappa(
    df: pd.DataFrame,
    *,
    annotators: tuple[Hashable, Hashable] | None = None,
    weights: Literal["linear", "quadratic"] | None = None,
    labels: Sequence[Hashable] | None = None,
) -> float:
    """Cohen's kappa between two annotators, on the tasks both of them rated.

    Cohen (1960), "A coefficient of agreement for nominal scales", Educational and
    Psychological Measurement 20(1). Computed by ``sklearn.metrics.cohen_kappa_score``.

    Args:
        df: Ratings with columns ``task``, ``worker``, ``label``.
        annotators: The two workers to compare. May be omitted when ``df`` has
            exactly two workers.
        weights: ``None`` (default, nominal), ``"linear"`` or ``"quadratic"``
            (weighted kappa for ordered labels; the order is ``labels`` if given,
            otherwise the sorted labels).
        labels: Optional label schema (and order for weighted kappa).

    Returns:
        Kappa in [-1, 1].

    Raises:
        ValueError: On an unknown annotator (the message lists known ones), bad
            options or labels outside the schema.
        InsufficientDataError: If ``df`` has fewer than two annotators, the two
            share no task, or both use one and the same label throughout.

    Example:
        >>> ratings = pd.DataFrame({"task": [1, 2, 3, 4, 1, 2, 3, 4],
        ...                         "worker": ["a"] * 4 + ["b"] * 4,
        ...                         "label": [1, 1, 0, 0, 1, 0, 0, 0]})
        >>> cohen_kappa(ratings, annotators=("a", "b"))
        0.5
    """
    check_choice("weights", weights, _KAPPA_WEIGHTS)
    data = _ratings(df, labels)
    workers = list(pd.unique(data["worker"]))
    if annotators is None:
        if len(workers) < 2:
            raise InsufficientDataError(
                f"Cohen's kappa needs two annotators; df has {len(workers)}: {preview(workers)}"
            )
        if len(workers) > 2:
            raise ValueError(
                f"df has {len(workers)} annotators ({preview(workers)}); pass annotators=(a, b) "
                "to choose two, or use fleiss_kappa / krippendorff_alpha for all of them"
            )
        first, second = workers
    else:
        if not isinstance(annotators, tuple) or len(annotators) != 2:
            raise ValueError(f"annotators must be a tuple of two worker ids, got {annotators!r}")
        first, second = annotators
        if first == second:
            raise ValueError(f"annotators must be two different workers, got {first!r} twice")
        known = set(workers)
        for worker in annotators:
            if worker not in known:
                raise ValueError(
                    f"unknown annotator {worker!r}; annotators in df: {preview(sorted(known, key=str), 10)}"
                )
    a = data[data["worker"] == first].set_index("task")["label"]
    b = data[data["worker"] == second].set_index("task")["label"]
    shared = a.index.intersection(b.index)
    if len(shared) == 0:
        raise InsufficientDataError(
            f"annotators {first!r} and {second!r} rated no task in common; kappa needs shared tasks"
        )
    x, y = a.loc[shared].to_numpy(), b.loc[shared].to_numpy()
    order = list(labels) if labels is not None else None
    if order is None:
        seen = pd.unique(np.concatenate([x, y]))
        try:
            order = sorted(seen)
        except TypeError:
            order = list(seen)
    if len(set(x.tolist()) | set(y.tolist())) < 2:
        raise InsufficientDataError(
            f"Cohen's kappa is undefined: {first!r} and {second!r} both use only the label "
            f"{x[0]!r} on their {len(shared)} shared task(s)"
        )
    return float(cohen_kappa_score(x, y, labels=order, weights=weights))


def _value_domain(data: pd.DataFrame, level: str, labels: Sequence[Hashable] | None) -> list:
    values = list(pd.unique(data["label"]))
    numeric = all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in values
    )
    if level in ("interval", "ratio"):
        if not numeric or (labels is not None and not all(
            isinstance(v, (int, float, np.integer, np.floating)) for v in labels
        )):
            raise ValueError(
                f"level={level!r} needs numeric labels; got {preview(values)}. "
                "Use level='nominal' or 'ordinal' for categories"
            )
        return sorted(set(values) | set(labels or ()))
    if level == "ordinal":
        if labels is not None:
            return list(labels)
        if not numeric:
            raise ValueError(
                "level='ordinal' with non-numeric labels needs labels=[...] in their order, "
                f"e.g. labels=['bad', 'ok', 'good']; got labels {preview(values)}"
            )
        return sorted(values)
    if labels is not None:
        return list(labels)
    try:
        return sorted(values)
    except TypeError:
        return values


def krippendorff_alpha(
    df: pd.DataFrame,
    *,
    level: Literal["nominal", "ordinal", "interval", "ratio"] = "nominal",
    labels: Sequence[Hashable] | None = None,
) -> float:
    """Krippendorff's alpha, with missing ratings, at any level of measurement.

    Krippendorff (2011), "Computing Krippendorff's alpha-reliability". Computed by
    the ``krippendorff`` package (Castro, 2017) from the task x label count table;
    tasks with a single rating do not contribute (as in the definition).

    Args:
        df: Ratings with columns ``task``, ``worker``, ``label``.
        level: ``"nominal"`` (default), ``"ordinal"``, ``"interval"`` or ``"ratio"``.
            Interval and ratio need numeric labels. Ordinal uses the order of
            ``labels`` if given, else the numeric order.
        labels: Optional label schema (and order for ``"ordinal"``).

    Returns:
        Alpha, at most 1; 0 is chance-level agreement.

    Raises:
        ValueError: On a bad level (the message names the valid ones), labels
            outside the schema, or non-numeric labels for interval/ratio.
        InsufficientDataError: If no task has two ratings or all ratings are equal.

    Example:
        >>> ratings = pd.DataFrame({"task": [1, 1, 2, 2, 3, 3, 4],
        ...                         "worker": ["a", "b", "a", "b", "a", "b", "a"],
        ...                         "label": [1, 1, 2, 2, 3, 2, 1]})
        >>> round(krippendorff_alpha(ratings), 3)
        0.545
        >>> round(krippendorff_alpha(ratings, level="interval"), 3)
        0.706
    """
    check_choice("level", level, ALPHA_LEVELS)
    data = _ratings(df, labels)
    domain = _value_domain(data, level, labels)
    counts = _counts(data)
    if len(pd.unique(data.loc[data["task"].isin(counts.index), "label"])) < 2:
        raise InsufficientDataError(
            "Krippendorff's alpha is undefined: all ratings on multiply-rated tasks are equal"
        )
    table = counts.reindex(columns=domain, fill_value=0).to_numpy(dtype=float)
    return float(
        krippendorff.alpha(
            value_counts=table,
            value_domain=domain if level != "nominal" else None,
            level_of_measurement=level,
        )
    )


@dataclass(frozen=True)
class AgreementSummary:
    """Agreement statistics of one set of ratings, with explicit gaps.

    Attributes:
        n_ratings: Non-missing ratings.
        n_tasks: Tasks with at least one rating.
        n_annotators: Distinct workers.
        n_tasks_multi: Tasks rated by two or more annotators (the ones that count).
        percent_agreement: See :func:`percent_agreement`, or None.
        fleiss_kappa: See :func:`fleiss_kappa`, or None.
        krippendorff_alpha: See :func:`krippendorff_alpha` at ``level``, or None.
        level: Level of measurement used for alpha.
        reasons: For each statistic that is None, why it could not be computed.
    """

    n_ratings: int
    n_tasks: int
    n_annotators: int
    n_tasks_multi: int
    percent_agreement: float | None
    fleiss_kappa: float | None
    krippendorff_alpha: float | None
    level: str
    reasons: dict[str, str] = field(default_factory=dict)


def agreement_summary(
    df: pd.DataFrame,
    *,
    level: Literal["nominal", "ordinal", "interval", "ratio"] = "nominal",
    labels: Sequence[Hashable] | None = None,
) -> AgreementSummary:
    """All multi-annotator agreement statistics at once, never failing for lack of data.

    A statistic that cannot be computed is None and ``reasons`` says why (e.g. a
    batch labelled by one annotator). Malformed input still raises ValueError.

    Args:
        df: Ratings with columns ``task``, ``worker``, ``label``.
        level: Level of measurement for Krippendorff's alpha (default ``"nominal"``).
        labels: Optional label schema.

    Returns:
        An :class:`AgreementSummary`.

    Raises:
        ValueError: On malformed input, a bad level or labels outside the schema.

    Example:
        >>> one_annotator = pd.DataFrame({"task": [1, 2], "worker": ["a", "a"],
        ...                               "label": ["x", "y"]})
        >>> summary = agreement_summary(one_annotator)
        >>> summary.fleiss_kappa is None, summary.n_annotators
        (True, 1)
        >>> summary.reasons["fleiss_kappa"]
        'agreement needs at least one task rated by two or more annotators; every one of the 2 task(s) has a single rating'
    """
    check_choice("level", level, ALPHA_LEVELS)
    check_columns(df, ("task", "worker", "label"))
    try:
        data = _ratings(df, labels)
    except InsufficientDataError as err:
        reason = str(err)
        return AgreementSummary(
            0, 0, 0, 0, None, None, None, level,
            {k: reason for k in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha")},
        )
    sizes = data.groupby("task").size()
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name, func in (
        ("percent_agreement", lambda: percent_agreement(data, labels=labels)),
        ("fleiss_kappa", lambda: fleiss_kappa(data, labels=labels)),
        ("krippendorff_alpha", lambda: krippendorff_alpha(data, level=level, labels=labels)),
    ):
        try:
            values[name] = func()
        except InsufficientDataError as err:
            values[name] = None
            reasons[name] = str(err)
    return AgreementSummary(
        n_ratings=len(data),
        n_tasks=len(sizes),
        n_annotators=int(data["worker"].nunique()),
        n_tasks_multi=int((sizes >= 2).sum()),
        percent_agreement=values["percent_agreement"],
        fleiss_kappa=values["fleiss_kappa"],
        krippendorff_alpha=values["krippendorff_alpha"],
        level=level,
        reasons=reasons,
    )
