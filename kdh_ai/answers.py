"""People's answers in a job: one place that reads pulled annotations and gold, and aggregates them.

Routing (the calibration slice), the delivered dataset and the reports all need the same things: each
item's human answer (aggregated when several people answered it), and how good the people are, measured on
gold items. They read them here, from the job directory:

* ``annotations.jsonl`` (written by ``kdh pull``): the latest record per ``annotation_id`` wins; deleted and
  skipped annotations are left out;
* ``gold.jsonl``: known answers (latest record per item_id; ``answer: null`` withdraws one).

Aggregation uses :mod:`kdh_ai.quality` (crowd-kit): ROVER for transcripts, Dawid-Skene (or majority vote for
fewer than 3 items) for labels, optionally with the model's answer as an extra, weighted annotator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from kdh_ai.job import Job
from kdh_ai.tasks import TaskType

__all__ = ["HumanAnswer", "HumanError", "annotations_table", "gold_answers", "human_answers",
           "human_error_rate"]

logger = logging.getLogger(__name__)


def annotations_table(job: Job) -> pd.DataFrame:
    """Current, non-deleted, non-skipped annotations with an answer, in the crowd-kit contract.

    Columns: ``task`` (item_id), ``worker`` (annotator e-mail, or id), ``answer``, ``gold`` (on a gold item),
    ``lead_time_s``, ``prelabeled``, ``created_at``, ``annotation_id``.
    """
    rows = []
    for rec in job.log("annotations").latest_by("annotation_id").values():
        if rec.get("deleted") or rec.get("skipped") or rec.get("answer") in (None, ""):
            continue
        rows.append({"task": rec["item_id"], "worker": rec.get("annotator_email") or str(rec.get("annotator_id")),
                     "answer": rec["answer"], "gold": bool(rec.get("gold")), "lead_time_s": rec.get("lead_time_s"),
                     "prelabeled": rec.get("prelabeled"), "created_at": rec.get("created_at"),
                     "annotation_id": rec.get("annotation_id")})
    return pd.DataFrame(rows, columns=["task", "worker", "answer", "gold", "lead_time_s", "prelabeled",
                                       "created_at", "annotation_id"])


def gold_answers(job: Job) -> dict[str, str]:
    """Known answers by item_id (``gold.jsonl``; withdrawn items left out)."""
    return {k: v["answer"] for k, v in job.log("gold").latest_by("item_id").items() if v.get("answer") is not None}


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
    """Each item's human answer: the single answer, or an aggregate of several.

    Args:
        job: The job.
        task: The job's task type (decides the aggregation: texts or labels).
        model_answers: The model's answers; when given, they join items with 2 or more human answers as
            ``model_weight`` extra annotators (model-aware aggregation).
        model_weight: Copies of the model's answer in the aggregation.
        items: Only these items (default: all annotated items, gold items included).
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


@dataclass
class HumanError:
    """How often the people are wrong, measured on gold items.

    Attributes:
        rate: Errors per unit (WER for transcription, 1 - accuracy for labels).
        upper: One-sided upper confidence bound at level ``1 - delta``.
        n_answers: Gold answers it is measured on.
        per_annotator: Each annotator's rate and count.
        source: ``"gold"``, or ``"assumed"`` when given by the lead instead of measured.
        se: Standard error of ``rate`` (:func:`kdh_ai.routing.threshold.rate_and_se`; 0 when assumed).
        errors: Errors counted on the gold answers (words or labels), for routing's Clopper-Pearson bound.
        units: Units (reference words or labels) of the gold answers.
    """

    rate: float
    upper: float
    n_answers: int
    per_annotator: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = "gold"
    se: float = 0.0
    errors: float = 0.0
    units: float = 0.0


def human_error_rate(job: Job, task: TaskType, *, delta: float = 0.05) -> HumanError | None:
    """The people's error rate on gold items (``None`` when no gold item has been answered yet)."""
    from scipy import stats

    from kdh_ai.routing.threshold import rate_and_se, ratio_upper_bound

    gold = gold_answers(job)
    table = annotations_table(job)
    table = table[table["task"].isin(gold)]
    if table.empty:
        return None
    errs = task.item_errors(list(table["answer"]), [gold[t] for t in table["task"]])
    table = table.assign(errors=errs[:, 0], units=errs[:, 1])
    e, u = table["errors"].to_numpy(), table["units"].to_numpy()
    rate, se = rate_and_se(e, u)
    _, upper = ratio_upper_bound(e, u, delta=delta)
    upper = min(1.0, max(upper if np.isfinite(upper) else 1.0, rate + float(stats.norm.ppf(1 - delta)) * se))
    per = {str(w): {"rate": float(g["errors"].sum() / g["units"].sum()), "n": int(len(g))}
           for w, g in table.groupby("worker")}
    return HumanError(rate, upper, int(len(table)), per, se=se, errors=float(e.sum()), units=float(u.sum()))
