"""Every applicable quality metric of a job, from its predictions, pulled annotations and gold.

:func:`job_metrics` reads the job directory and calls the pure functions of :mod:`kdh_ai.quality`. What cannot
be computed (no gold yet, one annotator where agreement needs two...) is not a crash and not a silent NaN:
the metric is ``None`` and ``not_enough_data`` says why. ``kdh quality JOB_DIR`` writes the result as
``metrics.json`` and the per-annotator table as ``annotators.csv``; the client report is built from it.

Besides the measured figures, the metrics say what a reader needs to judge them: who produced each delivered
answer (``provenance``), whether the job is finished (``draft``: items routed to people still unanswered, an
audit not checked), whether the samples behind the promise are large enough (``evidence``), which
annotator accounts are simulated (``simulated_annotators``), the time pre-labels saved (``time_saved``), and
the model's typical errors (``errors``: frequent substitutions, or a confusion matrix and reliability bins).

One definition of the human share holds everywhere: the share of the batch's routed items that people touch
(calibration, gold, human and audit items, :data:`kdh_ai.records.HUMAN_ROLES`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from kdh_ai import quality
from kdh_ai.answers import annotations_table, gold_answers, human_answers
from kdh_ai.job import Job
from kdh_ai.labelstudio.state import read_ls_state
from kdh_ai.records import HUMAN_ROLES
from kdh_ai.routing import routing_result
from kdh_ai.second_opinion import job_second_opinion

__all__ = ["SMALL_SAMPLE", "annotator_table", "job_metrics"]

SMALL_SAMPLE = 30
"""Fewer calibration items or gold answers than this make a bound wide and fragile (the rule of thumb that
:func:`kdh_ai.routing.threshold.choose_threshold` and routing's messages use), used when routing recorded no
evidence plan of its own."""

logger = logging.getLogger(__name__)


def _try(reasons: dict[str, str], key: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (quality.InsufficientDataError, ValueError) as exc:
        reasons[key] = str(exc)
        return None


def _durations(job: Job) -> dict[str, float]:
    """Audio seconds per unit of work (a short clip, or a work segment of a long recording), by unit key."""
    return {k: float(u.payload["duration_s"]) for k, u in job.units().items() if u.payload.get("duration_s")}


def annotator_table(job: Job) -> pd.DataFrame:
    """One row per annotator: answers, hours of work, speed, and accuracy (or WER) on gold with its interval.

    Columns: ``annotator, answers, hours, median_lead_time_s, rtf`` (audio only: seconds of work per second
    of audio), ``gold_answers, simulated`` (the account was created as a simulated annotator),
    ``gold_error`` (WER or 1 - accuracy) with its Wilson 95% interval ``gold_error_low, gold_error_high``
    (per answer for labels, per reference word for transcripts), and for labels ``gold_accuracy, gold_low,
    gold_high``.
    """
    task = job.task_type()
    table = annotations_table(job)
    if table.empty:
        return pd.DataFrame(columns=["annotator", "answers", "hours", "median_lead_time_s", "gold_answers",
                                     "gold_error"])
    durations = _durations(job) if task.item_kind == "audio" else {}
    gold = gold_answers(job)
    simulated = simulated_annotators(job)
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
        row["simulated"] = worker in simulated
        row["gold_error"] = row["gold_error_low"] = row["gold_error_high"] = None
        if len(on_gold):
            errs = task.item_errors(list(on_gold["answer"]), [gold[t] for t in on_gold["task"]])
            units, wrong = int(errs[:, 1].sum()), int(min(errs[:, 0].sum(), errs[:, 1].sum()))
            if units:
                row["gold_error"] = float(errs[:, 0].sum() / units)
                # Wilson 95% interval: per answer for labels, per reference word for transcripts (words of one
                # clip are not independent, so for transcripts it is on the narrow side).
                low, high = quality.wilson_interval(units - wrong, units)
                row.update(gold_error_low=1 - high, gold_error_high=1 - low)
            if task.item_kind == "text":
                correct = int(len(on_gold) - errs[:, 0].sum())
                low, high = quality.wilson_interval(correct, len(on_gold))
                row.update(gold_accuracy=correct / len(on_gold), gold_low=low, gold_high=high)
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


def _delivered(routing: dict[str, Any]) -> dict[str, Any] | None:
    """The routing promise as the report shows it (``None``: the job has not been routed)."""
    if not routing:
        return None
    details = routing.get("details") or {}
    out = {k: routing.get(k) for k in ("estimated_error", "error_upper", "human_share", "threshold", "reachable",
                                       "message")}
    out.update(audit=details.get("audit"), target=details.get("target"), delta=details.get("delta"),
               human_error=routing.get("human_error"), pooled_calibration=details.get("pooled_calibration"),
               calibration_reviewed=bool(details.get("calibration_reviewed")), step=routing.get("step"),
               audit_rate=details.get("audit_rate"), calibration_answered=details.get("calibration_answered"),
               mode=details.get("mode"), budget=details.get("budget"))
    return out


def _effort(out: dict[str, Any], item_kind: str, table: pd.DataFrame, durations: dict[str, float],
            reasons: dict[str, str]) -> None:
    """The real-time factor of people's work with and without pre-labels (``out["effort"]``), or why not."""
    if not durations:
        reasons["effort"] = ("the real-time factor of human work needs audio durations; this job has none"
                             if item_kind == "audio" else "the real-time factor applies to audio jobs")
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


def job_metrics(job: Job) -> dict[str, Any]:
    """All applicable metrics of a job (see the module docstring)."""
    from kdh_ai.deliver import delivered_tables

    task = job.task_type()
    manifest = job.read_manifest()
    preds = job.current_predictions()
    units = job.units()
    items = job.current_items()
    roles = {k: r.role for k, r in job.roles().items()}
    reasons: dict[str, str] = {}
    metric = "wer" if task.item_kind == "audio" else "error_rate"
    from kdh_ai import __version__

    out: dict[str, Any] = {"task": task.name, "metric": metric, "items": len(items), "units": len(units),
                           "kdh_version": __version__,
                           "model": manifest.get("model"), "config_hash": manifest.get("config_hash"),
                           "statuses": manifest.get("counts"),
                           "roles": {r: sum(v == r for v in roles.values()) for r in set(roles.values())},
                           "second_opinion": job_second_opinion(job)}
    durations = _durations(job)
    if durations:
        out["audio_hours"] = sum(durations.values()) / 3600

    # Model quality: against the client's references, and against people's answers on routed items.
    client_refs = {k: v["reference"] for k, v in items.items() if v.get("reference")}
    out["model_vs_client_reference"] = _model_vs(task, preds, client_refs)
    if out["model_vs_client_reference"] is None:
        reasons["model_vs_client_reference"] = "the client gave no reference answers"
    humans = human_answers(job, task)  # by unit key: an item, or a segment of a long recording
    out["model_vs_people"] = _model_vs(task, units, {k: h.answer for k, h in humans.items()})
    if out["model_vs_people"] is None:
        reasons["model_vs_people"] = "no item has a human answer yet (push, annotate, pull)"

    # Delivered quality: the routing promise, and what the audit found.
    routing = asdict(result) if (result := routing_result(job)) is not None else {}
    out["delivered"] = _delivered(routing)
    if not routing:
        reasons["delivered"] = "the job has not been routed (kdh route)"
    if roles:
        out["human_share"] = sum(r in HUMAN_ROLES for r in roles.values()) / len(roles)
    out["guidelines"] = read_ls_state(job).get("guidelines")  # {"file", "sha256"} of `kdh push --guidelines`

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
    _effort(out, task.item_kind, table, durations, reasons)
    out["turnaround"] = _turnaround(manifest, table)
    out["time_saved"] = _time_saved(table, durations if task.item_kind == "audio" else {}, reasons)
    out["simulated_annotators"] = sorted(simulated_annotators(job))
    delivered_items, delivered_units = delivered_tables(job)
    out["delivered_vs_client_reference"] = _delivered_vs(task, delivered_items, client_refs)
    out["provenance"] = _provenance(delivered_units, roles,
                                    bool(out["delivered"] and out["delivered"]["calibration_reviewed"]))
    out["segment_view"] = _segment_view(task, delivered_items, delivered_units, client_refs, table, durations,
                                        reasons)
    out["open_items"] = _open_items(roles, humans)
    out["audit_checked"] = routing.get("step") == "audit" or not any(r == "audit" for r in roles.values())
    out["draft"] = _draft(routing, roles, out["open_items"], out["audit_checked"])
    out["evidence"] = _evidence(routing, manifest, answered_cal=_answered_calibration(roles, humans),
                                gold_answers_n=int(table["task"].isin(gold_answers(job)).sum()) if not table.empty
                                else 0)
    out["errors"] = _model_errors(task, units, items, {k: h.answer for k, h in humans.items()}, reasons)
    out["not_enough_data"] = reasons
    return out


def simulated_annotators(job: Job) -> set[str]:
    """The annotators whose accounts were created as simulated (``kdh pull`` records it with each annotation;
    see :func:`kdh_ai.labelstudio.server.add_annotator`)."""
    return {a.worker for a in job.annotations(include_deleted=True) if a.annotator_simulated}


def _answered_calibration(roles: dict[str, str], humans: dict[str, Any]) -> int:
    return sum(r == "calibration" and k in humans for k, r in roles.items())


def _provenance(units: list[dict[str, Any]], roles: dict[str, str], calibration_reviewed: bool) -> dict[str, int]:
    """Who produced each delivered answer, per unit (a short clip or item, or a work segment of a long
    recording), as :func:`kdh_ai.deliver.delivered_units` delivers it.

    Keys: ``model`` (auto-accepted), ``model_awaiting_people`` (routed to people, no answer yet),
    ``model_not_routed`` (no routing decision yet: the model's answer for now), ``people``
    (one person), ``aggregated`` (several people, combined), ``gold`` (the known answer), ``reviewed`` (a
    calibration slice labelled to gold quality), ``none`` (neither the model nor people answered).
    """
    counts = {k: 0 for k in ("model", "model_awaiting_people", "model_not_routed", "people", "aggregated", "gold",
                             "reviewed", "none")}
    for rec in units:
        role, prov = roles.get(rec["key"]), rec["provenance"]
        if prov == "model":
            key = ("model" if role == "auto_accept" else "model_awaiting_people" if role in HUMAN_ROLES
                   else "model_not_routed")
        elif prov == "none":
            key = "none"
        elif role == "gold" and not rec["annotators"]:
            key = "gold"
        elif role == "calibration" and calibration_reviewed:
            key = "reviewed"
        else:
            key = "aggregated" if prov == "aggregated" else "people"
        counts[key] += 1
    return counts


def _open_items(roles: dict[str, str], humans: dict[str, Any]) -> dict[str, int]:
    """Items routed to people that have no answer yet, by role; ``pending`` counts items not yet routed.

    Gold items are left out: they are delivered with their known answer whether or not people saw them.
    """
    out: dict[str, int] = {}
    for k, r in roles.items():
        if (r in ("calibration", "human", "audit") and k not in humans) or r == "pending":
            out[r] = out.get(r, 0) + 1
    return out


def _draft(routing: dict[str, Any], roles: dict[str, str], open_items: dict[str, int], audit_checked: bool
           ) -> dict[str, Any]:
    """A report is a draft until the batch is routed to a target or budget, every item routed to people is
    answered, and the audit is checked (a batch without audit items counts as checked)."""
    reasons = []
    if routing.get("step") not in ("route", "audit"):
        reasons.append("the batch has not been routed yet, so no quality level is promised")
    waiting = sum(n for r, n in open_items.items() if r != "pending")
    if waiting:
        reasons.append(f"{waiting} item(s) routed to people have no answer yet")
    if open_items.get("pending"):
        reasons.append(f"{open_items['pending']} item(s) are not routed yet")
    if not audit_checked:
        reasons.append("the audit of auto-accepted items has not been checked yet")
    return {"is_draft": bool(reasons), "reasons": reasons}


def _evidence(routing: dict[str, Any], manifest: dict[str, Any], *, answered_cal: int, gold_answers_n: int
              ) -> dict[str, Any]:
    """How much evidence the promise rests on, against how much it needs.

    Routing's own evidence plan (``job.json["routing"]["evidence"]``) when it recorded one; otherwise sizes
    only, against the rule of thumb :data:`SMALL_SAMPLE` (marked ``source: "rule of thumb"``).
    """
    plan = routing.get("evidence")
    if isinstance(plan, dict) and plan.get("calibration_needed") is not None:
        # gold_needed: gold answers needed if the people's error rate is the key (0.01, 0.02, 0.05); None when
        # people that good could not reach the target at all (see kdh_ai.routing.evidence)
        gold_needed = {str(k): (None if v is None else int(v)) for k, v in (plan.get("gold_needed") or {}).items()}
        cal_have, gold_have = int(plan.get("calibration_have") or 0), int(plan.get("gold_have") or 0)
        rate = (routing.get("human_error") or {}).get("rate")
        keys = sorted(gold_needed, key=float)
        # the plan's rate nearest above the people's measured rate (the largest when they err more)
        key = next((k for k in keys if rate is not None and float(k) >= float(rate)), keys[-1] if keys else None)
        small_cal = cal_have < int(plan["calibration_needed"])
        small_gold = key is not None and (gold_needed[key] is None or gold_have < gold_needed[key])
        return {"source": "routing", "calibration_have": cal_have,
                "calibration_needed": int(plan["calibration_needed"]), "gold_have": gold_have,
                "gold_needed": gold_needed, "people_rate_used": None if key is None else float(key),
                "small": small_cal or small_gold, "small_calibration": small_cal, "small_gold": small_gold}
    # The sizes the bound was computed from, when routing recorded them; the job's current ones before that.
    answered_cal = int((routing.get("details") or {}).get("calibration_answered") or answered_cal)
    he = routing.get("human_error") or {}
    gold_answers_n = int(he.get("n_answers") or gold_answers_n)
    routed = routing.get("step") in ("route", "audit")  # before that, nothing is promised yet
    small_cal = routed and answered_cal < SMALL_SAMPLE
    small_gold = routed and gold_answers_n < SMALL_SAMPLE and he.get("source") != "assumed"
    return {"source": "rule of thumb", "calibration_have": answered_cal, "calibration_needed": SMALL_SAMPLE,
            "gold_have": gold_answers_n, "gold_needed": {"rule of thumb": SMALL_SAMPLE},
            "small": small_cal or small_gold, "small_calibration": small_cal, "small_gold": small_gold}


def _delivered_vs(task: Any, records: list[dict[str, Any]], refs: dict[str, str]) -> dict[str, Any] | None:
    """The delivered answers against the client's references (the quality the client receives, measured)."""
    rows = [r for r in records if r["item_id"] in refs and r["answer"] is not None]
    if not rows:
        return None
    errs = task.item_errors([r["answer"] for r in rows], [refs[r["item_id"]] for r in rows])
    if errs[:, 1].sum() == 0:
        return None
    rate = float(errs[:, 0].sum() / errs[:, 1].sum())
    return {"items": len(rows), "error_rate": rate, **({"wer": rate} if task.item_kind == "audio" else {})}


def _rate(task: Any, hyps: list[str], refs: list[str]) -> float | None:
    if not refs:
        return None
    errs = task.item_errors(hyps, refs)
    return float(errs[:, 0].sum() / errs[:, 1].sum()) if errs[:, 1].sum() else None


def _segment_view(task: Any, records: list[dict[str, Any]], units: list[dict[str, Any]], refs: dict[str, str],
                  table: pd.DataFrame, durations: dict[str, float], reasons: dict[str, str]) -> dict[str, Any] | None:
    """Long recordings: per file, which segments people checked (the timeline), delivered and model WER against
    the client's reference, the model's WER on the segments people checked, and human seconds per audio minute;
    for the batch, human seconds per audio minute people worked on, with and without pre-labels."""
    if task.item_kind != "audio":
        return None
    long_items = [r for r in records if r.get("segments")]
    if not long_items:
        reasons["segment_view"] = "no recording is long enough to be cut into work segments"
        return None
    work = (pd.to_numeric(table["lead_time_s"], errors="coerce").fillna(0.0).groupby(table["task"]).sum().to_dict()
            if not table.empty else {})
    by_item: dict[str, list[dict[str, Any]]] = {}
    for u in units:
        by_item.setdefault(u["item_id"], []).append(u)
    rows = [{"item": u["item_id"], "start": u["start"], "end": u["end"], "checked": bool(u["checked"]),
             "work_s": float(work.get(u["key"], 0.0))} for r in long_items for u in by_item[r["item_id"]]]
    cov = quality.review_coverage(pd.DataFrame(rows))
    files = []
    for r in long_items:
        segs, item = by_item[r["item_id"]], r["item_id"]
        c = cov.loc[item]
        checked = [u for u in segs if u["checked"] and u["answer"] is not None and u["model_answer"] is not None]
        ref = refs.get(item)
        files.append({
            "item_id": item, "duration_s": float(c["audio_s"]), "segments": int(c["segments"]),
            "checked_segments": int(c["checked_segments"]), "checked_s": float(c["checked_s"]),
            "checked_share": float(c["checked_share"]), "human_s": float(c["human_s"]),
            "human_s_per_audio_min": float(c["human_s_per_audio_min"]),
            "edited_segments": sum(bool(u["edited"]) for u in segs),
            "delivered_wer": _rate(task, [r["answer"] or ""], [ref]) if ref else None,
            "model_wer": _rate(task, [r["model_answer"] or ""], [ref]) if ref else None,
            "model_wer_on_checked": _rate(task, [u["model_answer"] for u in checked], [u["answer"] for u in checked]),
            "timeline": [{"segment": u["segment"], "start": u["start"], "end": u["end"], "role": u["role"],
                          "checked": bool(u["checked"]), "edited": bool(u["edited"]), "provenance": u["provenance"],
                          "model_wer": u["model_wer"]}
                         for u in segs]})
    audio = sum(f["duration_s"] for f in files)
    out: dict[str, Any] = {
        "files": files, "audio_s": audio, "checked_s": sum(f["checked_s"] for f in files),
        "segments": sum(f["segments"] for f in files), "checked_segments": sum(f["checked_segments"] for f in files),
        "human_s": sum(f["human_s"] for f in files)}
    out["checked_share"] = out["checked_s"] / audio if audio else None
    out["human_s_per_audio_min"] = out["human_s"] / (audio / 60) if audio else None
    timed = table[table["task"].isin(durations)] if not table.empty else table
    eff = None
    if timed.empty:
        reasons["segment_view.effort"] = "no answers from people with audio durations yet"
    else:
        eff = _try(reasons, "segment_view.effort", lambda: quality.effort_per_audio_minute(
            timed.assign(lead_time=pd.to_numeric(timed["lead_time_s"], errors="coerce"))[
                ["task", "lead_time", "prelabeled"]], durations=durations))
    out["effort_per_checked_minute"] = None if eff is None else asdict(eff)
    return out


def _time_saved(table: pd.DataFrame, durations: dict[str, float], reasons: dict[str, str]) -> dict[str, Any] | None:
    """People's time with and without the model's pre-labels, and the hours the pre-labels saved.

    Per annotation: seconds of work per second of audio (transcription) or per item (labels). The saving is
    (mean without - mean with) times the audio seconds, or the items, annotated with pre-labels.
    """
    if table.empty:
        reasons["time_saved"] = "no annotations pulled yet"
        return None
    t = table.assign(lead=pd.to_numeric(table["lead_time_s"], errors="coerce"),
                     pre=table["prelabeled"].fillna(True).astype(bool)).dropna(subset=["lead"])
    t = t.assign(unit=[durations.get(k, 0.0) for k in t["task"]] if durations else 1.0)
    t = t[t["unit"] > 0]
    with_pre, without = t[t["pre"]], t[~t["pre"]]
    if with_pre.empty or without.empty:
        reasons["time_saved"] = ("every answer started from a pre-label, so there is nothing to compare with"
                                 if without.empty else "no answer started from a pre-label")
        return None
    rate_with = float(with_pre["lead"].sum() / with_pre["unit"].sum())
    rate_without = float(without["lead"].sum() / without["unit"].sum())
    saved_h = (rate_without - rate_with) * float(with_pre["unit"].sum()) / 3600
    return {"per": "audio second" if durations else "item", "seconds_with": rate_with,
            "seconds_without": rate_without, "answers_with": int(len(with_pre)), "answers_without": int(len(without)),
            "hours_spent": float(t["lead"].sum() / 3600), "hours_saved": saved_h,
            "speedup": rate_without / rate_with if rate_with > 0 else None}


def _model_errors(task: Any, preds: dict[str, Any], items: dict[str, dict[str, Any]], answers: dict[str, str],
                  reasons: dict[str, str]) -> dict[str, Any] | None:
    """The model's typical errors against people's answers: frequent word errors with examples
    (transcription), or the confusion matrix, per-class figures, most confused pairs and reliability bins
    (classification)."""
    ids = sorted(k for k in answers if k in preds and preds[k].status != "error")
    if not ids:
        reasons["errors"] = "no item has a human answer yet"
        return None
    if task.item_kind == "audio":
        return _word_errors([answers[k] for k in ids], [preds[k].text for k in ids], ids)
    truth = [answers[k] for k in ids]
    guess = [preds[k].text for k in ids]
    conf = np.array([float(preds[k].confidence or 0.0) for k in ids])
    correct = np.array([a == b for a, b in zip(truth, guess)])
    labels = sorted(set(truth) | set(guess))
    cm = quality.confusion_matrix(truth, guess, labels=labels)
    per_class = []
    for lab in labels:
        tp = int(cm.loc[lab, lab])
        support, predicted = int(cm.loc[lab].sum()), int(cm[lab].sum())
        per_class.append({"label": lab, "people": support, "model": predicted,
                          "precision": tp / predicted if predicted else None,
                          "recall": tp / support if support else None})
    pairs = []
    for a in labels:
        for b in labels:
            if a != b and cm.loc[a, b]:
                example = next(k for k, x, y in zip(ids, truth, guess) if x == a and y == b)
                pairs.append({"people": a, "model": b, "count": int(cm.loc[a, b]), "example_item": example,
                              "example_text": str(items.get(example, {}).get("text") or "")[:160]})
    pairs.sort(key=lambda r: (-r["count"], r["people"], r["model"]))
    edges = np.linspace(0, 1, 11)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if m.any():
            bins.append({"low": float(lo), "high": float(hi), "items": int(m.sum()),
                         "mean_confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
    ece = sum(b["items"] * abs(b["accuracy"] - b["mean_confidence"]) for b in bins) / len(ids)
    return {"items": len(ids), "labels": labels, "confusion": cm.values.tolist(), "per_class": per_class,
            "confused_pairs": pairs[:8], "reliability": bins, "calibration_error": float(ece)}


def _word_errors(refs: list[str], hyps: list[str], ids: list[str]) -> dict[str, Any]:
    """Most frequent word errors of the model against people, each with one example clip."""
    import jiwer

    top = quality.top_confusions(refs, hyps, n=10)
    examples: dict[tuple[str, str, str], dict[str, str]] = {}
    for item, ref, hyp in zip(ids, refs, hyps):
        r, h = quality.normalize_text(ref), quality.normalize_text(hyp)
        if not r:
            continue
        al = jiwer.process_words(r, h or "")
        rw, hw = al.references[0], al.hypotheses[0]
        for chunk in al.alignments[0]:
            kind = {"substitute": "substitution", "delete": "deletion", "insert": "insertion"}.get(chunk.type)
            if kind is None:
                continue
            rs, re_, hs, he = chunk.ref_start_idx, chunk.ref_end_idx, chunk.hyp_start_idx, chunk.hyp_end_idx
            # As jiwer counts them (top_confusions): substitutions word by word, deletions and insertions as runs.
            keys = ([(kind, rw[rs + i], hw[hs + i]) for i in range(re_ - rs)] if kind == "substitution" else
                    [(kind, " ".join(rw[rs:re_]), "")] if kind == "deletion" else [(kind, "", " ".join(hw[hs:he]))])
            for key in keys:
                if key not in examples:
                    examples[key] = {"item": item, "people": " ".join(rw[max(0, rs - 3):re_ + 3]),
                                     "model": " ".join(hw[max(0, hs - 3):he + 3])}
    rows = []
    for rec in top.to_dict(orient="records"):
        ex = examples.get((rec["kind"], rec["reference"], rec["hypothesis"]), {})
        rows.append({"kind": rec["kind"], "people": rec["reference"], "model": rec["hypothesis"],
                     "count": int(rec["count"]), **{f"example_{k}": v for k, v in ex.items()}})
    return {"items": len(ids), "top": rows}


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
    seconds = (last - origin).total_seconds()
    return {"job_created": origin.isoformat(timespec="seconds"), "first_annotation": first.isoformat(timespec="seconds"),
            "last_annotation": last.isoformat(timespec="seconds"), "hours": round(seconds / 3600, 2),
            "days": round(seconds / 86400, 2)}
