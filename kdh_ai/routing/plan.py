"""Routing a job's items: calibration slice, threshold, audit, in two steps over the job directory.

Roles (``routing.jsonl``: ``{item_id, role, reason, step, at}``, latest record per item wins):

* ``calibration``: a random slice labelled by people first; it measures the model's errors on this batch;
* ``gold``: items with a known answer (``gold.jsonl``), mixed in to measure the people;
* ``human``: below the threshold, or the model failed on it (status ``error``): people answer it;
* ``audit``: a random share of the auto-accepted items that people check anyway;
* ``auto_accept``: delivered with the model's answer;
* ``pending``: waiting for the threshold (between the two steps).

Step 1, :func:`plan_calibration`: draw the calibration slice (a seeded random sample), mark gold and failed
items. Push, let people answer, pull.
Step 2, :func:`route`: measure the model's errors on the answered calibration items and the people's error
rate on gold, choose the threshold (:func:`kdh_ai.routing.threshold.choose_threshold`), mark the rest.
After the audit items are answered, :func:`check_audit` compares the audit with the promise; when the target
was missed, the lowest-confidence stratum of auto-accepted items is re-routed to people, and the job
manifest records it for the report.

The human share always counts every item people touch: calibration, human, audit and gold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.answers import HumanError, human_answers, human_error_rate
from kdh_ai.job import Job
from kdh_ai.records import Prediction, utc_now
from kdh_ai.routing.threshold import ThresholdChoice, choose_threshold, ratio_upper_bound
from kdh_ai.tasks import get_task

__all__ = ["HUMAN_ROLES", "ROLES", "RoutingError", "RoutingResult", "check_audit", "current_roles", "drift_check",
           "mark_roles", "plan_calibration", "route"]

logger = logging.getLogger(__name__)

ROLES = ("calibration", "gold", "human", "audit", "auto_accept", "pending")
HUMAN_ROLES = ("calibration", "gold", "human", "audit")


class RoutingError(ValueError):
    """Routing cannot proceed yet (the message says what is missing and what to do)."""


def current_roles(job: Job) -> dict[str, str]:
    """Each item's current role (latest ``routing.jsonl`` record)."""
    return {k: v["role"] for k, v in job.log("routing").latest_by("item_id").items()}


def mark_roles(job: Job, roles: dict[str, tuple[str, str]], step: str) -> None:
    """Record ``{item_id: (role, reason)}`` in ``routing.jsonl`` (items whose role is unchanged are skipped).

    Call it holding the job's lock.
    """
    now = utc_now()
    current = current_roles(job)
    job.log("routing").append({"item_id": k, "role": r, "reason": why, "step": step, "at": now}
                              for k, (r, why) in roles.items() if current.get(k) != r)


def _human_share(roles: dict[str, str]) -> float:
    return sum(r in HUMAN_ROLES for r in roles.values()) / max(1, len(roles))


@dataclass
class RoutingResult:
    """What a routing step decided (also stored in ``job.json`` under ``routing``).

    Attributes:
        step: ``"calibration"``, ``"route"`` or ``"audit"``.
        counts: Items per role.
        human_share: Share of items people touch (calibration, human, audit, gold).
        threshold: Auto-accept threshold (``None`` before step 2).
        estimated_error: Point estimate of the delivered batch's error rate (WER or 1 - accuracy).
        error_upper: Its upper confidence bound.
        reachable: False when the target cannot be met with the people's measured error rate.
        human_error: The people's error rate used, with its upper bound and source.
        message: A plain-words summary for the lead.
        details: Everything else (target, mode, calibration size, the threshold curve).
    """

    step: str
    counts: dict[str, int]
    human_share: float
    threshold: float | None = None
    estimated_error: float | None = None
    error_upper: float | None = None
    reachable: bool = True
    human_error: dict[str, Any] | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _counts(roles: dict[str, str]) -> dict[str, int]:
    return {r: sum(v == r for v in roles.values()) for r in ROLES if any(v == r for v in roles.values())}


def plan_calibration(job_dir: str | Path, *, size: float = 0.2, min_items: int = 30, seed: int = 0
                     ) -> RoutingResult:
    """Step 1: draw the calibration slice and mark gold and failed items.

    Args:
        job_dir: A pre-labeled job.
        size: The slice as a share of the routable items (< 1) or a number of items (>= 1).
        min_items: With a share, draw at least this many (or all routable items when there are fewer).
        seed: Seed of the random draw (recorded; the same seed draws the same slice).
    """
    job = Job(Path(job_dir))
    with job:
        preds = job.current_predictions()
        if not preds:
            raise RoutingError(f"{job.root} has no predictions yet; run `kdh prelabel` first")
        if any(r in ("auto_accept", "audit") for r in current_roles(job).values()):
            raise RoutingError(f"{job.root} is already routed (step 2); drawing a new calibration slice would undo "
                               "it. Use a new job directory to start over")
        gold = {k for k, v in job.log("gold").latest_by("item_id").items() if v.get("answer") is not None}
        roles: dict[str, tuple[str, str]] = {}
        routable = []
        before = current_roles(job)
        for item_id in sorted(preds):
            p = preds[item_id]
            if item_id in gold:
                roles[item_id] = ("gold", "known answer: measures the people")
            elif p.status == "error":
                roles[item_id] = ("human", f"the model failed on it: {p.error}")
            elif before.get(item_id) == "human":
                # Already chosen for people (e.g. `kdh select`): a classifier retrained on their answers has
                # seen them, so in the calibration slice they would flatter it.
                roles[item_id] = ("human", "already with people")
            else:
                routable.append(item_id)
        # A share is raised to min_items (a bound needs enough items); an explicit count is taken as given.
        n = max(int(round(size * len(routable))), min_items) if size < 1 else int(size)
        n = min(len(routable), n)
        rng = np.random.default_rng(seed)
        cal = set(rng.choice(routable, size=n, replace=False).tolist()) if n else set()
        for item_id in routable:
            roles[item_id] = ("calibration", "random calibration slice") if item_id in cal else (
                "pending", "waits for the threshold")
        mark_roles(job, roles, "calibration")
        now = current_roles(job)
        result = RoutingResult("calibration", _counts(now), _human_share(now), message=(
            f"{n} of {len(routable)} routable items drawn for the calibration slice (seed {seed}). Next: `kdh push`, "
            "let people answer them (trusted reviewers, or 2+ annotators each), `kdh pull`, then `kdh route` "
            "again with --target-wer/--target-accuracy or --budget."),
            details={"calibration_size": n, "seed": seed, "routable": len(routable)})
        job.update_manifest(routing=asdict(result))
    return result


def _calibration_errors(job: Job, task: Any, cal_ids: list[str], preds: dict[str, Prediction]
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Confidence and ``(errors, units)`` of the model (its current ``preds``) on the answered calibration items
    of ``job``."""
    answers = human_answers(job, task, items=set(cal_ids))
    answered = [k for k in cal_ids if k in answers and k in preds]
    if not answered:
        return np.zeros(0), np.zeros((0, 2)), []
    errs = task.item_errors([preds[k].text for k in answered], [answers[k].answer for k in answered])
    conf = np.array([preds[k].confidence or 0.0 for k in answered])
    return conf, np.asarray(errs, dtype=float), answered


def _prior_calibration(job: Job, task: Any, prior: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Answered calibration items of earlier jobs of the same model and task (refused otherwise)."""
    confs, errs, names = [np.zeros(0)], [np.zeros((0, 2))], []
    config_hash = job.read_manifest().get("config_hash")
    for path in prior:
        other = Job(Path(path))
        if not other.manifest_path.exists():
            raise RoutingError(f"--prior-calibration {path}: not a job directory (no job.json)")
        if Path(path).resolve() == job.root.resolve():
            raise RoutingError(f"--prior-calibration {path} is this job itself; give earlier jobs")
        manifest = other.read_manifest()
        if manifest.get("task") != job.task:
            raise RoutingError(f"--prior-calibration {path} is a {manifest.get('task')} job, this one is "
                               f"{job.task}; give earlier jobs of the same kind")
        if manifest.get("config_hash") != config_hash:
            raise RoutingError(f"--prior-calibration {path} was pre-labeled with another model or other options "
                               f"(config {manifest.get('config_hash')} vs {config_hash}): its calibration does "
                               "not transfer. Leave it out, or pre-label both with the same configuration")
        cal_ids = sorted(k for k, r in current_roles(other).items() if r == "calibration")
        c, e, answered = _calibration_errors(other, task, cal_ids, other.current_predictions())
        if not answered:
            raise RoutingError(f"--prior-calibration {path} has no answered calibration item; leave it out")
        confs.append(c)
        errs.append(e)
        names.append(f"{other.root.name} ({len(answered)} items)")
    return np.concatenate(confs), np.concatenate(errs), names


def drift_check(conf: np.ndarray, errs: np.ndarray, prior_conf: np.ndarray, prior_errs: np.ndarray, *,
                delta: float = 0.05, bins: int = 5) -> dict[str, float | bool]:
    """Does this batch's calibration slice show more model errors than earlier batches at the same confidence?

    The earlier slices give an error rate per confidence band (quantile bands of their confidence); this
    slice's observed errors are compared with the errors those rates predict for its items, with a one-sided
    test on the summed difference (its standard error from the items' spread). Drift means the earlier
    slices no longer describe this batch (another speaker population, another microphone), and routing
    must rely on this batch's slice alone.

    Returns:
        ``{"observed", "expected", "z", "p_value", "drift"}`` (errors per unit observed and expected).
    """
    from scipy import stats

    edges = np.quantile(prior_conf, np.linspace(0, 1, bins + 1))
    band_prior = np.clip(np.searchsorted(edges, prior_conf, side="right") - 1, 0, bins - 1)
    band = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    rate = np.array([prior_errs[band_prior == b, 0].sum() / max(prior_errs[band_prior == b, 1].sum(), 1e-9)
                     for b in range(bins)])
    expected = rate[band] * errs[:, 1]
    diff = errs[:, 0] - expected
    m = len(diff)
    se = float(np.sqrt(m * diff.var(ddof=1))) if m >= 2 else float("inf")
    z = float(diff.sum() / se) if se > 0 else (0.0 if diff.sum() <= 0 else float("inf"))
    p = float(stats.norm.sf(z))
    units = max(float(errs[:, 1].sum()), 1e-9)
    return {"observed": float(errs[:, 0].sum() / units), "expected": float(expected.sum() / units), "z": z,
            "p_value": p, "drift": bool(p < delta)}


def route(job_dir: str | Path, *, target: float | None = None, budget: float | None = None,
          audit_rate: float = 0.05, delta: float = 0.05, human_error: float | None = None,
          min_calibrated: float = 0.8, seed: int = 0, prior: Sequence[str | Path] = (),
          calibration_reviewed: bool = False) -> RoutingResult:
    """Step 2: choose the threshold from the answered calibration slice and route every pending item.

    Args:
        job_dir: A job whose calibration slice has been answered and pulled.
        target: Target error rate of the delivered batch (WER for transcription, 1 - accuracy for labels).
        budget: Largest share of items people may touch (budget mode), instead of ``target``.
        audit_rate: Share of auto-accepted items people check anyway.
        delta: Error level of the guarantee (the target holds with probability about ``1 - delta``).
        human_error: The people's error rate, when it cannot be measured on gold (recorded as an assumption).
        min_calibrated: Share of the calibration slice that must be answered before routing.
        seed: Seed of the audit draw.
        prior: Earlier jobs of the same client, pre-labeled with the same model and options, whose answered
            calibration slices join this one (a tighter bound for the same human share). They are used only
            if this batch's slice shows no drift against them (:func:`drift_check`); otherwise the message
            says so and this slice is used alone.
        calibration_reviewed: The calibration slice's answers are of gold quality (trusted reviewers, or
            aggregated overlap checked by a reviewer): its items count as delivered exact, like gold items,
            instead of at the people's error rate.

    Raises:
        RoutingError: No calibration slice, too few answers, no measure of the people's error rate, or a
            prior job that is not comparable (another task, model or options; no answered calibration).
    """
    if (target is None) == (budget is None):
        raise ValueError("give exactly one of target (e.g. --target-wer 0.05) or budget (e.g. --budget 0.3)")
    if not 0 <= audit_rate < 1:
        raise ValueError(f"audit_rate must lie in [0, 1), got {audit_rate}")
    job = Job(Path(job_dir))
    with job:
        task = get_task(job.task or "")
        preds = job.current_predictions()
        roles = current_roles(job)
        cal_ids = sorted(k for k, r in roles.items() if r == "calibration")
        if not cal_ids:
            raise RoutingError("no calibration slice yet: run `kdh route JOB_DIR --calibration 0.2` first, push, "
                               "annotate and pull")
        conf, errs, answered = _calibration_errors(job, task, cal_ids, preds)
        if len(answered) < max(2, math.ceil(min_calibrated * len(cal_ids))):
            raise RoutingError(f"only {len(answered)} of {len(cal_ids)} calibration items have answers; wait for "
                               f"people to finish (at least {min_calibrated:.0%}), run `kdh pull`, then route again")
        measured = human_error_rate(job, task, delta=delta)
        if measured is None and human_error is None:
            raise RoutingError("the people's error rate is unknown: no gold item has been answered. Add gold "
                               "items (`kdh push --gold ...`) and pull their answers, or pass --human-wer / "
                               "--human-error as an explicit assumption")
        if measured is None:
            measured = HumanError(float(human_error), float(human_error), 0, source="assumed")
        pooled: dict[str, Any] = {}
        if prior:
            p_conf, p_errs, names = _prior_calibration(job, task, prior)
            drift = drift_check(conf, errs, p_conf, p_errs, delta=delta)
            pooled = {"prior_jobs": names, "prior_items": int(len(p_conf)), "drift": drift,
                      "used": not drift["drift"]}
            if drift["drift"]:
                logger.warning("calibration drift: this slice's model error %.2f%% vs %.2f%% expected from "
                               "earlier batches (p=%.3f); earlier slices not used", 100 * drift["observed"],
                               100 * drift["expected"], drift["p_value"])
            else:
                conf, errs = np.concatenate([conf, p_conf]), np.concatenate([errs, p_errs])
        pending = [k for k, r in roles.items() if r == "pending"]
        if not pending:
            result = RoutingResult("route", _counts(roles), _human_share(roles), estimated_error=measured.rate,
                                   error_upper=measured.upper, reachable=target is None or measured.upper <= target,
                                   human_error=asdict(measured), message=(
                                       "Every item is already with people (calibration, gold or failed items): "
                                       "nothing left to route; the delivered quality is the people's."),
                                   details={"mode": "target" if target is not None else "budget", "target": target,
                                            "budget": budget, "delta": delta, "metric": _metric(task.name),
                                            "calibration_answered": len(answered), "audit_rate": audit_rate})
            job.update_manifest(routing=asdict(result))
            return result
        n_total = len(roles)
        fixed = sum(r in ("calibration", "gold", "human") for r in roles.values()) / max(1, n_total)
        # Gold items are delivered with their known answers (and a reviewed calibration slice with its gold-
        # quality ones); the others with the people's.
        with_people = ("human",) if calibration_reviewed else ("calibration", "human")
        fixed_err = sum(r in with_people for r in roles.values()) / max(1, n_total)
        batch_conf = np.array([preds[k].confidence or 0.0 for k in pending])
        choice = choose_threshold(conf, errs[:, 0], errs[:, 1], batch_confidence=batch_conf,
                                  human_error_rate=measured.rate, human_error_se=measured.se,
                                  human_error_upper=measured.upper, target=target, budget=budget,
                                  fixed_human_share=fixed, fixed_error_share=fixed_err, delta=delta,
                                  start_threshold=(1 - measured.rate) if task.confidence_is_probability else None)
        new: dict[str, tuple[str, str]] = {}
        rng = np.random.default_rng(seed)
        for k in pending:
            c = preds[k].confidence or 0.0
            if preds[k].payload.get("uncalibrated"):  # a head that saw too few classes (kdh_ai.heads)
                new[k] = ("human", "the model's confidence is uncalibrated (its labels cover too few classes)")
            elif c < choice.threshold:
                new[k] = ("human", f"confidence {c:.3f} below threshold {choice.threshold:.3f}")
            elif rng.random() < audit_rate:
                new[k] = ("audit", f"random audit of auto-accepted items ({audit_rate:.0%})")
            else:
                new[k] = ("auto_accept", f"confidence {c:.3f} at or above threshold {choice.threshold:.3f}")
        mark_roles(job, new, "route")
        now = current_roles(job)
        result = _result_from_choice(choice, now, measured, task.name, len(answered), audit_rate, target, budget)
        result.details["calibration_reviewed"] = calibration_reviewed
        if pooled:
            result.details["pooled_calibration"] = pooled
            result.message += (
                f" Calibration pooled with {pooled['prior_items']} answered items of earlier batches "
                f"({', '.join(pooled['prior_jobs'])})." if pooled["used"] else
                f" Earlier batches' calibration NOT used: this batch's slice shows more model errors than they "
                f"predict ({pooled['drift']['observed']:.2%} vs {pooled['drift']['expected']:.2%}, "
                f"p={pooled['drift']['p_value']:.3f}); this slice alone decided.")
        job.update_manifest(routing=asdict(result))
    return result


def _metric(task_name: str) -> str:
    return "WER" if task_name == "transcription" else "error rate (1 - accuracy)"


def _result_from_choice(choice: ThresholdChoice, roles: dict[str, str], measured: HumanError, task_name: str,
                        n_cal: int, audit_rate: float, target: float | None, budget: float | None) -> RoutingResult:
    metric = _metric(task_name)
    share = _human_share(roles)
    if not choice.reachable and target is not None:
        few_gold = measured.source == "gold" and measured.n_answers < 30
        msg = (f"Target {metric} {target:.1%} is NOT reachable with these people: their measured {metric} is "
               f"{measured.rate:.1%} (upper bound {measured.upper:.1%}"
               + (f", from only {measured.n_answers} gold answers: add gold items (`kdh push --gold`) to narrow "
                  "it" if few_gold else "")
               + "), and no mix of their answers with the model's confident ones can be promised to meet it "
               "either. Everything goes to people; raise overlap (2-3 annotators per item, aggregated) or use "
               "reviewers to lower the people's error rate, then route again.")
    elif target is not None:
        where = ("every routable item auto-accepted" if choice.threshold == -math.inf
                 else f"Threshold {choice.threshold:.3f}")
        msg = (f"{where}: people touch {share:.0%} of the batch. Estimated delivered "
               f"{metric} {choice.risk:.2%}, at most {choice.risk_upper:.2%} with {1 - choice.delta:.0%} confidence "
               f"(target {target:.1%}; measured on {n_cal} calibration items; people's {metric} {measured.rate:.1%}"
               f"{' (assumed)' if measured.source == 'assumed' else ''}).")
    else:
        msg = (f"Budget {budget:.0%}: threshold {max(0.0, choice.threshold):.3f}, people touch {share:.0%} of the "
               f"batch. Estimated delivered {metric} {choice.risk:.2%}, at most {choice.risk_upper:.2%} with "
               f"{1 - choice.delta:.0%} confidence.")
    curve = choice.curve.replace([np.inf, -np.inf], [1e9, -1e9]).round(6).to_dict(orient="list")
    return RoutingResult(
        "route", _counts(roles), share,
        threshold=None if choice.threshold == math.inf else max(0.0, choice.threshold),
        estimated_error=choice.risk, error_upper=choice.risk_upper, reachable=choice.reachable,
        human_error=asdict(measured),
        message=msg, details={"mode": choice.mode, "target": target, "budget": budget, "delta": choice.delta,
                              "metric": metric, "calibration_answered": n_cal, "audit_rate": audit_rate,
                              "curve": curve})


def check_audit(job_dir: str | Path, *, strata: int = 5, delta: float = 0.05) -> RoutingResult:
    """Compare the answered audit items with the promise; re-route strata that missed it.

    The auto-accepted items are split into ``strata`` confidence bands. The audit measures the model's error
    rate in each band; the delivered error is re-estimated with it. While the estimate's upper bound exceeds
    the target, the lowest-confidence band still auto-accepted goes to people (role ``human``, reason
    "audit re-route"), and the job manifest records it.

    Raises:
        RoutingError: The job has not been routed, or no audit item has been answered.
    """
    job = Job(Path(job_dir))
    with job:
        manifest = job.read_manifest()
        routing = manifest.get("routing") or {}
        target = (routing.get("details") or {}).get("target")
        if routing.get("step") not in ("route", "audit") or target is None:
            raise RoutingError("check-audit needs a job routed to a target (kdh route --target-...)")
        task = get_task(job.task or "")
        preds = job.current_predictions()
        roles = current_roles(job)
        audit_ids = [k for k, r in roles.items() if r == "audit"]
        answers = human_answers(job, task, items=set(audit_ids))
        answered = [k for k in audit_ids if k in answers]
        if not answered:
            raise RoutingError(f"none of the {len(audit_ids)} audit items has an answer yet; pull again later")
        auto = [k for k, r in roles.items() if r in ("auto_accept", "audit")]
        conf_auto = np.array([preds[k].confidence or 0.0 for k in auto])
        edges = np.quantile(conf_auto, np.linspace(0, 1, strata + 1)) if len(auto) else np.array([0.0, 1.0])
        errs = task.item_errors([preds[k].text for k in answered], [answers[k].answer for k in answered])
        a_conf = np.array([preds[k].confidence or 0.0 for k in answered])
        h = (routing.get("human_error") or {}).get("upper", 0.0)
        n_all = len(roles)
        rerouted: list[str] = []
        bands = []
        for b in range(strata):
            lo, hi = edges[b], edges[b + 1]
            in_band = (a_conf >= lo) & ((a_conf < hi) if b < strata - 1 else (a_conf <= hi))
            if in_band.sum() >= 1:
                rate, up = ratio_upper_bound(errs[in_band, 0], errs[in_band, 1], delta=delta)
            else:
                rate, up = float("nan"), float("nan")
            bands.append({"low": float(lo), "high": float(hi), "audited": int(in_band.sum()),
                          "model_error": None if np.isnan(rate) else rate})
        # Re-estimate the delivered error: audited model error for auto-accepted items, people's elsewhere.
        overall, overall_up = ratio_upper_bound(errs[:, 0], errs[:, 1], delta=delta)
        share_auto = len(auto) / max(1, n_all)
        delivered_up = share_auto * overall_up + (1 - share_auto) * h
        band = 0
        while delivered_up > target and band < strata:
            lo, hi = edges[band], edges[band + 1]
            moved = [k for k in auto if lo <= (preds[k].confidence or 0.0) <= hi and roles[k] == "auto_accept"]
            rerouted.extend(moved)
            keep = a_conf > hi
            share_auto = (len(auto) - len(rerouted)) / max(1, n_all)
            if keep.sum() >= 2:
                _, overall_up = ratio_upper_bound(errs[keep, 0], errs[keep, 1], delta=delta)
            delivered_up = share_auto * overall_up + (1 - share_auto) * h
            band += 1
        mark_roles(job, {k: ("human", "audit re-route: the audit showed the target was missed in this "
                               "confidence band") for k in rerouted}, "audit")
        now = current_roles(job)
        msg = (f"Audit of {len(answered)} auto-accepted items: model {_metric(task.name)} {overall:.2%}. " + (
            f"The target {target:.1%} was missed: {len(rerouted)} items in the {band} lowest-confidence band(s) "
            "were re-routed to people; push again." if rerouted else f"The target {target:.1%} holds."))
        result = RoutingResult("audit", _counts(now), _human_share(now),
                               threshold=routing.get("threshold"), estimated_error=None,
                               error_upper=float(delivered_up), reachable=routing.get("reachable", True),
                               human_error=routing.get("human_error"), message=msg,
                               details={**(routing.get("details") or {}), "audit": {
                                   "answered": len(answered), "model_error": overall, "bands": bands,
                                   "rerouted": len(rerouted), "rerouted_bands": band if rerouted else 0}})
        job.update_manifest(routing=asdict(result))
    return result
