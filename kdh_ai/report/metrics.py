"""Every applicable quality metric of a job, from its predictions, pulled annotations and gold.

:func:`job_metrics` reads the job directory and calls the pure functions of :mod:`kdh_ai.quality`. What cannot
be computed (no gold yet, one annotator where agreement needs two...) is not a crash and not a silent NaN:
the metric is ``None`` and ``not_enough_data`` says why. ``kdh quality JOB_DIR`` writes the result as
``metrics.json`` and the per-annotator table as ``annotators.csv``; the client report is built from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from kdh_ai import quality
from kdh_ai.answers import annotations_table, gold_answers, human_answers
from kdh_ai.job import Job
from kdh_ai.tasks import get_task

__all__ = ["annotator_table", "job_metrics"]

logger = logging.getLogger(__name__)


def _try(reasons: dict[str, str], key: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (quality.InsufficientDataError, ValueError) as exc:
        reasons[key] = str(exc)
        return None


def _durations(job: Job) -> dict[str, float]:
    return {k: float(p.payload["duration_s"]) for k, p in job.current_predictions().items()
            if p.payload.get("duration_s")}


def annotator_table(job: Job) -> pd.DataFrame:
    """One row per annotator: answers, hours of work, speed, and accuracy (or WER) on gold with its interval.

    Columns: ``annotator, answers, hours, median_lead_time_s, rtf`` (audio only: seconds of work per second
    of audio), ``gold_answers, gold_error`` (WER or 1 - accuracy), ``gold_accuracy, gold_low, gold_high``
    (labels: Wilson 95% interval).
    """
    task = get_task(job.task or "")
    table = annotations_table(job)
    if table.empty:
        return pd.DataFrame(columns=["annotator", "answers", "hours", "median_lead_time_s", "gold_answers",
                                     "gold_error"])
    durations = _durations(job) if task.item_kind == "audio" else {}
    gold = gold_answers(job)
    rows = []
    for worker, grp in table.groupby("worker"):
        lead = pd.to_numeric(grp["lead_time_s"], errors="coerce")
        row: dict[str, Any] = {"annotator": worker, "answers": int(len(grp)), "hours": float(lead.sum() / 3600),
                               "median_lead_time_s": float(lead.median()) if lead.notna().any() else None}
        if durations:
            audio = sum(durations.get(t, 0.0) for t in grp["task"])
            row["rtf"] = float(lead.sum() / audio) if audio > 0 and lead.notna().any() else None
        on_gold = grp[grp["task"].isin(gold)]
        row["gold_answers"] = int(len(on_gold))
        if len(on_gold):
            errs = task.item_errors(list(on_gold["answer"]), [gold[t] for t in on_gold["task"]])
            row["gold_error"] = float(errs[:, 0].sum() / errs[:, 1].sum()) if errs[:, 1].sum() else None
            if task.item_kind == "text":
                correct = int(len(on_gold) - errs[:, 0].sum())
                low, high = quality.wilson_interval(correct, len(on_gold))
                row.update(gold_accuracy=correct / len(on_gold), gold_low=low, gold_high=high)
        else:
            row["gold_error"] = None
        rows.append(row)
    return pd.DataFrame(rows).sort_values("annotator").reset_index(drop=True)


def _model_vs(task: Any, preds: dict[str, Any], refs: dict[str, str]) -> dict[str, Any] | None:
    ids = [k for k in refs if k in preds and preds[k].status != "error"]
    if not ids:
        return None
    errs = task.item_errors([preds[k].text for k in ids], [refs[k] for k in ids])
    if errs[:, 1].sum() == 0:
        return None
    out = {"items": len(ids), "error_rate": float(errs[:, 0].sum() / errs[:, 1].sum())}
    if task.item_kind == "audio":
        out["wer"] = out["error_rate"]
        out["cer"] = float(quality.cer([refs[k] for k in ids], [preds[k].text for k in ids]))
    else:
        out["accuracy"] = 1 - out["error_rate"]
    return out


def job_metrics(job: Job) -> dict[str, Any]:
    """All applicable metrics of a job (see the module docstring)."""
    task = get_task(job.task or "")
    manifest = job.read_manifest()
    preds = job.current_predictions()
    items = job.current_items()
    roles = {k: v["role"] for k, v in job.log("routing").latest_by("item_id").items()}
    reasons: dict[str, str] = {}
    metric = "wer" if task.item_kind == "audio" else "error_rate"
    out: dict[str, Any] = {"task": task.name, "metric": metric, "items": len(items),
                           "model": manifest.get("model"), "config_hash": manifest.get("config_hash"),
                           "statuses": manifest.get("counts"),
                           "roles": {r: sum(v == r for v in roles.values()) for r in set(roles.values())}}
    durations = _durations(job)
    if durations:
        out["audio_hours"] = sum(durations.values()) / 3600

    # Model quality: against the client's references, and against people's answers on routed items.
    client_refs = {k: v["reference"] for k, v in items.items() if v.get("reference")}
    out["model_vs_client_reference"] = _model_vs(task, preds, client_refs)
    if out["model_vs_client_reference"] is None:
        reasons["model_vs_client_reference"] = "the client gave no reference answers"
    humans = human_answers(job, task)
    out["model_vs_people"] = _model_vs(task, preds, {k: h.answer for k, h in humans.items()})
    if out["model_vs_people"] is None:
        reasons["model_vs_people"] = "no item has a human answer yet (push, annotate, pull)"

    # Delivered quality: the routing promise, and what the audit found.
    routing = manifest.get("routing") or {}
    out["delivered"] = {k: routing.get(k) for k in ("estimated_error", "error_upper", "human_share", "threshold",
                                                    "reachable", "message")} if routing else None
    if routing:
        out["delivered"]["audit"] = (routing.get("details") or {}).get("audit")
        out["delivered"]["target"] = (routing.get("details") or {}).get("target")
        out["delivered"]["delta"] = (routing.get("details") or {}).get("delta")
        out["delivered"]["human_error"] = routing.get("human_error")
        out["delivered"]["pooled_calibration"] = (routing.get("details") or {}).get("pooled_calibration")
        out["delivered"]["calibration_reviewed"] = bool((routing.get("details") or {}).get("calibration_reviewed"))
    else:
        reasons["delivered"] = "the job has not been routed (kdh route)"
    if roles:
        out["human_share"] = sum(r in ("calibration", "gold", "human", "audit") for r in roles.values()) / len(roles)

    # People: per annotator, agreement on overlap items, effort with and without pre-labels.
    table = annotations_table(job)
    out["annotators"] = annotator_table(job).to_dict(orient="records")
    if table.empty:
        reasons["annotators"] = "no annotations pulled yet"
    ordinary = table[~table["task"].isin(gold_answers(job))] if not table.empty else table
    if task.item_kind == "text":
        summary = quality.agreement_summary(ordinary.rename(columns={"answer": "label"})[["task", "worker", "label"]])
        out["agreement"] = {"tasks_with_overlap": summary.n_tasks_multi, "percent_agreement": summary.percent_agreement,
                            "fleiss_kappa": summary.fleiss_kappa, "krippendorff_alpha": summary.krippendorff_alpha}
        reasons.update({f"agreement.{k}": v for k, v in summary.reasons.items()})
    else:
        out["agreement"] = _transcript_agreement(ordinary, reasons)
    if not durations:
        reasons["effort"] = ("the real-time factor of human work needs audio durations; this job has none"
                             if task.item_kind == "audio" else "the real-time factor applies to audio jobs")
    elif table.empty:
        reasons["effort"] = "no annotations pulled yet"
    else:
        eff = table.assign(lead_time=pd.to_numeric(table["lead_time_s"], errors="coerce"),
                           prelabeled=table["prelabeled"].fillna(True).astype(bool))
        comp = _try(reasons, "effort", lambda: quality.compare_prelabel_effort(
            eff[["task", "lead_time", "prelabeled"]], durations=durations))
        out["effort"] = None if comp is None else {
            "rtf_with_prelabels": comp.with_prelabels.rtf, "rtf_without_prelabels": comp.without_prelabels.rtf,
            "speedup": comp.speedup, "p_value": comp.p_value}
    out["turnaround"] = _turnaround(manifest, table)
    out["not_enough_data"] = reasons
    return out


def _transcript_agreement(table: pd.DataFrame, reasons: dict[str, str]) -> dict[str, Any] | None:
    """Mean pairwise WER between annotators of the same clip (lower = more agreement)."""
    if table.empty:
        reasons["agreement"] = "no annotations pulled yet"
        return None
    multi = table.groupby("task").filter(lambda g: g["worker"].nunique() > 1)
    if multi.empty:
        reasons["agreement"] = "agreement needs clips transcribed by two or more annotators (overlap); none yet"
        return None
    refs, hyps = [], []
    for _, grp in multi.groupby("task"):
        answers = grp.drop_duplicates("worker", keep="last")["answer"].tolist()
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                refs.append(answers[i])
                hyps.append(answers[j])
    pairwise = _try(reasons, "agreement", lambda: quality.wer(refs, hyps))
    return {"clips_with_overlap": int(multi["task"].nunique()), "pairwise_wer": pairwise}


def _turnaround(manifest: dict[str, Any], table: pd.DataFrame) -> dict[str, Any] | None:
    if table.empty or table["created_at"].isna().all():
        return None
    times = pd.to_datetime(table["created_at"], errors="coerce", utc=True).dropna()
    start = pd.to_datetime(manifest.get("created_at"), errors="coerce", utc=True)
    first, last = times.min(), times.max()
    origin = start if pd.notna(start) and start <= first else first
    return {"job_created": str(origin), "first_annotation": str(first), "last_annotation": str(last),
            "days": round((last - origin).total_seconds() / 86400, 2)}
