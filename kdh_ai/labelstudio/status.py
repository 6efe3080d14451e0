"""Where a job stands in Label Studio: pending and done work, per annotator, and when it will be finished.

Computed from the job directory alone (``tasks.jsonl`` and ``annotations.jsonl``; ``kdh status`` pulls first),
so it also works offline on a copy of the job.

* A task **needs** ``overlap`` annotations from distinct annotators (1 for ordinary tasks, k for overlap
  tasks, the gold overlap for gold tasks) and is **done** when it has them, counting only annotations that are
  neither skipped nor deleted (skipped tasks go back to the queue for others, as Label Studio does).
* **Hours** per annotator are the sum of Label Studio's ``lead_time`` (seconds the annotation was open in the
  editor, accumulated over edits). ``hours_capped`` counts at most ``lead_time_cap_s`` per annotation, so a tab
  left open over lunch does not count as work; pay from whichever the hub agreed on.
* The **ETA** divides the annotations still needed by the recent rate (annotations created over the last
  ``window_h`` hours, or since the first annotation if later), in calendar time.
* The **next step** (:func:`next_step`) tells the lead which command comes next in the loop: route step 1,
  push, wait for N answers and pull, route step 2, push again, check the audit, deliver.

Example:
    >>> s = JobStatus(project_id=1, tasks=10, tasks_done=4, annotations_needed=12, annotations_done=5)
    >>> s.remaining, s.tasks_pending
    (7, 6)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.labelstudio.state import read_ls_state
from kdh_ai.records import TaskRole
from kdh_ai.routing import routing_result
from kdh_ai.second_opinion import job_second_opinion

__all__ = ["AnnotatorStats", "JobStatus", "job_status", "next_step"]


@dataclass
class AnnotatorStats:
    """One annotator's work in the job (within the optional period).

    Attributes:
        annotator_id: Label Studio user id.
        email: Their e-mail.
        items: Distinct items annotated (not skipped, not deleted).
        annotations: Annotations (not skipped, not deleted).
        skipped: Skipped tasks.
        gold: Gold tasks annotated.
        control: Control tasks (no pre-annotation) annotated.
        hours: Sum of lead_time (skips included: skipping takes time too), in hours.
        hours_capped: The same with each annotation capped at ``lead_time_cap_s``.
        first_at: First annotation's creation time.
        last_at: Last annotation's update time.
    """

    annotator_id: Any
    email: str | None
    items: int = 0
    annotations: int = 0
    skipped: int = 0
    gold: int = 0
    control: int = 0
    hours: float = 0.0
    hours_capped: float = 0.0
    first_at: str | None = None
    last_at: str | None = None


@dataclass
class JobStatus:
    """What ``kdh status`` reports.

    Attributes:
        project_id: The Label Studio project.
        url: The server.
        tasks: Tasks pushed (still present in Label Studio).
        tasks_by_role: Tasks per role.
        tasks_done: Tasks with all the annotations they need.
        tasks_started: Tasks with some but not all.
        annotations_needed: Annotations needed in all.
        annotations_done: Annotations that count toward them.
        per_annotator: One row per annotator.
        rate_per_hour: Recent annotations per hour (calendar time).
        eta: Estimated finishing time (UTC), ``None`` without a recent rate.
        last_pull_at: When annotations were last pulled.
        period: ``(since, until)`` that the per-annotator rows cover.
        next_step: What the lead does next, with the command (:func:`next_step`).
        second_opinion: The second model whose disagreement lowers routing scores (``kdh prelabel transcribe
            --second-opinion``), or ``None``.
    """

    project_id: int | None
    url: str | None = None
    tasks: int = 0
    tasks_by_role: dict[str, int] = field(default_factory=dict)
    tasks_done: int = 0
    tasks_started: int = 0
    annotations_needed: int = 0
    annotations_done: int = 0
    per_annotator: list[AnnotatorStats] = field(default_factory=list)
    rate_per_hour: float | None = None
    eta: datetime | None = None
    last_pull_at: str | None = None
    period: tuple[str | None, str | None] = (None, None)
    next_step: str = ""
    second_opinion: str | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.annotations_needed - self.annotations_done)

    @property
    def tasks_pending(self) -> int:
        return self.tasks - self.tasks_done


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def job_status(job_dir: str | Path, *, now: datetime | None = None, window_h: float = 168.0,
               lead_time_cap_s: float = 1800.0, since: datetime | None = None, until: datetime | None = None
               ) -> JobStatus:
    """Summarise the job's Label Studio work from its directory (see the module docstring).

    Args:
        job_dir: The job directory.
        now: The current time (for the ETA; default: now).
        window_h: Hours of recent activity the rate is measured over.
        lead_time_cap_s: Cap per annotation for ``hours_capped``.
        since: Count per-annotator work created at or after this time only (a pay period).
        until: ... and before this time.
    """
    if window_h <= 0 or lead_time_cap_s <= 0:
        raise InvalidInputError("window_h and lead_time_cap_s must be > 0")
    job = Job(Path(job_dir))
    state = read_ls_state(job)
    pid = state.get("project_id")
    now = now or datetime.now(timezone.utc)
    st = JobStatus(project_id=pid, url=state.get("url"), last_pull_at=state.get("last_pull_at"),
                   period=(since.isoformat() if since else None, until.isoformat() if until else None),
                   second_opinion=(job_second_opinion(job) or {}).get("model"))
    if pid is None:
        st.next_step = next_step(job, st)
        return st
    tasks = {k: t for k, t in job.pushed_tasks(pid).items() if not t.missing}
    anns = job.annotations(pid)
    st.tasks = len(tasks)
    for rec in tasks.values():
        st.tasks_by_role[rec.role] = st.tasks_by_role.get(rec.role, 0) + 1
    by_item: dict[str, set[Any]] = defaultdict(set)
    for a in anns:
        if not a.skipped:
            by_item[a.key].add(a.annotator_id)
    for item_id, rec in tasks.items():
        need = int(rec.overlap_applied or rec.overlap or 1)
        have = min(need, len(by_item.get(item_id, ())))
        st.annotations_needed += need
        st.annotations_done += have
        if have >= need:
            st.tasks_done += 1
        elif have:
            st.tasks_started += 1

    people: dict[Any, AnnotatorStats] = {}
    items_of: dict[Any, set[str]] = defaultdict(set)
    for a in anns:
        created = _parse(a.created_at)
        if (since and created and created < since) or (until and created and created >= until):
            continue
        key = a.annotator_id
        s = people.setdefault(key, AnnotatorStats(annotator_id=key, email=a.annotator_email))
        lead = float(a.lead_time_s or 0.0)
        s.hours += lead / 3600.0
        s.hours_capped += min(lead, lead_time_cap_s) / 3600.0
        if a.skipped:
            s.skipped += 1
        else:
            s.annotations += 1
            items_of[key].add(a.key)
            s.gold += a.gold
            s.control += a.role == TaskRole.CONTROL
        if a.created_at and (s.first_at is None or a.created_at < s.first_at):
            s.first_at = a.created_at
        if a.updated_at and (s.last_at is None or a.updated_at > s.last_at):
            s.last_at = a.updated_at
    for key, s in people.items():
        s.items = len(items_of[key])
    st.per_annotator = sorted(people.values(), key=lambda s: (-(s.annotations), str(s.email)))

    created_times = sorted(t for t in (_parse(a.created_at) for a in anns if not a.skipped) if t)
    if created_times:
        start = max(now - timedelta(hours=window_h), created_times[0])
        recent = sum(1 for t in created_times if t >= start)
        hours = max((now - start).total_seconds() / 3600.0, 0.25)  # no absurd rate from one fresh annotation
        if recent:
            st.rate_per_hour = recent / hours
            st.eta = now + timedelta(hours=st.remaining / st.rate_per_hour) if st.remaining else now
    st.next_step = next_step(job, st, tasks=tasks)
    return st


def next_step(job: Job, st: JobStatus, *, tasks: Mapping[str, Any] | None = None) -> str:
    """The next command of the loop for this job, in plain words (what ``kdh status`` prints last).

    Reads the job's routing (:meth:`Job.roles`, :func:`kdh_ai.routing.routing_result`) and the Label Studio
    state in ``st``: route step 1
    when nothing is routed; push when items meant for people are not in Label Studio yet; wait for the answers
    still needed (and pull); route step 2 when the calibration slice is answered; the cheapest change when the
    target was not reachable; the audit check once the audit items are answered; deliver at the end.
    """
    root = job.root
    result = routing_result(job) if job.manifest_path.exists() else None
    routing = asdict(result) if result is not None else {}
    details = routing.get("details") or {}
    roles = {k: r.role for k, r in job.roles().items()}
    task = job.task if job.manifest_path.exists() else None
    flag = "--target-wer" if task == "transcription" else "--target-accuracy"
    target = details.get("target") or (routing.get("evidence") or {}).get("target")
    shown = (target if task == "transcription" else 1 - target) if target is not None else None
    target_txt = f"{flag} {shown:g}" if shown is not None else f"{flag} TARGET"
    if not roles:
        return (f"route step 1: `kdh route {root} --calibration 0.2 --gold gold.csv {target_txt}` (or push "
                f"everything without routing: `kdh push {root}`)")
    for_people = {k for k, r in roles.items() if r.to_people}
    pushed = set(tasks or {})
    unpushed = for_people - pushed
    if st.project_id is None or unpushed:
        return f"push: `kdh push {root}` ({len(unpushed)} items for people are not in Label Studio yet)"
    if st.remaining:
        when = f", expected by {st.eta.strftime('%Y-%m-%d %H:%M UTC')}" if st.eta else ""
        return (f"wait for {st.remaining} more answers{when}, then pull: `kdh pull {root}` (`kdh status` pulls "
                "too)")
    step = routing.get("step")
    if step == "calibration" or "pending" in roles.values():
        return f"route step 2: `kdh route {root} {target_txt}`"
    advice = routing.get("advice")
    if advice and not routing.get("reachable", True):
        return f"the target is not reachable yet; cheapest change: {advice.get('command')}"
    audit = details.get("audit") or {}
    if step == "route" and target is not None:
        return f"check the audit: `kdh route {root} --check-audit`"
    if step == "audit" and audit.get("status") == "re-routed":
        return f"push the re-routed items: `kdh push {root}`"
    return f"deliver: `kdh deliver {root} --out DELIVERY_DIR`, then `kdh report {root} --out report.html`"
