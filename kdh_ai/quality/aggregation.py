"""Aggregation of several annotators' answers per task, optionally with the model's.

Thin, validated wrappers around crowd-kit (Ustalov et al., 2024, "Learning from
Crowds with Crowd-Kit", JOSS 9(96)) that keep its ``task, worker, label`` (or
``task, worker, text``) DataFrame contract:

* :func:`aggregate_labels` -- ``"majority_vote"`` (with a documented tie rule),
  ``"wawa"``, ``"dawid_skene"``, ``"one_coin_dawid_skene"``, ``"glad"``, ``"mace"``.
* :func:`aggregate_texts` -- ``"rover"`` (Fiscus, 1997).

**Model-aware aggregation.** The model that pre-labelled the batch can join the
crowd as an extra annotator: pass ``model_labels`` (or ``model_texts``), a Series or
dict ``task -> answer``. ``model_weight`` is the number of copies of the model's
answer added as pseudo-workers named ``__model__1``, ``__model__2``, ... (for
majority vote and ROVER a copy is one vote; Dawid-Skene-style methods treat each
copy as a worker whose reliability is learned from the data). The default weight
is :data:`DEFAULT_MODEL_WEIGHT` = 1: the model counts as one more annotator, so it
breaks ties among the crowd and fills in where the crowd is thin, but a human
majority of two or more votes is never overturned. On CrowdSpeech, one copy lowered
ROVER's WER for every crowd size and every stand-in model tried; more copies helped
large crowds but hurt thin ones, which is where pre-labels matter most (figures in
``benchmarks/README.md``; see ``notebooks/03_measuring_quality.ipynb``).

Example:
    >>> votes = pd.DataFrame({"task": ["t1", "t1", "t1", "t2", "t2"],
    ...                       "worker": ["a", "b", "c", "a", "b"],
    ...                       "label": ["cat", "cat", "dog", "dog", "cat"]})
    >>> aggregate_labels(votes, tie_break="first_seen").to_dict()
    {'t1': 'cat', 't2': 'dog'}
    >>> aggregate_labels(votes, model_labels={"t2": "cat"}).to_dict()
    {'t1': 'cat', 't2': 'cat'}
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd
from crowdkit.aggregation import (
    GLAD,
    MACE,
    ROVER,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
)

from ._common import (
    check_choice,
    check_columns,
    check_labels_in_schema,
    check_no_missing,
    preview,
    to_series,
)
from .text import DEFAULT_NORMALIZER, Normalizer, get_normalizer

__all__ = [
    "DEFAULT_MODEL_WEIGHT",
    "LABEL_METHODS",
    "MODEL_WORKER_PREFIX",
    "TEXT_METHODS",
    "TIE_BREAKS",
    "aggregate_labels",
    "aggregate_texts",
    "with_model_answers",
]

logger = logging.getLogger(__name__)

LABEL_METHODS: tuple[str, ...] = (
    "majority_vote",
    "wawa",
    "dawid_skene",
    "one_coin_dawid_skene",
    "glad",
    "mace",
)
"""Methods of :func:`aggregate_labels`."""

TEXT_METHODS: tuple[str, ...] = ("rover",)
"""Methods of :func:`aggregate_texts`."""

TIE_BREAKS: tuple[str, ...] = ("random", "first_seen", "smallest", "crowdkit")
"""Tie rules of majority vote (see :func:`aggregate_labels`)."""

MODEL_WORKER_PREFIX = "__model__"
"""Worker ids of the model's pseudo-annotators start with this prefix."""

DEFAULT_MODEL_WEIGHT = 1
"""Copies of the model's answer added to the crowd unless told otherwise."""


@contextmanager
def _quiet_crowdkit() -> Iterator[None]:
    """Silence crowd-kit 1.4.2's deprecation noise under recent scikit-learn/pandas."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        yield


def _check_weight(model_weight: Any) -> int:
    if isinstance(model_weight, bool) or not isinstance(model_weight, (int, np.integer)) or model_weight < 1:
        raise ValueError(
            f"model_weight must be a whole number >= 1 (copies of the model's answer), "
            f"got {model_weight!r}"
        )
    return int(model_weight)


def with_model_answers(
    df: pd.DataFrame,
    answers: pd.Series | Mapping[Hashable, Any],
    *,
    column: Literal["label", "text"] = "label",
    model_weight: int = DEFAULT_MODEL_WEIGHT,
) -> pd.DataFrame:
    """Append the model's answers to the crowd as ``model_weight`` pseudo-workers.

    The rows are appended after the human rows (ROVER aligns in row order, so the
    humans' first transcript stays the backbone).

    Args:
        df: The crowd's rows with columns ``task``, ``worker`` and ``column``.
        answers: Model answer per task (Series indexed by task, or dict). It may
            cover a subset of the tasks, but no task absent from ``df``.
        column: ``"label"`` or ``"text"``.
        model_weight: Copies of each model answer (>= 1).

    Returns:
        A new DataFrame: the human rows, then the model rows with workers
        ``__model__1`` ... ``__model__<model_weight>``.

    Raises:
        ValueError: On a bad weight, missing answers, tasks that no human did, or
            human worker ids that clash with the model prefix.

    Example:
        >>> crowd = pd.DataFrame({"task": [1, 1], "worker": ["a", "b"], "label": [0, 1]})
        >>> with_model_answers(crowd, {1: 1}, model_weight=2)
           task      worker  label
        0     1           a      0
        1     1           b      1
        2     1  __model__1      1
        3     1  __model__2      1
    """
    check_choice("column", column, ("label", "text"))
    weight = _check_weight(model_weight)
    series = to_series(answers, name=column, what=f"model_{column}s")
    if not series.index.is_unique:
        raise ValueError(
            f"model_{column}s has duplicate tasks: {preview(series.index[series.index.duplicated()])}"
        )
    missing = series.index[series.isna()]
    if len(missing):
        raise ValueError(
            f"model_{column}s has missing answers for tasks {preview(missing)}; "
            "drop those tasks from it (the crowd alone then decides them)"
        )
    unknown = series.index.difference(pd.Index(pd.unique(df["task"])))
    if len(unknown):
        raise ValueError(
            f"model_{column}s has {len(unknown)} task(s) that no annotator did: "
            f"{preview(unknown)}; drop them or add the annotations"
        )
    clash = [w for w in pd.unique(df["worker"]) if str(w).startswith(MODEL_WORKER_PREFIX)]
    if clash:
        raise ValueError(
            f"worker ids {preview(clash)} use the reserved prefix {MODEL_WORKER_PREFIX!r}; rename them"
        )
    blocks = [df[["task", "worker", column]]]
    for copy in range(1, weight + 1):
        blocks.append(
            pd.DataFrame(
                {
                    "task": series.index.to_numpy(),
                    "worker": f"{MODEL_WORKER_PREFIX}{copy}",
                    column: series.to_numpy(),
                }
            )
        )
    return pd.concat(blocks, ignore_index=True)


def _check_one_label_type(labels: pd.Series, *, what: str) -> None:
    """Refuse labels that mix kinds (e.g. 'cat' and 1): crowd-kit cannot compare them."""
    kinds = set()
    for value in pd.unique(labels):
        if isinstance(value, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(value, (int, float, np.integer, np.floating)):
            kinds.add("number")
        else:
            kinds.add(type(value).__name__)
    if len(kinds) > 1:
        raise ValueError(
            f"{what} mix kinds of values ({', '.join(sorted(kinds))}); use one kind for every "
            "label, human and model alike, e.g. df['label'].astype(str)"
        )


def _sorted(frame: pd.DataFrame | pd.Series) -> Any:
    """Sort by task id when the ids are comparable (they are in practice)."""
    try:
        return frame.sort_index()
    except TypeError:
        return frame


def _break_ties(
    data: pd.DataFrame, probas: pd.DataFrame, labels: pd.Series, rule: str, seed: int
) -> pd.Series:
    """Re-decide tasks whose top vote share is shared by several labels."""
    if rule == "crowdkit":
        return labels
    probas = _sorted(probas)
    values = probas.to_numpy()
    top = values.max(axis=1, keepdims=True)
    is_top = np.isclose(values, top)
    tied = np.flatnonzero(is_top.sum(axis=1) > 1)
    if not len(tied):
        return labels
    labels = labels.copy()
    columns = probas.columns.to_numpy()
    if rule == "first_seen":
        tied_tasks = probas.index[tied]
        subset = data[data["task"].isin(tied_tasks)]
        for row in tied:
            task = probas.index[row]
            candidates = set(columns[is_top[row]].tolist())
            seen = subset.loc[subset["task"] == task, "label"]
            labels.loc[task] = next(label for label in seen if label in candidates)
    elif rule == "smallest":
        for row in tied:
            candidates = columns[is_top[row]].tolist()
            try:
                labels.loc[probas.index[row]] = min(candidates)
            except TypeError:  # labels of mixed types
                labels.loc[probas.index[row]] = min(candidates, key=lambda v: (type(v).__name__, str(v)))
    else:  # random, reproducible and independent of row order
        rng = np.random.default_rng(seed)
        for row in tied:  # rows in sorted task order: the draw ignores df's row order
            candidates = sorted(columns[is_top[row]].tolist(), key=lambda v: (type(v).__name__, v))
            labels.loc[probas.index[row]] = candidates[rng.integers(len(candidates))]
    logger.debug("majority vote: %d tied task(s) decided by rule %r", len(tied), rule)
    return labels


def aggregate_labels(
    df: pd.DataFrame,
    *,
    method: str = "majority_vote",
    tie_break: Literal["random", "first_seen", "smallest", "crowdkit"] = "random",
    seed: int = 0,
    labels: Sequence[Hashable] | None = None,
    model_labels: pd.Series | Mapping[Hashable, Hashable] | None = None,
    model_weight: int = DEFAULT_MODEL_WEIGHT,
    n_iter: int = 100,
    tol: float = 1e-5,
) -> pd.Series:
    """One label per task from several annotators' labels.

    Methods (crowd-kit implementations):

    * ``"majority_vote"``: the most frequent label. ``tie_break`` decides ties:
      ``"random"`` (default; a seeded random pick among the tied labels, reproducible
      and independent of row order), ``"first_seen"`` (the tied label that occurs
      first in ``df``'s rows for the task; this is how the data MANIFESTs count),
      ``"smallest"`` (the smallest tied label) or ``"crowdkit"`` (crowd-kit 1.4.2's
      own result: the tied label that comes first in its internal vote table, which
      depends on the row order; use it only to reproduce crowd-kit numbers).
    * ``"wawa"``: majority vote weighted by each worker's agreement with it.
    * ``"dawid_skene"``: Dawid & Skene (1979), a confusion matrix per worker, EM.
    * ``"one_coin_dawid_skene"``: Dawid-Skene with one accuracy per worker.
    * ``"glad"``: Whitehill et al. (2009), worker expertise and task difficulty.
    * ``"mace"``: Hovy et al. (2013), detects spammers (``seed`` is its random state).

    Args:
        df: Labels with columns ``task``, ``worker``, ``label`` (one row each).
        method: One of :data:`LABEL_METHODS`.
        tie_break: Tie rule for majority vote (ignored by other methods).
        seed: Random seed for ``tie_break="random"`` and for ``"mace"``.
        labels: Optional label schema; labels (human or model) outside it raise.
        model_labels: The model's label per task (Series or dict), added as
            ``model_weight`` pseudo-workers; see :func:`with_model_answers`.
        model_weight: Copies of the model's label (>= 1; default 1).
        n_iter: Maximum EM iterations for the iterative methods.
        tol: Convergence tolerance for Dawid-Skene and GLAD.

    Returns:
        A Series named ``agg_label`` indexed by ``task`` (every task of ``df``).

    Raises:
        ValueError: On an unknown method or tie rule (the message lists the valid
            ones), missing columns/values, labels outside the schema, or bad model
            input.

    Example:
        >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2],
        ...                    "worker": ["a", "b", "c"] * 2,
        ...                    "label": ["x", "x", "y", "y", "y", "x"]})
        >>> aggregate_labels(df, method="dawid_skene").tolist()
        ['x', 'y']
        >>> aggregate_labels(df, method="votes")
        Traceback (most recent call last):
        ...
        ValueError: method='votes' is not supported; choose one of: 'majority_vote', 'wawa', 'dawid_skene', 'one_coin_dawid_skene', 'glad', 'mace'
    """
    check_choice("method", method, LABEL_METHODS)
    check_choice("tie_break", tie_break, TIE_BREAKS)
    check_columns(df, ("task", "worker", "label"))
    check_no_missing(df, ("task", "worker", "label"))
    if df.empty:
        raise ValueError("df has no rows: nothing to aggregate")
    check_labels_in_schema(df["label"], labels, what="label", tasks=df["task"])
    data = df[["task", "worker", "label"]]
    if model_labels is not None:
        model_series = to_series(model_labels, name="label", what="model_labels")
        check_labels_in_schema(model_series, labels, what="model_labels")
        data = with_model_answers(data, model_series, column="label", model_weight=model_weight)
    else:
        _check_weight(model_weight)
    _check_one_label_type(data["label"], what="labels")
    data = data.reset_index(drop=True)

    factories: dict[str, Callable[[], Any]] = {
        "majority_vote": MajorityVote,
        "wawa": Wawa,
        "dawid_skene": lambda: DawidSkene(n_iter=n_iter, tol=tol),
        "one_coin_dawid_skene": lambda: OneCoinDawidSkene(n_iter=n_iter, tol=tol),
        "glad": lambda: GLAD(n_iter=n_iter, tol=tol, silent=True),
        "mace": lambda: MACE(n_iter=n_iter, random_state=seed),
    }
    with _quiet_crowdkit():
        model = factories[method]()
        result = model.fit_predict(data)
    if method == "majority_vote":
        result = _break_ties(data, model.probas_, result, tie_break, seed)
    result = _sorted(result).rename("agg_label")
    result.index.name = "task"
    return result


def aggregate_texts(
    df: pd.DataFrame,
    *,
    method: str = "rover",
    normalizer: Normalizer = DEFAULT_NORMALIZER,
    model_texts: pd.Series | Mapping[Hashable, str] | None = None,
    model_weight: int = DEFAULT_MODEL_WEIGHT,
) -> pd.Series:
    """One transcript per task from several annotators' transcripts.

    ``"rover"``: Fiscus (1997), "A post-processing system to yield reduced word
    error rates: Recognizer Output Voting Error Reduction (ROVER)", IEEE ASRU. The
    transcripts are normalized, split into words, aligned into a word transition
    network (the first transcript of a task is the backbone) and the most voted word
    wins in each slot. crowd-kit's implementation.

    Args:
        df: Transcripts with columns ``task``, ``worker``, ``text``. ``""`` is a
            valid (empty) transcript; a missing text raises ValueError.
        method: One of :data:`TEXT_METHODS`.
        normalizer: Applied to every transcript before voting (default
            ``"english"``; ``"basic"`` for other languages; ``"none"`` to vote on
            the raw words, where "The" and "the" differ). The output is normalized.
        model_texts: The model's transcript per task (e.g. Whisper's), added as
            ``model_weight`` pseudo-workers after the humans.
        model_weight: Copies of the model's transcript (>= 1; default 1).

    Returns:
        A Series named ``agg_text`` indexed by ``task`` (every task of ``df``).

    Raises:
        ValueError: On an unknown method or normalizer, missing columns or texts, or
            bad model input.

    Example:
        >>> df = pd.DataFrame({"task": ["c1"] * 3, "worker": ["a", "b", "c"],
        ...                    "text": ["The cat sat.", "the cat sat", "a cat sat"]})
        >>> aggregate_texts(df).tolist()
        ['the cat sat']
        >>> aggregate_texts(df, model_texts={"c1": "a cat sat"}, model_weight=2).tolist()
        ['a cat sat']
    """
    check_choice("method", method, TEXT_METHODS)
    normalize = get_normalizer(normalizer)
    check_columns(df, ("task", "worker", "text"))
    check_no_missing(df, ("task", "worker", "text"))
    if df.empty:
        raise ValueError("df has no rows: nothing to aggregate")
    bad = df.index[~df["text"].map(lambda value: isinstance(value, str))]
    if len(bad):
        raise ValueError(
            f"text must be a string; rows {preview(bad)} (tasks "
            f"{preview(df.loc[bad, 'task'].tolist())}) are not"
        )
    data = df[["task", "worker", "text"]]
    if model_texts is not None:
        data = with_model_answers(data, model_texts, column="text", model_weight=model_weight)
        bad_model = data.index[~data["text"].map(lambda value: isinstance(value, str))]
        if len(bad_model):
            raise ValueError(
                f"model_texts must be strings; tasks {preview(data.loc[bad_model, 'task'].tolist())} are not"
            )
    else:
        _check_weight(model_weight)
    data = data.assign(text=[normalize(text) for text in data["text"]])
    with _quiet_crowdkit():
        result = ROVER(tokenizer=str.split, detokenizer=" ".join, silent=True).fit_predict(data)
    result = result.rename("agg_text")
    result.index.name = "task"
    return result
