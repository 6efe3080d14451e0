"""The next human round of a classification job (active learning), chosen and recorded in ``routing.jsonl``.

:func:`choose_next_round` is what ``kdh select`` runs: it builds the pool (items with a current prediction that
nobody has answered and that are not already with people), asks
:func:`kdh_ai.active_learning.select_next_round` for the round, gives each chosen item its reason, and records
the round with role ``human`` (step ``select``), which is where ``kdh push`` looks.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from kdh_ai.active_learning import STRATEGIES, RoundSelection, select_next_round
from kdh_ai.answers import gold_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.records import Prediction
from kdh_ai.routing.plan import HUMAN_ROLES, current_roles, mark_roles

__all__ = ["NextRound", "choose_next_round", "write_round_csv"]


@dataclass
class NextRound:
    """A chosen round and what it was chosen from.

    Attributes:
        job: The job.
        selection: The chosen items (see :class:`~kdh_ai.active_learning.RoundSelection`).
        reasons: Why each chosen item was chosen, in words (``{item_id: reason}``).
        predictions: The job's current predictions (for listing what the model said of each chosen item).
        heads: The heads behind the current ``ok`` predictions (``{"zero_shot"}`` on a cold start).
        with_people: Items left out of the pool because they are already with people (routed to people,
            pushed to Label Studio, or gold).
        had_routing: Whether the job had a ``routing.jsonl`` before this round.
        recorded: Items recorded in ``routing.jsonl`` (0 on a dry run).
    """

    job: Job
    selection: RoundSelection
    reasons: dict[str, str]
    predictions: dict[str, Prediction] = field(repr=False)
    heads: set[str]
    with_people: int
    had_routing: bool
    recorded: int = 0

    @property
    def cold(self) -> bool:
        """Whether the predictions still come from the zero-shot head (the round is then drawn at random)."""
        return self.heads == {"zero_shot"}


def _reason(item_id: str, uncertain: set[str], score: float, strategy: str, cold: bool) -> str:
    if item_id in uncertain:
        what = "margin between the two most probable labels" if strategy == "margin" else "top probability"
        return f"uncertain: {what} {score:.3f}"
    if cold:
        return "random: cold start (zero-shot predictions)"
    return "random share: unbiased sample for calibration"


def _check_job(job: Job) -> dict[str, Prediction]:
    """The job's current predictions; refuses a directory that is not a classification job with predictions."""
    if not job.manifest_path.exists():
        raise InvalidInputError(f"{job.root} is not a job directory (no job.json); run `kdh prelabel classify` "
                                "first")
    if job.task != "classification":
        raise InvalidInputError(f"{job.root} is a {job.task or 'unknown-task'} job: `kdh select` chooses rounds "
                                "for classification jobs only (for transcription, use `kdh route`)")
    preds = job.current_predictions()
    if not preds:
        raise InvalidInputError(f"{job.root} has no predictions yet; run `kdh prelabel classify` first")
    return preds


def choose_next_round(job_dir: str | Path | Job, n: int, *, random_share: float = 0.2, strategy: str = "margin",
                      balance: bool = True, seed: int = 0, out: str | Path | None = None,
                      record: bool = True) -> NextRound:
    """Choose the next round of items for people: the most uncertain, plus a random share; record it.

    The pool is every item with a current prediction that nobody has answered and that is not already with
    people (routed to a human role, pushed to Label Studio, or gold). While the predictions come from the
    zero-shot head the whole round is drawn at random.

    Args:
        job_dir: A classification job (or its directory).
        n: Items to choose.
        random_share: Share of the round drawn uniformly at random from the rest of the pool.
        strategy: ``"margin"`` or ``"least_confident"``.
        balance: Go round the predicted labels when picking uncertain items.
        seed: Seed of the random draw.
        out: Also write the chosen items to this CSV (``item_id, reason, score, predicted, confidence``).
        record: Record the round in ``routing.jsonl`` (role ``human``, step ``select``); ``False`` for a dry run.

    Raises:
        InvalidInputError: Not a classification job, no predictions yet, bad options, or ``out`` cannot be
            written.
        JobLockedError: Another run holds the job.
    """
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    job = job_dir if isinstance(job_dir, Job) else Job(Path(job_dir))
    preds = _check_job(job)
    had_routing = (job.root / "routing.jsonl").exists()
    roles = current_roles(job) if had_routing else {}
    pushed = {k for k, t in job.pushed_tasks().items() if not t.missing}
    with_people = {k for k, r in roles.items() if r in HUMAN_ROLES} | pushed | set(gold_answers(job))
    sel = select_next_round(job, n, random_share=random_share, seed=seed, strategy=strategy, balance=balance,
                            exclude=with_people)
    heads = {str(p.payload.get("head")) for p in preds.values() if p.status == "ok"}
    uncertain = set(sel.uncertain)
    reasons = {k: _reason(k, uncertain, sel.scores[k], strategy, heads == {"zero_shot"}) for k in sel.item_ids}
    for k, label in sel.for_missing.items():
        reasons[k] = f"missing class: no human label yet for {label!r} (probability {sel.scores[k]:.3f})"
    result = NextRound(job=job, selection=sel, reasons=reasons, predictions=preds, heads=heads,
                       with_people=len(with_people), had_routing=had_routing)
    if out is not None:
        write_round_csv(result, out)
    if record and sel.item_ids:
        with job:
            mark_roles(job, {k: ("human", f"active learning: {reasons[k]}") for k in sel.item_ids}, "select")
        result.recorded = len(sel.item_ids)
    return result


def write_round_csv(result: NextRound, path: str | Path) -> Path:
    """Write the chosen items to a CSV: ``item_id, reason, score, predicted, confidence``.

    Raises:
        InvalidInputError: The file cannot be written (the message says why).
    """
    path = Path(path)
    sel, preds = result.selection, result.predictions
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "reason", "score", "predicted", "confidence"])
            for k in sel.item_ids:
                w.writerow([k, result.reasons[k], f"{sel.scores[k]:.6f}", preds[k].text,
                            f"{preds[k].confidence:.6f}"])
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc}") from None
    return path
