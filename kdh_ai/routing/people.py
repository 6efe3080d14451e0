"""How good the people are: their error rate on gold items, as routing's evidence.

Routing promises a delivered error rate only as far as it can bound the people's own; this module measures it
from the job's gold answers (:meth:`kdh_ai.job.Job.gold`) and the people's answers on them
(:func:`kdh_ai.answers.annotations_table`), with the bounds of :mod:`kdh_ai.routing.threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kdh_ai.answers import annotations_table, gold_answers
from kdh_ai.job import Job
from kdh_ai.routing.threshold import rate_and_se, ratio_upper_bound
from kdh_ai.tasks import TaskType

__all__ = ["HumanError", "human_error_rate"]


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
