"""Shared input checks for the quality layer (private).

Every public function of :mod:`kdh_ai.quality` validates its inputs here, at the
boundary, and raises :class:`ValueError` (or its subclass
:class:`InsufficientDataError`) with a message that names the offending item and
the valid choices. Nothing here uses ``assert``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "InsufficientDataError",
    "check_choice",
    "check_columns",
    "check_labels_in_schema",
    "check_no_missing",
    "finite_or_raise",
    "is_missing",
    "preview",
    "to_series",
]


class InsufficientDataError(ValueError):
    """Raised when a metric cannot be computed because there is not enough data.

    It is a :class:`ValueError`, so ``except ValueError`` catches it too. The
    message says what is missing (e.g. "needs two annotators, got one") and what to
    do about it. Metrics never return a silent ``NaN`` instead.

    Example:
        >>> try:
        ...     raise InsufficientDataError("Cohen's kappa needs 2 annotators, got 1")
        ... except ValueError as err:
        ...     print(err)
        Cohen's kappa needs 2 annotators, got 1
    """


def preview(values: Iterable[Any], limit: int = 5) -> str:
    """Render at most ``limit`` values for an error message (``a, b, c ... (+7 more)``)."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    if len(values) > limit:
        shown += f" ... (+{len(values) - limit} more)"
    return shown


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise a ValueError naming the valid choices if ``value`` is not one of them."""
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not supported; choose one of: {', '.join(map(repr, choices))}"
        )


def check_columns(df: Any, required: Sequence[str], *, what: str = "df") -> None:
    """Check that ``df`` is a DataFrame holding the ``required`` columns."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(
            f"{what} must be a pandas DataFrame with columns {list(required)}, "
            f"got {type(df).__name__}"
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {missing}; it needs {list(required)} "
            f"(crowd-kit contract), it has {list(df.columns)}"
        )


def is_missing(value: Any) -> bool:
    """True for None, NaN and pandas' NA/NaT (a missing rating)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def check_no_missing(df: pd.DataFrame, columns: Sequence[str], *, what: str = "df") -> None:
    """Raise a ValueError naming the first rows whose ``columns`` are missing."""
    for column in columns:
        bad = df.index[df[column].isna()]
        if len(bad):
            tasks = df.loc[bad, "task"].tolist() if "task" in df.columns else []
            where = f" (tasks {preview(tasks)})" if tasks and column != "task" else ""
            raise ValueError(
                f"{what} has {len(bad)} row(s) with a missing {column!r}: rows {preview(bad)}"
                f"{where}; drop those rows or fill them in"
            )


def check_labels_in_schema(
    values: pd.Series,
    labels: Sequence[Hashable] | None,
    *,
    what: str,
    tasks: pd.Series | None = None,
) -> None:
    """Raise a ValueError if a non-missing value of ``values`` is not in ``labels``.

    ``labels`` None means "no schema given": every value is accepted.
    """
    if labels is None:
        return
    allowed = set(labels)
    if len(allowed) != len(list(labels)):
        raise ValueError(f"labels={list(labels)!r} contains duplicates")
    present = values.dropna()
    outside = present[~present.isin(allowed)]
    if len(outside):
        where = ""
        if tasks is not None:
            where = f" at tasks {preview(tasks.loc[outside.index].tolist())}"
        raise ValueError(
            f"{what} has {len(outside)} value(s) outside the label schema: "
            f"{preview(pd.unique(outside))}{where}; valid labels: {preview(list(labels), 20)}"
        )


def to_series(values: Any, *, name: str, what: str) -> pd.Series:
    """Turn a Series, a mapping (task -> value) or a sequence into a Series."""
    if isinstance(values, pd.Series):
        return values.rename(name)
    if isinstance(values, Mapping):
        return pd.Series(dict(values), name=name, dtype=None if len(values) else object)
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(
            f"{what} must be a pandas Series, a dict (task -> value) or a sequence, "
            f"got {type(values).__name__}"
        )
    values = list(values)
    return pd.Series(values, name=name, dtype=None if values else object)


def finite_or_raise(value: float, *, what: str) -> float:
    """Return ``value`` if finite, else raise InsufficientDataError naming ``what``."""
    if value is None or not math.isfinite(value):
        raise InsufficientDataError(f"{what} is undefined for this data (got {value!r})")
    return float(value)
