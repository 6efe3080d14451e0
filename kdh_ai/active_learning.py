"""The model-in-the-loop cycle for classification: human labels in, the next round of items out.

One round of the loop::

    kdh prelabel classify ...                       # predictions with calibrated confidence
    select_next_round(job, n=200)                   # the items people should label next
    ... people label them in Label Studio; the labels are pulled into JOB_DIR/annotations.jsonl ...
    kdh prelabel classify ...                       # same command: retrains on the labels, re-predicts

:func:`select_round` picks ``n`` items: ``(1 - random_share) * n`` of the most uncertain ones (uncertainty
sampling: what the model learns most from) plus ``random_share * n`` drawn uniformly from the rest. The random
share keeps an unbiased sample of the batch under human eyes, so the calibration of the confidences, and the
accuracy of what routing auto-accepts, can be measured on it rather than only on the hard cases.

Uncertainty is the **margin** between the two most probable labels by default (``"least_confident"``, the
top probability, is the other choice), and the uncertain picks are **balanced over the predicted labels**
(the most uncertain item of each predicted label first, then the second, ...), so one confusable pair of
labels cannot take the whole round. While the job's predictions still come from the zero-shot head, the
first round is drawn **at random**: the zero-shot model's uncertainty says little about what it would learn
(on BANKING77 a least-confident first round left the trained head below the zero-shot one, a random round
above it: figures in ``benchmarks/README.md``). ``benchmarks/classification.py`` prints the curve.

**Classes nobody has labelled yet.** When the trained head has no human label for some classes (its labels were
all "ham", say), uncertainty cannot find them: such a head is sure of everything. The round then first asks
for the missing classes: the items the head gives the highest probability of each missing class (going round
the missing classes), for the whole non-random part when the head is marked uncalibrated
(:attr:`kdh_ai.heads.Head.calibration_warning`), else for up to ``missing_share`` of the round.

Lewis and Gale. *A Sequential Algorithm for Training Text Classifiers*. SIGIR 1994 (uncertainty sampling);
Scheffer, Decomain, Wrobel. *Active Hidden Markov Models for Information Extraction*. IDA 2001 (margin).

:func:`read_human_labels` reads the labels people gave, from a job (its ``annotations.jsonl`` and
``gold.jsonl``) or from a CSV (``item_id,label``, optional ``text``). From a job, each item's label is its
human answer as the rest of the flow sees it (:func:`kdh_ai.answers.human_answers`: the single answer, or
Dawid-Skene / majority vote over several; never the model's own answer), and a gold item's known answer wins.

Example:
    >>> margin = {"a": 0.99, "b": 0.41, "c": 0.70, "d": 0.95, "e": 0.30, "f": 0.88}
    >>> sel = select_round(margin, n=3, random_share=1/3, seed=0)
    >>> sel.uncertain
    ['e', 'b']
    >>> len(sel.random), sel.random[0] in {"a", "c", "d", "f"}
    (1, True)
    >>> predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "x", "f": "y"}
    >>> select_round(margin, n=2, random_share=0, groups=predicted).uncertain   # one per predicted label
    ['e', 'c']
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdh_ai.errors import InputFileNotFoundError, InvalidInputError
from kdh_ai.heads import Head, LogisticHead
from kdh_ai.job import Job
from kdh_ai.labels import LabelSet
from kdh_ai.tasks.classification import ClassificationTask, Classifier, ClassifyOptions

__all__ = ["HumanLabels", "RoundSelection", "classifier_for_job", "read_human_labels", "select_next_round",
           "select_round", "uncertainty"]

logger = logging.getLogger(__name__)

STRATEGIES = ("margin", "least_confident")
"""Uncertainty measures (lower = less sure): top-two probability gap, or top probability."""


def uncertainty(probabilities: np.ndarray, *, strategy: str = "margin") -> np.ndarray:
    """Per-row uncertainty score of class probabilities ``(n, k)``; lower means less sure.

    Example:
        >>> uncertainty(np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])).round(2).tolist()
        [0.2, 0.85]
        >>> uncertainty(np.array([[0.5, 0.3, 0.2]]), strategy="least_confident").tolist()
        [0.5]
    """
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    p = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)
    if strategy == "least_confident" or p.shape[1] < 2:
        return p[:, -1]
    return p[:, -1] - p[:, -2]


@dataclass
class RoundSelection:
    """The items chosen for the next human round.

    Attributes:
        item_ids: All chosen items: the uncertain ones (least confident first), then the random ones.
        uncertain: Chosen by uncertainty.
        random: Drawn uniformly from the rest of the pool (for calibration and unbiased accuracy).
        scores: The uncertainty score of each chosen item (its confidence, or its margin); for an item chosen
            for a missing class, its probability of that class.
        pool_size: Items that could have been chosen.
        missing_classes: Classes with no human label behind the head (asked for first).
        for_missing: Chosen as the most likely members of a missing class (``{item_id: class}``; they come
            first in ``item_ids`` and are also in ``uncertain``).
    """

    item_ids: list[str]
    uncertain: list[str]
    random: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    pool_size: int = 0
    missing_classes: list[str] = field(default_factory=list)
    for_missing: dict[str, str] = field(default_factory=dict)


def select_round(scores: Mapping[str, float], *, n: int, random_share: float = 0.2, seed: int = 0,
                 groups: Mapping[str, str] | None = None) -> RoundSelection:
    """Choose ``n`` items: the lowest scores first, plus a uniform random share of the rest.

    Args:
        scores: An uncertainty score per item id, lower = less sure (margin, or confidence).
        n: Items to choose (all of the pool when it is smaller).
        random_share: Share of ``n`` drawn at random, in [0, 1].
        seed: Seed of the random draw and of tie-breaking.
        groups: A group per item (its predicted label): the uncertain picks go round the groups, the most
            uncertain item of each group first. ``None``: plain lowest scores.

    Raises:
        ValueError: ``n`` is negative or ``random_share`` is outside [0, 1].
    """
    if n < 0:
        raise InvalidInputError(f"n must be 0 or more, got {n}")
    if not 0.0 <= random_share <= 1.0:
        raise InvalidInputError(f"random_share must lie in [0, 1], got {random_share!r}")
    ids = sorted(scores)
    n = min(n, len(ids))
    rng = np.random.default_rng(seed)
    n_random = int(round(n * random_share))
    n_uncertain = n - n_random
    tiebreak = rng.permutation(len(ids))
    rank = [0] * len(ids)
    if groups is not None:
        members: dict[str, list[int]] = {}
        for i, item_id in enumerate(ids):
            members.setdefault(str(groups.get(item_id)), []).append(i)
        for idx in members.values():
            for r, i in enumerate(sorted(idx, key=lambda i: (float(scores[ids[i]]), tiebreak[i]))):
                rank[i] = r
    order = sorted(range(len(ids)), key=lambda i: (rank[i], float(scores[ids[i]]), tiebreak[i]))
    uncertain = [ids[i] for i in order[:n_uncertain]]
    rest = [ids[i] for i in order[n_uncertain:]]
    random = [rest[i] for i in rng.choice(len(rest), size=min(n_random, len(rest)), replace=False)] if rest else []
    chosen = uncertain + random
    return RoundSelection(item_ids=chosen, uncertain=uncertain, random=random,
                          scores={i: float(scores[i]) for i in chosen}, pool_size=len(ids))


@dataclass
class HumanLabels:
    """Human labels by item.

    Attributes:
        labels: The label of each item.
        texts: The text of each item, where the source gave one (CSV ``text`` column).
        ties: Items whose annotators disagreed without a majority (left out of ``labels``).
        source: Where the labels came from.
    """

    labels: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)
    ties: list[str] = field(default_factory=list)
    source: str = ""


def _majority(answers: Mapping[str, list[str]]) -> tuple[dict[str, str], list[str]]:
    out: dict[str, str] = {}
    ties: list[str] = []
    for item_id, values in answers.items():
        top = Counter(values).most_common(2)
        if len(top) > 1 and top[0][1] == top[1][1]:
            ties.append(item_id)
        else:
            out[item_id] = top[0][0]
    return out, ties


def read_human_labels(source: str | Path | Job) -> HumanLabels:
    """Read human labels from a job (or its ``annotations.jsonl``), or from a CSV/TSV ``item_id,label[,text]``.

    From a job: each answered item's aggregated human answer, with gold answers on top (see the module
    docstring). From a CSV, an item may appear on several rows (several annotators): the majority label
    counts, and items whose labels tie are left out (listed in ``ties``).

    Raises:
        ValueError: A CSV without ``item_id`` and ``label`` columns, or an unknown file type.
        FileNotFoundError: The file does not exist.
    """
    if isinstance(source, Job):
        path = source.root / "annotations.jsonl"
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / "annotations.jsonl"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        from kdh_ai.answers import gold_answers, human_answers

        job = source if isinstance(source, Job) else Job(path.parent)
        if not path.exists() and not (job.root / "gold.jsonl").exists():
            raise InputFileNotFoundError(f"labels file {path} does not exist")
        labels = {k: a.answer for k, a in human_answers(job, ClassificationTask()).items()}
        labels.update(gold_answers(job))
        return HumanLabels(labels=labels, source=str(path))
    if not path.exists():
        raise InputFileNotFoundError(f"labels file {path} does not exist")
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise InvalidInputError(f"{path}: unknown labels file type {path.suffix!r}; use .csv, .tsv or annotations.jsonl")
    answers: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        cols = reader.fieldnames or []
        if "item_id" not in cols or "label" not in cols:
            raise InvalidInputError(f"{path}: needs the columns item_id and label (and optionally text); found {cols}")
        for row in reader:
            item_id, label = (row.get("item_id") or "").strip(), (row.get("label") or "").strip()
            if not item_id or not label:
                continue
            answers.setdefault(item_id, []).append(label)
            if row.get("text"):
                texts[item_id] = row["text"]
    labels, ties = _majority(answers)
    if ties:
        logger.info("%s: %d items have tied labels and are left out of training", path.name, len(ties))
    return HumanLabels(labels=labels, texts=texts, ties=ties, source=str(path))


def select_next_round(job: Job | str | Path, n: int, *, random_share: float = 0.2, seed: int = 0,
                      strategy: str = "margin", balance: bool = True, cold_start_random: bool = True,
                      exclude: Collection[str] = (), missing_share: float = 0.5) -> RoundSelection:
    """Choose the items people should label next, from a classification job's current predictions.

    The pool is every item with a current ``ok`` prediction that no one has answered yet (in the job's
    ``annotations.jsonl``) and that is not in ``exclude``.

    Args:
        job: The job (or its directory).
        n: Items to choose.
        random_share: Share of ``n`` drawn uniformly at random from the rest of the pool.
        seed: Seed of the random draw.
        strategy: ``"margin"`` (smallest gap between the two most probable labels) or ``"least_confident"``
            (lowest calibrated top probability).
        balance: Go round the predicted labels when picking uncertain items.
        cold_start_random: While the predictions come from the zero-shot head, draw the whole round at random.
        exclude: Item ids not to choose (already sent to people, gold items...).
        missing_share: Share of ``n`` asked for classes with no human label yet (see the module docstring);
            all of the non-random part when the head is uncalibrated.

    Raises:
        ValueError: Unknown ``strategy``, or a job that is not a classification job.
    """
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    job = job if isinstance(job, Job) else Job(Path(job))
    task = job.task
    if task != "classification":
        raise InvalidInputError(f"{job.root} is a {task} job; select_next_round needs a classification job")
    answered = {a.item_id for a in job.annotations() if a.counts}
    skip = answered | set(exclude)
    scores: dict[str, float] = {}
    predicted: dict[str, str] = {}
    heads: set[str] = set()
    current = job.current_predictions()
    for item_id, pred in current.items():
        if pred.status != "ok" or item_id in skip or pred.confidence is None:
            continue
        margin = pred.payload.get("margin")
        scores[item_id] = float(margin) if strategy == "margin" and margin is not None else pred.confidence
        predicted[item_id] = pred.text
        heads.add(str(pred.payload.get("head")))
    cold = cold_start_random and heads == {"zero_shot"}
    head_info = job.read_manifest().get("head") or {}
    missing = [str(c) for c in head_info.get("missing_classes") or []] if head_info.get("kind") == "trained" else []
    for_missing: dict[str, str] = {}
    if missing and not cold:
        share = (1.0 - random_share) if head_info.get("warning") else min(missing_share, 1.0 - random_share)
        probs = {k: current[k].payload.get("probabilities") or {} for k in scores}
        for_missing = _for_missing(probs, missing, int(round(min(n, len(scores)) * share)))
        logger.warning("No human label yet for %s: %d item(s) of this round are the likeliest members of them",
                       ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""), len(for_missing))
    rest = {k: v for k, v in scores.items() if k not in for_missing}
    selection = select_round(rest, n=max(0, n - len(for_missing)), random_share=1.0 if cold else random_share,
                             seed=seed, groups=predicted if balance else None)
    if for_missing:
        picked = list(for_missing)
        selection = RoundSelection(item_ids=picked + selection.item_ids, uncertain=picked + selection.uncertain,
                                   random=selection.random,
                                   scores={**{k: float(probs[k].get(c, 0.0)) for k, c in for_missing.items()},
                                           **selection.scores},
                                   pool_size=len(scores))
    selection.missing_classes, selection.for_missing = missing, for_missing
    logger.info("Next round: %d uncertain + %d random of %d unanswered items (%s%s%s)", len(selection.uncertain),
                len(selection.random), selection.pool_size, strategy, ", balanced" if balance else "",
                "; zero-shot predictions: all random" if cold else "")
    return selection


def _for_missing(probabilities: Mapping[str, Mapping[str, float]], missing: list[str], n: int) -> dict[str, str]:
    """Up to ``n`` items most likely to belong to a missing class, going round the missing classes.

    ``probabilities``: each pool item's predicted probabilities (its ``top_k`` labels; a class left out counts
    as 0, and an item is never chosen for a class it has probability 0 of).

    Example:
        >>> probs = {"a": {"ham": 0.9, "spam": 0.1}, "b": {"ham": 0.6, "spam": 0.4}, "c": {"ham": 1.0}}
        >>> _for_missing(probs, ["spam"], 5)
        {'b': 'spam', 'a': 'spam'}
    """
    ranked: dict[str, list[str]] = {}
    for label in missing:
        cand = [(float(p.get(label, 0.0)), k) for k, p in probabilities.items()]
        ranked[label] = [k for p, k in sorted(cand, key=lambda t: (-t[0], t[1])) if p > 0]
    chosen: dict[str, str] = {}
    depth = 0
    while len(chosen) < n and any(depth < len(v) for v in ranked.values()):
        for label in missing:
            if len(chosen) >= n:
                break
            if depth < len(ranked[label]) and ranked[label][depth] not in chosen:
                chosen[ranked[label][depth]] = label
        depth += 1
    return chosen


def classifier_for_job(options: ClassifyOptions, job_dir: str | Path, *, labels: LabelSet,
                       source: str | Path | None = None, log_progress: bool = False) -> Classifier:
    """The classifier of a job: embeddings cached in ``JOB_DIR/embeddings/``; the head trained on the human
    labels (``options.train_labels``, else the job's ``annotations.jsonl``) unless ``options.head`` says
    zero-shot. A trained head is saved to ``JOB_DIR/heads/<identity>.npz``.

    Raises:
        ValueError: ``head="trained"`` without human labels, or labels outside the label set.
        FileNotFoundError: ``options.train_labels`` does not exist.
    """
    job = Job(Path(job_dir))
    clf = Classifier(options, labels=labels, cache_dir=job.root / "embeddings",
              source=str(Path(source).expanduser().resolve()) if source is not None else None)
    if options.head == "zero_shot":
        logger.info("Head: zero-shot from the %d label names%s", len(labels.labels),
                    " and descriptions" if any(lab.description for lab in labels.labels) else "")
        _record_head(job, clf.head)
        return clf
    labels_file: Path | None = Path(options.train_labels).expanduser() if options.train_labels else None
    if labels_file is None and (job.root / "annotations.jsonl").exists():
        labels_file = job.root / "annotations.jsonl"
    human = read_human_labels(labels_file) if labels_file is not None else None
    texts: list[str] = []
    answers: list[str] = []
    missing = 0
    if human is not None:
        items = job.current_items()
        for item_id, label in sorted(human.labels.items()):
            job_item = items.get(item_id) or {}
            text = human.texts.get(item_id) or (None if job_item.get("error") else job_item.get("text"))
            if not text or not text.strip():
                missing += 1
                continue
            texts.append(text)
            answers.append(label)
        if missing:
            logger.warning("%d human labels in %s are for items with no usable text in this job (and the file "
                           "has no text column); they were left out", missing, labels_file)
    if not answers:
        if options.train_labels:
            n = len(human.labels) if human is not None else 0
            raise InvalidInputError(f"--train-labels {labels_file}: no usable human label ("
                             + (f"{n} label(s) read, none for an item of this job with text; add a 'text' "
                                "column or use the job's item ids" if n else "the file holds no item_id,label "
                                "row with both filled in")
                             + "). Fix the file, or leave out --train-labels for a zero-shot run")
        if options.head == "trained":
            raise InvalidInputError("head=trained needs human labels: give --train-labels (CSV item_id,label) or pull "
                             "the job's annotations from Label Studio first")
        logger.info("Head: zero-shot (no human labels yet)")
        _record_head(job, clf.head)
        return clf
    head = clf.train(texts, answers, log_progress=log_progress)
    cv = f", cross-validated accuracy {head.cv_accuracy_:.3f}" if isinstance(head, LogisticHead) and \
        head.cv_accuracy_ is not None else ""
    logger.info("Head: trained on %d human labels from %s%s", head.n_train, labels_file, cv)
    head.save(job.root / "heads" / f"{head.identity}.npz")
    if head.calibration_warning is None and head.missing_classes:
        logger.warning("No human label yet for %d of %d classes (%s%s): the head predicts them from their "
                       "label descriptions only; `kdh select` asks for them", len(head.missing_classes),
                       len(head.classes), ", ".join(head.missing_classes[:10]),
                       " ..." if len(head.missing_classes) > 10 else "")
    _record_head(job, head)
    return clf


def _record_head(job: Job, head: Head) -> None:
    """Write which head answers, and what is known to be wrong with it, into ``job.json`` (key ``head``)."""
    if job.root.is_dir():  # in a run, the locked job directory (job.json may not exist yet: the run merges it)
        job.update_manifest(head={k: v for k, v in head.info().items() if k not in ("classes", "identity_extra")})
