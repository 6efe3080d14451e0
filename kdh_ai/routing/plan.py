"""Routing a job's units: calibration slice, threshold, audit, in two steps over the job directory.

Routing works on **units of work** (:meth:`kdh_ai.job.Job.units`): a short clip or a text is one unit (its
item id); a long recording is one unit per work segment (``item#0007``, :func:`kdh_ai.records.unit_key`), each
with its own text and confidence, so only its uncertain segments go to people. Errors and words are counted per
unit and the target (e.g. WER of the delivered words) is word-weighted over all units, so it holds for the whole
batch as before. Below, "item" means unit.

Roles (``routing.jsonl``: ``{item_id, segment, role, reason, step, at}``, latest record per unit wins):

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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.answers import human_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.records import HUMAN_ROLES, ROLES, Prediction, RoleRecord, utc_now
from kdh_ai.routing.people import HumanError, human_error_rate
from kdh_ai.routing.threshold import ThresholdChoice, betting_upper_bound, choose_threshold, item_error_ratio
from kdh_ai.second_opinion import job_second_opinion, prediction_score

__all__ = ["HUMAN_ROLES", "ROLES", "RoutingError", "RoutingResult", "check_audit", "current_roles", "drift_check",
           "evidence_plan", "mark_roles", "plan_calibration", "route", "routing_result", "unit_ids"]

logger = logging.getLogger(__name__)



class RoutingError(InvalidInputError):
    """Routing cannot proceed yet (the message says what is missing and what to do)."""


def current_roles(job: Job) -> dict[str, str]:
    """Each item's current role (:meth:`kdh_ai.job.Job.roles`: latest ``routing.jsonl`` record)."""
    return {k: r.role for k, r in job.roles().items()}


def unit_ids(job: Job, keys: Iterable[str]) -> dict[str, tuple[str, int | None]]:
    """``{unit key: (item_id, segment)}`` for unit keys of ``job`` (:func:`kdh_ai.records.unit_key`).

    Keys of the job's units (:meth:`kdh_ai.job.Job.units`) and routed units resolve exactly; any other key is
    a whole item (an item id may itself contain ``#``).
    """
    known = {u.key: (u.item_id, u.segment) for u in job.units().values()}
    known.update({k: (r.item_id, r.segment) for k, r in job.roles().items() if k not in known})
    return {k: known.get(k, (k, None)) for k in keys}


def mark_roles(job: Job, roles: dict[str, tuple[str, str]], step: str) -> None:
    """Record ``{unit key: (role, reason)}`` in ``routing.jsonl`` (units whose role is unchanged are skipped).

    A unit key is an item id, or ``item#0007`` for a work segment of a long recording
    (:func:`kdh_ai.records.unit_key`); its record carries the segment. Call it holding the job's lock.
    """
    now = utc_now()
    current = current_roles(job)
    changed = {k: v for k, v in roles.items() if current.get(k) != v[0]}
    ids = unit_ids(job, changed) if changed else {}
    job.append_roles(RoleRecord(ids[k][0], r, why, step, now, segment=ids[k][1]) for k, (r, why) in changed.items())


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
        evidence: The evidence plan for the target (:mod:`kdh_ai.routing.evidence`): ``{"target",
            "calibration_needed", "calibration_have", "gold_needed": {"0.01", "0.02", "0.05"}, "gold_have"}``;
            ``None`` when no target was given.
        advice: When the target is not reachable: the cheapest change that would reach it
            (``{"change", "command", "why"}``), else ``None``.
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
    evidence: dict[str, Any] | None = None
    advice: dict[str, str] | None = None


def routing_result(job: Job) -> RoutingResult | None:
    """What the job's last routing step decided (``job.json`` ``routing``), or ``None`` before routing.

    The one way other stages read routing's results (its threshold curve is ``details["curve"]``, its
    evidence plan ``evidence``); each item's role is :meth:`kdh_ai.job.Job.roles`.
    """
    data = job.read_manifest().get("routing")
    if not data:
        return None
    names = {f.name for f in fields(RoutingResult)}
    return RoutingResult(**{k: v for k, v in data.items() if k in names})


def _counts(roles: dict[str, str]) -> dict[str, int]:
    return {r: sum(v == r for v in roles.values()) for r in ROLES if any(v == r for v in roles.values())}


def _units_per_item(job: Job, task: Any, ids: list[str]) -> float:
    """Typical size of an item: the median reference words of the gold answers (or of the model's answers)."""
    if task.item_kind != "audio":
        return 1.0
    wanted = set(ids)
    texts = [str(g.answer) for g in job.gold().values()] or [p.text for k, p in job.units().items()
                                                              if k in wanted and p.text]
    words = [len(t.split()) for t in texts if t]
    return float(np.median(words)) if words else 12.0


def _gold_have(job: Job, task: Any, delta: float) -> tuple[int, HumanError | None]:
    """Gold answers measured so far, or, before any is answered, the gold items recorded."""
    measured = human_error_rate(job, task, delta=delta)
    if measured is not None:
        return measured.n_answers, measured
    return len(job.gold()), None


def evidence_plan(job_dir: str | Path, *, target: float, delta: float = 0.05, seed: int = 0,
                  calibration_reviewed: bool = False) -> dict[str, Any]:
    """The evidence a target needs on this job (:mod:`kdh_ai.routing.evidence`), from its current state.

    Counts the routable items (calibration, pending and items routing may still decide), the slice drawn or
    answered, and the gold answers measured (or gold items recorded before any answer). Does not record it:
    :func:`plan_calibration` and :func:`route` store it in ``job.json`` under ``routing.evidence``.

    Args:
        job_dir: A pre-labeled job.
        target: Target error rate of the delivered batch (WER, or 1 - accuracy).
        delta: Error level of the promise.
        seed: Seed of the simulated slices.
        calibration_reviewed: The slice is (will be) reviewed to gold quality.
    """
    from kdh_ai.routing.evidence import evidence_plan_from_arrays

    job = Job(Path(job_dir))
    task = job.task_type()
    preds = job.units()
    roles = current_roles(job)
    gold = set(job.gold())
    routable = [k for k, p in preds.items() if k not in gold and p.status != "error"
                and roles.get(k) in (None, "calibration", "pending", "auto_accept", "audit", "human")
                and not (roles.get(k) == "human" and k not in _decidable_human(job))]
    cal_ids = [k for k in routable if roles.get(k) == "calibration"]
    answered = human_answers(job, task, items=set(cal_ids))
    have_cal = sum(k in answered for k in cal_ids) if answered else len(cal_ids)
    gold_have, _ = _gold_have(job, task, delta)
    fixed = len(preds) - len(routable)
    return evidence_plan_from_arrays(
        target=target, batch_confidence=np.array([prediction_score(preds[k]) for k in routable]),
        units_per_item=_units_per_item(job, task, routable), calibration_have=have_cal, gold_have=gold_have,
        fixed_items=fixed, reviewed=calibration_reviewed, delta=delta, seed=seed)


def plan_calibration(job_dir: str | Path, *, size: float = 0.2, min_items: int = 30, seed: int = 0,
                     target: float | None = None, delta: float = 0.05) -> RoutingResult:
    """Step 1: draw the calibration slice and mark gold and failed items.

    With the intended ``target``, it also plans the evidence (:func:`evidence_plan`): the slice is raised to
    the planned size when ``size`` asks for fewer, and the message says how many gold answers the target
    needs and whether the gold recorded is enough (before the people's work is done).

    Args:
        job_dir: A pre-labeled job.
        size: The slice as a share of the routable items (< 1), a number of items (>= 1), or ``inf``: every
            routable item (a client's first batch reviewed whole, to serve later ones as prior calibration).
        min_items: With a share, draw at least this many (or all routable items when there are fewer).
        seed: Seed of the random draw (recorded; the same seed draws the same slice).
        target: The target step 2 will route to (WER, or 1 - accuracy); plans the evidence for it.
        delta: Error level of the promise (for the plan).
    """
    from kdh_ai.routing.evidence import describe, evidence_plan_from_arrays

    job = Job(Path(job_dir))
    with job:
        preds = job.units()
        if not preds:
            raise RoutingError(f"{job.root} has no predictions yet; run `kdh prelabel` first")
        if any(r in ("auto_accept", "audit") for r in current_roles(job).values()):
            raise RoutingError(f"{job.root} is already routed (step 2); drawing a new calibration slice would undo "
                               "it. Route again with more evidence (`kdh route JOB --target-...` after more gold "
                               "or calibration answers), or use a new job directory to start over")
        task = job.task_type()
        gold = set(job.gold())
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
        n = (max(int(round(size * len(routable))), min_items) if size < 1 else
             len(routable) if math.isinf(size) else int(size))
        plan = None
        if target is not None:
            gold_have, _ = _gold_have(job, task, delta)
            plan = evidence_plan_from_arrays(
                target=target, batch_confidence=np.array([prediction_score(preds[k]) for k in routable]),
                units_per_item=_units_per_item(job, task, routable), calibration_have=0, gold_have=gold_have,
                fixed_items=len(preds) - len(routable), delta=delta, seed=seed)
            n = max(n, int(plan["calibration_needed"]))
        n = min(len(routable), n)
        rng = np.random.default_rng(seed)
        cal = set(rng.choice(routable, size=n, replace=False).tolist()) if n else set()
        for item_id in routable:
            roles[item_id] = ("calibration", "random calibration slice") if item_id in cal else (
                "pending", "waits for the threshold")
        mark_roles(job, roles, "calibration")
        now = current_roles(job)
        msg = (f"{n} of {len(routable)} routable items drawn for the calibration slice (seed {seed}). "
               "Next: `kdh push`, "
               "let people answer them (trusted reviewers, or 2+ annotators each), `kdh pull`, then `kdh route` "
               "again with --target-wer/--target-accuracy or --budget.")
        if len(routable) < 100 and n >= 0.5 * len(routable) and not math.isinf(size):
            msg += (f" This batch is small ({len(routable)} units): the slice is most of it, and a promise on so few "
                    "units sends most of the rest to people too. Route it with the client's other recordings in "
                    "one job, or draw a small slice (--calibration 6) and pool earlier jobs' reviewed units in "
                    "step 2 (--prior-calibration EARLIER_JOB, e.g. a first batch routed with --calibration all); "
                    "see docs/labelstudio.md, 'A single long recording'.")
        if plan is not None:
            plan["calibration_have"] = n
            msg += " " + describe(plan, metric=_metric(task.name),
                                  unit_name="answers of one person to one gold item")
        result = RoutingResult("calibration", _counts(now), _human_share(now), message=msg,
                               details={"calibration_size": n, "seed": seed, "routable": len(routable),
                                        "target": target}, evidence=plan)
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
    conf = np.array([prediction_score(preds[k]) for k in answered])
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
        c, e, answered = _calibration_errors(other, task, cal_ids, other.units())
        if not answered:
            raise RoutingError(f"--prior-calibration {path} has no answered calibration item; leave it out")
        confs.append(c)
        errs.append(e)
        names.append(f"{other.root.name} ({len(answered)} items)")
    return np.concatenate(confs), np.concatenate(errs), names


def drift_check(conf: np.ndarray, errs: np.ndarray, prior_conf: np.ndarray, prior_errs: np.ndarray, *,
                delta: float = 0.05, bins: int = 5, batch_confidence: np.ndarray | None = None
                ) -> dict[str, float | bool]:
    """Do earlier batches' calibration slices still describe this batch? Two checks, each at level ``delta``.

    Pooling treats the earlier slices and this batch as one exchangeable population
    (:mod:`kdh_ai.routing.threshold`), so both must come from the same stream:

    * **errors** (needs this batch's answered slice): the earlier slices give an error rate per confidence band
      (quantile bands of their confidence); this slice's observed errors are compared with the errors those
      rates predict for its items, with a one-sided test on the summed difference (its standard error from the
      items' spread). More errors than predicted: another speaker population, another microphone.
    * **confidence** (``batch_confidence``, every routable unit of this batch, no answers needed): a two-sample
      Kolmogorov-Smirnov test of this batch's confidences against the earlier slices'. A batch of another kind
      of audio (noisy calls after clean interviews) shows here long before a small slice can show it in its
      errors: measured on the long recordings of ``benchmarks/long_recordings.py`` (clean, noisy and synthetic
      speech; 30-minute batches with an hour of *other* recordings pooled, own slice of 6 segments), the
      errors check alone let the 8 % target fail in 8 % of draws; with this check, in none.

    Either check firing is drift: routing must then rely on this batch's slice alone (safe: more people).

    Returns:
        ``{"observed", "expected", "z", "p_value", "shift_d", "shift_p", "errors_drift", "shift", "drift"}``:
        errors per unit observed and expected, the errors test, the confidence test's statistic and p-value
        (``nan`` without ``batch_confidence``), which check fired, and the verdict.
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
    shift_d, shift_p = float("nan"), float("nan")
    if batch_confidence is not None and len(batch_confidence) and len(prior_conf):
        ks = stats.ks_2samp(np.asarray(batch_confidence, dtype=float), np.asarray(prior_conf, dtype=float))
        shift_d, shift_p = float(ks.statistic), float(ks.pvalue)
    units = max(float(errs[:, 1].sum()), 1e-9)
    return {"observed": float(errs[:, 0].sum() / units), "expected": float(expected.sum() / units), "z": z,
            "p_value": p, "shift_d": shift_d, "shift_p": shift_p, "errors_drift": bool(p < delta),
            "shift": bool(shift_p < delta), "drift": bool(p < delta or shift_p < delta)}


def _decidable_human(job: Job) -> set[str]:
    """Items with role ``human`` that routing's threshold put there (step ``route``): they may move back."""
    return {k for k, r in job.roles().items() if r.role == "human" and r.step == "route"}


def _unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash: the same item gets the same draw on every run."""
    import hashlib

    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route(job_dir: str | Path, *, target: float | None = None, budget: float | None = None,
          audit_rate: float = 0.05, delta: float = 0.05, human_error: float | None = None,
          min_calibrated: float = 0.8, seed: int = 0, prior: Sequence[str | Path] = (),
          calibration_reviewed: bool = False) -> RoutingResult:
    """Step 2: choose the threshold from the answered calibration slice and route every item still open.

    It can run again as evidence arrives (more gold answers, more calibration answers, a reviewed slice):
    items no person has answered yet (pending, auto-accepted, audit, or sent to people by an earlier threshold)
    are decided afresh, and may move back to auto-accept; items people answered stay with their answers.
    With no new evidence, running it again changes nothing (the audit draw is a hash of the seed and the item).

    Args:
        job_dir: A job whose calibration slice has been answered and pulled.
        target: Target error rate of the delivered batch (WER for transcription, 1 - accuracy for labels).
        budget: Largest share of items people may touch (budget mode), instead of ``target``.
        audit_rate: Share of auto-accepted items people check anyway.
        delta: Error level of the promise: the target holds with probability at least ``1 - delta``
            (split between the people's bound and the model's, :func:`kdh_ai.routing.threshold.split_delta`).
        human_error: The people's error rate, when it cannot be measured on gold (recorded as an assumption).
        min_calibrated: Share of the calibration slice that must be answered before routing.
        seed: Seed of the audit draw.
        prior: Earlier jobs of the same client, pre-labeled with the same model and options, whose answered
            calibration slices join this one (a tighter bound for the same human share). They are used only
            if this batch's slice shows no drift against them (:func:`drift_check`); otherwise the message
            says so and this slice is used alone.
        calibration_reviewed: The calibration slice's answers are of gold quality (trusted reviewers, or
            aggregated overlap checked by a reviewer): its items count as delivered exact, like gold items,
            instead of at the people's error rate (and ``kdh deliver`` marks them ``reviewed``).

    Raises:
        RoutingError: No calibration slice, too few answers, no measure of the people's error rate, or a
            prior job that is not comparable (another task, model or options; no answered calibration).
    """
    _check_route_options(target, budget, audit_rate)
    job = Job(Path(job_dir))
    with job:
        task = job.task_type()
        preds = job.units()
        roles = current_roles(job)
        cal_ids = sorted(k for k, r in roles.items() if r == "calibration")
        if not cal_ids:
            raise RoutingError("no calibration slice yet: run `kdh route JOB_DIR --calibration 0.2` first, push, "
                               "annotate and pull")
        conf, errs, answered = _calibration_errors(job, task, cal_ids, preds)
        if len(answered) < max(2, math.ceil(min_calibrated * len(cal_ids))):
            raise RoutingError(f"only {len(answered)} of {len(cal_ids)} calibration items have answers; wait for "
                               f"people to finish (at least {min_calibrated:.0%}), run `kdh pull`, then route again")
        measured, people_delta = _people_error(human_error_rate(job, task, delta=delta), human_error, delta)
        pooled: dict[str, Any] = {}
        if prior:
            routable = [k for k, r in roles.items() if r != "gold" and k in preds and preds[k].status != "error"]
            conf, errs, pooled = _pool_prior(job, task, prior, conf, errs, delta,
                                             np.array([prediction_score(preds[k]) for k in routable]))
        answered_any = set(human_answers(job, task))
        movable = _decidable_human(job)
        open_ids = sorted(k for k, r in roles.items() if k not in answered_any and (
            r in ("pending", "auto_accept", "audit") or (r == "human" and k in movable)))
        manifest = job.read_manifest()
        evidence = _carry_evidence(job, task, manifest, target, delta, seed, calibration_reviewed, len(answered),
                                   measured)
        details_base = {"mode": "target" if target is not None else "budget", "target": target, "budget": budget,
                        "delta": delta, "metric": _metric(task.name), "calibration_answered": len(answered),
                        "audit_rate": audit_rate, "calibration_reviewed": calibration_reviewed,
                        "people_delta": people_delta}
        if not open_ids:
            result = _nothing_to_route(roles, measured, target, details_base, evidence)
            job.update_manifest(routing=asdict(result))
            return result
        n_total = len(roles)
        fixed = sum(k not in set(open_ids) and r in HUMAN_ROLES for k, r in roles.items()) / max(1, n_total)
        # Gold items are delivered with their known answers (and a reviewed calibration slice with its gold-
        # quality ones); the others with the people's.
        with_people = ("human", "audit") if calibration_reviewed else ("calibration", "human", "audit")
        fixed_err = sum(k not in set(open_ids) and r in with_people for k, r in roles.items()) / max(1, n_total)
        batch_conf = np.array([prediction_score(preds[k]) for k in open_ids])
        # The slice was drawn from the items routable at step 1; some of them may have been answered since.
        ever_pending = {r.key for r in job.role_history() if r.role == "pending"}
        kw = dict(batch_confidence=batch_conf, human_error_rate=measured.rate, human_error_upper=measured.upper,
                  people_delta=people_delta, budget=budget, fixed_human_share=fixed, delta=delta,
                  start_threshold=(1 - measured.rate) if task.confidence_is_probability else None,
                  population=len(conf) + len(ever_pending))
        choice = choose_threshold(conf, errs[:, 0], errs[:, 1], target=target, fixed_error_share=fixed_err, **kw)
        second = job_second_opinion(job)  # the score is confidence x agreement with a second model
        score_name = f"score (confidence x agreement with {second['model']})" if second else "confidence"
        mark_roles(job, _decide(open_ids, preds, choice.threshold, seed=seed, audit_rate=audit_rate,
                                score_name=score_name), "route")
        now = current_roles(job)
        result = _result_from_choice(choice, now, measured, task.name, len(answered), audit_rate, target, budget)
        result.details.update(details_base)
        if second:
            result.details["second_opinion"] = second
            result.message += (f" Scores combine the model's confidence with a second opinion ({second['model']}): "
                               f"{second['rule']}.")
        result.details["rerouted"] = sum(roles.get(k) in ("auto_accept", "audit", "human") for k in open_ids)
        result.evidence = evidence
        if not choice.reachable and target is not None:
            result.advice = _cheapest_change(job, task, conf, errs, measured, kw, target, fixed_err,
                                             calibration_reviewed, evidence, roles)
            result.message += f" Cheapest change that would reach it: {result.advice['why']} Command: " \
                              f"{result.advice['command']}"
        if pooled:
            result.details["pooled_calibration"] = pooled
            result.message += _pooled_message(pooled)
        job.update_manifest(routing=asdict(result))
    return result


def _check_route_options(target: float | None, budget: float | None, audit_rate: float) -> None:
    if (target is None) == (budget is None):
        raise InvalidInputError("give exactly one of target (e.g. --target-wer 0.05) or budget (e.g. --budget 0.3)")
    if target is not None and not 0 < target < 1:
        raise InvalidInputError(f"the target error rate must lie in (0, 1), got {target}")
    if not 0 <= audit_rate < 1:
        raise InvalidInputError(f"audit_rate must lie in [0, 1), got {audit_rate}")


def _people_error(measured: HumanError | None, human_error: float | None, delta: float
                  ) -> tuple[HumanError, float]:
    """The people's error rate (measured on gold, else the assumed ``human_error``) with its upper bound, and
    the error level spent on that bound."""
    from kdh_ai.routing.threshold import people_upper_bound, split_delta

    if measured is None and human_error is None:
        raise RoutingError("the people's error rate is unknown: no gold item has been answered. Add gold "
                           "items (`kdh push --gold ...`) and pull their answers, or pass --human-wer / "
                           "--human-error as an explicit assumption")
    if measured is None:
        measured = HumanError(float(human_error), float(human_error), 0, source="assumed")
    people_delta, _ = split_delta(delta, people_measured=measured.source == "gold")
    if measured.source == "gold":
        measured.upper = people_upper_bound(measured.errors, measured.units, delta=people_delta)
    return measured, people_delta


def _pool_prior(job: Job, task: Any, prior: Sequence[str | Path], conf: np.ndarray, errs: np.ndarray,
                delta: float, batch_conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """This slice joined with earlier jobs' answered slices, unless this batch drifted from them; what was
    pooled."""
    p_conf, p_errs, names = _prior_calibration(job, task, prior)
    drift = drift_check(conf, errs, p_conf, p_errs, delta=delta, batch_confidence=batch_conf)
    pooled = {"prior_jobs": names, "prior_items": int(len(p_conf)), "drift": drift, "used": not drift["drift"]}
    if drift["drift"]:
        logger.warning("calibration drift against earlier batches (%s); earlier slices not used",
                       _drift_reason(drift))
        return conf, errs, pooled
    return np.concatenate([conf, p_conf]), np.concatenate([errs, p_errs]), pooled


def _drift_reason(drift: dict[str, Any]) -> str:
    """Which drift check fired, in words."""
    why = []
    if drift["errors_drift"]:
        why.append(f"this slice's model error {drift['observed']:.2%} vs {drift['expected']:.2%} predicted, "
                   f"p={drift['p_value']:.3f}")
    if drift["shift"]:
        why.append(f"this batch's confidences differ from theirs (Kolmogorov-Smirnov D={drift['shift_d']:.2f}, "
                   f"p={drift['shift_p']:.3f})")
    return "; ".join(why)


def _pooled_message(pooled: dict[str, Any]) -> str:
    if pooled["used"]:
        return (f" Calibration pooled with {pooled['prior_items']} answered items of earlier batches "
                f"({', '.join(pooled['prior_jobs'])}).")
    return (f" Earlier batches' calibration NOT used, this batch is not like them ({_drift_reason(pooled['drift'])}): "
            "this slice alone decided.")


def _nothing_to_route(roles: dict[str, str], measured: HumanError, target: float | None,
                      details: dict[str, Any], evidence: dict[str, Any] | None) -> RoutingResult:
    """The result when every item is answered or with people: the delivered quality is the people's."""
    auto_n = sum(r == "auto_accept" for r in roles.values())
    msg = ("Every item is already with people (calibration, gold or failed items): nothing left to route; "
           "the delivered quality is the people's." if not auto_n else
           f"Nothing left to decide: {auto_n} items are auto-accepted and answered, the rest answered by "
           "people.")
    return RoutingResult("route", _counts(roles), _human_share(roles), estimated_error=measured.rate,
                         error_upper=measured.upper, reachable=target is None or measured.upper <= target,
                         human_error=asdict(measured), message=msg, details=details, evidence=evidence)


def _decide(open_ids: list[str], preds: dict[str, Any], threshold: float, *, seed: int, audit_rate: float,
            score_name: str = "confidence") -> dict[str, tuple[str, str]]:
    """Each open item's role and reason at ``threshold`` on its routing score (``score_name`` in the reason),
    with the random audit of auto-accepted items."""
    new: dict[str, tuple[str, str]] = {}
    for k in open_ids:
        c = prediction_score(preds[k])
        if preds[k].payload.get("uncalibrated"):  # a head that saw too few classes (kdh_ai.heads)
            new[k] = ("human", "the model's confidence is uncalibrated (its labels cover too few classes)")
        elif c < threshold:
            new[k] = ("human", f"{score_name} {c:.3f} below threshold {threshold:.3f}")
        elif _unit_hash(seed, "audit", k) < audit_rate:
            new[k] = ("audit", f"random audit of auto-accepted items ({audit_rate:.0%})")
        else:
            new[k] = ("auto_accept", f"{score_name} {c:.3f} at or above threshold {threshold:.3f}")
    return new


def _carry_evidence(job: Job, task: Any, manifest: dict[str, Any], target: float | None, delta: float, seed: int,
                    reviewed: bool, n_answered: int, measured: HumanError) -> dict[str, Any] | None:
    """The evidence plan for ``target``: step 1's figures when it planned the same target, with the counts of
    now (calibration answers, gold answers); planned afresh otherwise."""
    if target is None:
        return None
    old = (manifest.get("routing") or {}).get("evidence")
    if old and abs(float(old.get("target", -1)) - target) < 1e-12:
        plan = dict(old)
    else:
        plan = evidence_plan(job.root, target=target, delta=delta, seed=seed, calibration_reviewed=reviewed)
    plan["calibration_have"] = int(n_answered)
    plan["gold_have"] = int(measured.n_answers) if measured.source == "gold" else 0
    return plan


def _cheapest_change(job: Job, task: Any, conf: np.ndarray, errs: np.ndarray, measured: HumanError,
                     kw: dict[str, Any], target: float, fixed_err: float, reviewed: bool,
                     evidence: dict[str, Any] | None, roles: dict[str, str]) -> dict[str, str]:
    """The least costly of: a reviewed calibration slice, more gold answers, a larger slice, more overlap.

    Each is tried as a counterfactual with the same bound (the first that reaches the target wins, in order of
    the people's work it costs)."""
    from kdh_ai.routing.threshold import people_upper_bound

    flag = "--target-wer" if task.name == "transcription" else "--target-accuracy"
    value = target if task.name == "transcription" else 1 - target
    again = f"kdh route {job.root} {flag} {value:g}"
    kw = dict(kw, curve_bounds=False)

    def reaches(**change: Any) -> bool:
        args = dict(kw, **change)
        return choose_threshold(conf, errs[:, 0], errs[:, 1], target=target, **args).reachable

    n_total = max(1, len(roles))
    if not reviewed:
        cal_share = sum(r == "calibration" for r in roles.values()) / n_total
        if reaches(fixed_error_share=max(0.0, fixed_err - cal_share)):
            return {"change": "reviewed calibration", "command": f"{again} --calibration-reviewed",
                    "why": "have trusted reviewers check the calibration slice's answers (gold quality), then "
                           "route with --calibration-reviewed: its items are then delivered exact."}
    if measured.source == "gold" and measured.units > 0:
        per_answer = measured.units / max(1, measured.n_answers)
        for more in (1, 2, 4, 8):
            units = measured.units * (1 + more)
            up = people_upper_bound(measured.rate * units, units, delta=kw["people_delta"])
            if reaches(fixed_error_share=fixed_err, human_error_upper=up):
                extra = int(math.ceil(more * measured.n_answers))
                return {"change": "more gold", "command": f"kdh push {job.root} --gold more_gold.csv; let people "
                        f"answer; kdh pull {job.root}; {again}",
                        "why": f"about {extra} more gold answers (~{extra * per_answer:.0f} "
                               f"{'words' if task.item_kind == 'audio' else 'labels'}) narrow the people's bound "
                               f"from {measured.upper:.1%} toward {up:.1%}."}
    need = (evidence or {}).get("calibration_needed")
    if need and need > len(conf) and measured.upper < target:
        return {"change": "larger calibration slice", "command": f"a new job: kdh route NEW_JOB --calibration "
                f"{need} {flag} {value:g}",
                "why": f"the slice has {len(conf)} answered items; the plan for this target needs about {need}."}
    for factor in (0.5, 0.25):
        if reaches(fixed_error_share=fixed_err, human_error_rate=measured.rate * factor,
                   human_error_upper=measured.upper * factor):
            return {"change": "more overlap", "command": f"kdh push {job.root} --overlap 1.0 --overlap-k 3; "
                    f"annotate; kdh pull {job.root}; {again}",
                    "why": f"the people's error rate ({measured.rate:.1%}, bound {measured.upper:.1%}) must fall "
                           f"to about {measured.rate * factor:.1%}: 2-3 annotators per item, aggregated."}
    return {"change": "lower target", "command": f"{again.rsplit(' ', 1)[0]} <a looser target>",
            "why": "no single change reaches this target with these people and this model: agree a looser "
                   "target with the client, or use reviewers."}


def _metric(task_name: str) -> str:
    return "WER" if task_name == "transcription" else "error rate (1 - accuracy)"


def _result_from_choice(choice: ThresholdChoice, roles: dict[str, str], measured: HumanError, task_name: str,
                        n_cal: int, audit_rate: float, target: float | None, budget: float | None) -> RoutingResult:
    metric = _metric(task_name)
    share = _human_share(roles)
    if not choice.reachable and target is not None:
        msg = (f"Target {metric} {target:.1%} cannot be promised with the evidence so far: the people's measured "
               f"{metric} is {measured.rate:.1%} (upper bound {measured.upper:.1%}"
               + (f", from {measured.n_answers} gold answers" if measured.source == "gold" else ", assumed")
               + f"; {n_cal} calibration items), and no mix of their answers with the model's confident ones can "
               "be promised to meet it either. Every open item goes to people for now; route again when more "
               "evidence arrives (items people have not answered yet can then move back to auto-accept).")
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


def _audit_bands(edges: np.ndarray, a_conf: np.ndarray, errs: np.ndarray) -> list[dict[str, Any]]:
    """The model's error rate on the audited items of each confidence band (``None`` where none was audited)."""
    strata = len(edges) - 1
    bands = []
    for b in range(strata):
        lo, hi = edges[b], edges[b + 1]
        in_band = (a_conf >= lo) & ((a_conf < hi) if b < strata - 1 else (a_conf <= hi))
        rate = float(errs[in_band, 0].sum() / max(errs[in_band, 1].sum(), 1e-9)) if in_band.any() else None
        bands.append({"low": float(lo), "high": float(hi), "audited": int(in_band.sum()), "model_error": rate})
    return bands


def _reroute_low_bands(auto: list[str], preds: dict[str, Any], roles: dict[str, str], edges: np.ndarray,
                       a_conf: np.ndarray, errs: np.ndarray, *, target: float, human_rate: float,
                       overall: float) -> tuple[list[str], int, float]:
    """While the delivered error estimate exceeds ``target``, send the lowest-confidence band still
    auto-accepted to people: the items moved, the number of bands moved, and the estimate after."""
    strata = len(edges) - 1
    n_all = len(roles)

    def delivered(model_rate: float, n_auto: int) -> float:
        share_auto = n_auto / max(1, n_all)
        return share_auto * model_rate + (1 - share_auto) * human_rate

    estimate = delivered(overall, len(auto))
    rerouted: list[str] = []
    band = 0
    while estimate > target and band < strata:
        lo, hi = edges[band], edges[band + 1]
        moved = [k for k in auto if lo <= prediction_score(preds[k]) <= hi and roles[k] == "auto_accept"
                 and k not in rerouted]
        rerouted.extend(moved)
        keep = a_conf > hi
        rate = float(errs[keep, 0].sum() / max(errs[keep, 1].sum(), 1e-9)) if keep.any() else overall
        estimate = delivered(rate, len(auto) - len(rerouted))
        band += 1
    return rerouted, band, estimate


def check_audit(job_dir: str | Path, *, strata: int = 5, delta: float = 0.05) -> RoutingResult:
    """Compare the answered audit items with the promise; re-route strata that missed it.

    States its own state first: with no audit item it says there is nothing to audit (the routing stands,
    ``details.audit.status = "nothing to audit"``); with audit items and none answered it raises, saying how
    many remain. Otherwise the auto-accepted items are split into ``strata`` confidence bands and the audit
    measures the model's error rate on them. The delivered error is re-estimated with it (audited model error
    on the auto-accepted share, the people's measured rate elsewhere); while that estimate exceeds the target,
    the lowest-confidence band still auto-accepted goes to people (role ``human``, reason "audit re-route"),
    and the job manifest records it (``details.audit``: ``status`` "holds", "re-routed" or "partial"; counts).

    Raises:
        RoutingError: The job has not been routed to a target, or no audit item has been answered yet.
    """
    job = Job(Path(job_dir))
    with job:
        manifest = job.read_manifest()
        routing = manifest.get("routing") or {}
        target = (routing.get("details") or {}).get("target")
        if routing.get("step") not in ("route", "audit") or target is None:
            raise RoutingError("check-audit needs a job routed to a target (kdh route --target-...)")
        task = job.task_type()
        metric = _metric(task.name)
        preds = job.units()
        roles = current_roles(job)
        audit_ids = [k for k, r in roles.items() if r == "audit"]
        base = {k: routing.get(k) for k in ("threshold", "estimated_error", "error_upper", "reachable",
                                             "human_error", "evidence", "advice")}
        if not audit_ids:
            n_auto = sum(r == "auto_accept" for r in roles.values())
            msg = (f"Nothing to audit: no item was drawn for audit ({n_auto} auto-accepted items, audit rate "
                   f"{(routing.get('details') or {}).get('audit_rate', 0):.0%}). The routing stands.")
            result = RoutingResult("audit", _counts(roles), _human_share(roles), message=msg, details={
                **(routing.get("details") or {}), "audit": {"status": "nothing to audit", "items": 0,
                                                            "answered": 0, "rerouted": 0}}, **base)
            job.update_manifest(routing=asdict(result))
            return result
        answers = human_answers(job, task, items=set(audit_ids))
        answered = [k for k in audit_ids if k in answers]
        remaining = len(audit_ids) - len(answered)
        if not answered:
            raise RoutingError(f"0 of {len(audit_ids)} audit items answered yet; {remaining} remain. Let people "
                               "answer them, run `kdh pull`, then check the audit again")
        auto = [k for k, r in roles.items() if r in ("auto_accept", "audit")]
        conf_auto = np.array([prediction_score(preds[k]) for k in auto])
        edges = np.quantile(conf_auto, np.linspace(0, 1, strata + 1)) if len(auto) else np.array([0.0, 1.0])
        errs = task.item_errors([preds[k].text for k in answered], [answers[k].answer for k in answered])
        a_conf = np.array([prediction_score(preds[k]) for k in answered])
        h = float((routing.get("human_error") or {}).get("rate", 0.0))
        bands = _audit_bands(edges, a_conf, errs)
        overall = float(errs[:, 0].sum() / max(errs[:, 1].sum(), 1e-9))
        overall_up = float(betting_upper_bound(item_error_ratio(errs[:, 0], errs[:, 1])[None, :],
                                               delta=delta)[0])
        rerouted, band, estimate = _reroute_low_bands(auto, preds, roles, edges, a_conf, errs, target=target,
                                                      human_rate=h, overall=overall)
        mark_roles(job, {k: ("human", "audit re-route: the audit showed the target was missed in this "
                               "confidence band") for k in rerouted}, "audit")
        now = current_roles(job)
        head = (f"Audit: {len(answered)} of {len(audit_ids)} audit items answered"
                + (f" ({remaining} remain; pull again later and re-check)" if remaining else "")
                + f"; the model's {metric} on them is {overall:.2%} (at most {overall_up:.1%} with "
                f"{1 - delta:.0%} confidence from {len(answered)} items).")
        if rerouted:
            status = "re-routed"
            msg = (f"{head} With it the delivered {metric} is estimated above the target {target:.1%}: "
                   f"{len(rerouted)} auto-accepted items in the {band} lowest-confidence band(s) were re-routed to "
                   f"people (estimate now {estimate:.2%}). Next: `kdh push {job.root}`, let people answer, "
                   f"`kdh pull {job.root}`.")
        else:
            status = "partial" if remaining else "holds"
            msg = (f"{head} Delivered {metric} estimated {estimate:.2%} with it: the target {target:.1%} holds.")
        result = RoutingResult("audit", _counts(now), _human_share(now), message=msg, details={
            **(routing.get("details") or {}), "audit": {
                "status": status, "items": len(audit_ids), "answered": len(answered), "remaining": remaining,
                "model_error": overall, "model_error_upper": overall_up, "delivered_estimate": estimate,
                "bands": bands, "rerouted": len(rerouted), "rerouted_bands": band if rerouted else 0}}, **base)
        job.update_manifest(routing=asdict(result))
    return result
