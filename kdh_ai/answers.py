"""People's answers in a job: one place that reads pulled annotations and gold, and aggregates them.

Routing (the calibration slice), the delivered dataset and the reports all need the same things: each
item's human answer (aggregated when several people answered it), and the table of who answered what. They
read them here, from the job's records (:meth:`kdh_ai.job.Job.annotations`, :meth:`kdh_ai.job.Job.gold`):
deleted and skipped annotations are left out; a gold answer of ``None`` withdraws the item. How often the
people are wrong on gold is routing's measure (:func:`kdh_ai.routing.people.human_error_rate`).

Aggregation uses :mod:`kdh_ai.quality` (crowd-kit): ROVER for transcripts, Dawid-Skene (or majority vote for
fewer than 3 items) for labels, optionally with the model's answer as an extra, weighted annotator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from kdh_ai.job import Job
from kdh_ai.tasks import TaskType

__all__ = ["TABLE_COLUMNS", "HumanAnswer", "annotations_table", "gold_answers", "human_answers"]

logger = logging.getLogger(__name__)


TABLE_COLUMNS = ("task", "worker", "answer", "gold", "lead_time_s", "prelabeled", "created_at", "annotation_id",
                 "annotator_id", "updated_at", "skipped", "role")
"""Columns of :func:`annotations_table`."""


def annotations_table(job: Job, *, include_skipped: bool = False, include_gold: bool = True,
                      include_empty: bool = False) -> pd.DataFrame:
    """The job's current annotations (:meth:`Job.annotations`) as one table, in the crowd-kit contract.

    Columns: ``task`` (the unit key, :attr:`kdh_ai.records.Annotation.key`: the item id, or ``item#0007`` for
    a work segment of a long recording), ``worker`` (annotator e-mail, or id), ``answer``, ``gold`` (on a gold item),
    ``lead_time_s``, ``prelabeled``, ``created_at``, ``annotation_id``, ``annotator_id``, ``updated_at``,
    ``skipped``, ``role`` (the pushed task's role). Deleted annotations are always left out.

    Args:
        job: The job.
        include_skipped: Keep skipped annotations (their answer is ``None``).
        include_gold: Keep annotations of gold tasks.
        include_empty: Keep annotations of whole items whose answer is empty. (A segment of a long recording
            submitted with no text is always kept, with the answer ``""``: the annotator heard no speech in it,
            and Label Studio stores no text-box result for an empty box.)
    """
    rows = []
    for a in job.annotations():
        if (a.skipped and not include_skipped) or (a.gold and not include_gold):
            continue
        answer = a.answer
        if not a.skipped and answer in (None, "") and a.segment is not None:
            answer = ""  # a segment submitted with no text: nobody speaks in it (silence is an answer)
        elif not a.skipped and answer in (None, "") and not include_empty:
            continue
        rows.append({"task": a.key, "worker": a.worker, "answer": answer, "gold": a.gold,
                     "lead_time_s": a.lead_time_s, "prelabeled": a.prelabeled, "created_at": a.created_at,
                     "annotation_id": a.annotation_id, "annotator_id": a.annotator_id, "updated_at": a.updated_at,
                     "skipped": a.skipped, "role": a.role})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def gold_answers(job: Job) -> dict[str, str]:
    """Known answers by unit key (:meth:`Job.gold`; withdrawn items left out)."""
    return {k: str(g.answer) for k, g in job.gold().items()}


@dataclass
class HumanAnswer:
    """The people's answer for one item.

    Attributes:
        answer: The answer (aggregated when several people answered).
        annotators: Who answered.
        method: ``"single"``, or the aggregation method (``"rover"``, ``"dawid_skene"``...).
        model_aware: Whether the model's answer took part in the aggregation.
    """

    answer: str
    annotators: list[str] = field(default_factory=list)
    method: str = "single"
    model_aware: bool = False


def human_answers(job: Job, task: TaskType, *, model_answers: dict[str, str] | None = None,
                  model_weight: int = 1, items: set[str] | None = None) -> dict[str, HumanAnswer]:
    """Each unit's human answer by unit key (item id, or ``item#0007`` for a segment): the single answer, or
    an aggregate of several. Quality and aggregation see each segment of a long recording as a task of its own.

    Args:
        job: The job.
        task: The job's task type (decides the aggregation: texts or labels).
        model_answers: The model's answers by unit key; when given, they join items with 2 or more human answers as
            ``model_weight`` extra annotators (model-aware aggregation).
        model_weight: Copies of the model's answer in the aggregation.
        items: Only these unit keys (default: all annotated units, gold included).
    """
    from kdh_ai import quality

    table = annotations_table(job)
    if items is not None:
        table = table[table["task"].isin(items)]
    out: dict[str, HumanAnswer] = {}
    if table.empty:
        return out
    counts = table.groupby("task")["worker"].nunique()
    single = table[table["task"].isin(counts[counts == 1].index)].sort_values("created_at")
    for item_id, grp in single.groupby("task"):
        out[str(item_id)] = HumanAnswer(str(grp["answer"].iloc[-1]), [str(grp["worker"].iloc[-1])])
    multi = table[table["task"].isin(counts[counts > 1].index)].drop_duplicates(["task", "worker"], keep="last")
    if multi.empty:
        return out
    workers = multi.groupby("task")["worker"].apply(lambda s: [str(w) for w in s])
    model = None
    if model_answers:
        model = {k: v for k, v in model_answers.items() if k in set(multi["task"]) and v}
    if task.item_kind == "audio":
        df = multi.rename(columns={"answer": "text"})[["task", "worker", "text"]]
        # No normalization: the delivered transcript keeps the annotators' casing and punctuation.
        agg = quality.aggregate_texts(df, method="rover", normalizer="none", model_texts=model or None,
                                      model_weight=model_weight)
        method = "rover"
    else:
        df = multi.rename(columns={"answer": "label"})[["task", "worker", "label"]]
        method = "dawid_skene" if df["task"].nunique() >= 3 else "majority_vote"
        agg = quality.aggregate_labels(df, method=method, model_labels=model or None, model_weight=model_weight)
    for item_id, answer in agg.items():
        out[str(item_id)] = HumanAnswer(str(answer), workers[item_id], method, bool(model))
    return out
