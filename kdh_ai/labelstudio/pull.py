"""Pull annotations from Label Studio into the job directory (``annotations.jsonl``), incrementally.

Label Studio offers no change feed, so each pull reads every annotated task of the project in one call, the
server's own synchronous JSON export (``GET /api/projects/{id}/export?exportType=JSON``: annotated tasks only,
skipped annotations included), and compares it with what the job already holds:

* an annotation not seen before, or whose ``updated_at``, result, skip flag, lead time or annotator changed,
  gets a new record;
* an annotation recorded before and now absent from Label Studio (deleted, or its task deleted) gets a record
  with ``deleted: true``;
* an unchanged annotation writes nothing.

Each answer is recorded for its unit: the task's item and, for a review task of a long recording's work segment
(:mod:`kdh_ai.labelstudio.segments`), its segment (``Annotation.segment``, from ``tasks.jsonl``, else from the
task's ``data.segment``). Only the text box is the answer; the region that marks the segment is not.

All new records are appended in one write, after the whole export was read and checked, so a pull that fails
half-way leaves the job directory as it was. The cost is that of the export plus one call listing users (for
e-mails), close to the export alone (measured by ``benchmarks/labelstudio_bulk.py``, in ``docs/labelstudio.md``).

Example:
    >>> a = {"result": [], "updated_at": "t1", "was_cancelled": False, "lead_time": 1.0, "completed_by": 2}
    >>> _fingerprint(a) == _fingerprint(dict(a, completed_by={"id": 2, "email": "x@y.z"}))
    True
    >>> _fingerprint(a) == _fingerprint(dict(a, updated_at="t2"))
    False
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, RetryPolicy
from kdh_ai.labelstudio.state import read_ls_state, write_ls_state
from kdh_ai.qualify import hold_unqualified, write_held
from kdh_ai.records import Annotation, utc_now
from kdh_ai.tasks import TaskType, get_task

__all__ = ["PullResult", "annotations_frame", "export_project", "pull"]

logger = logging.getLogger(__name__)


@dataclass
class PullResult:
    """What a pull did.

    Attributes:
        project_id: The Label Studio project.
        tasks_seen: Annotated tasks in the export.
        annotations_seen: Annotations in the export (skipped ones included).
        new: Annotations recorded for the first time.
        changed: Annotations edited in Label Studio since the last pull.
        deleted: Annotations deleted in Label Studio since the last pull.
        unchanged: Annotations already up to date (nothing written).
        unknown_items: Annotated tasks without a known ``item_id`` (not from this job; left out).
        held: Answers kept apart: their annotators are not qualified (:func:`kdh_ai.qualify.hold_unqualified`).
        export_s: Seconds spent in Label Studio's export.
        wall_s: Seconds in all.
    """

    project_id: int
    tasks_seen: int = 0
    annotations_seen: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    unknown_items: int = 0
    held: int = 0
    export_s: float = 0.0
    wall_s: float = 0.0

    @property
    def written(self) -> int:
        return self.new + self.changed + self.deleted


def annotations_frame(job_dir: str | Path, *, include_skipped: bool = False, include_gold: bool = True) -> Any:
    """The job's current annotations in the crowd-kit contract for labels (``task, worker, label``).

    The same table as :func:`kdh_ai.answers.annotations_table`, with the answer in ``label`` and the lead time
    in ``lead_time``; annotations with an empty answer are kept. Columns: ``task`` (the unit key: item id, or
    ``item#0007`` for a segment), ``worker``
    (annotator e-mail, or id when unknown), ``label`` (the answer), then ``annotation_id, annotator_id,
    lead_time, created_at, updated_at, skipped, gold, prelabeled, role``. Deleted annotations are left out.

    Args:
        job_dir: A pulled job directory.
        include_skipped: Keep skipped annotations (their label is ``None``).
        include_gold: Keep annotations of gold tasks.
    """
    from kdh_ai.answers import annotations_table

    table = annotations_table(Job(Path(job_dir)), include_skipped=include_skipped, include_gold=include_gold,
                              include_empty=True)
    return table.rename(columns={"answer": "label", "lead_time_s": "lead_time"})[list(FRAME_COLUMNS)]


FRAME_COLUMNS = ("task", "worker", "label", "annotation_id", "annotator_id", "lead_time", "created_at", "updated_at",
                 "skipped", "gold", "prelabeled", "role")


def _fingerprint(ann: dict[str, Any]) -> str:
    completed = ann.get("completed_by")
    if isinstance(completed, dict):
        completed = completed.get("id")
    key = json.dumps([ann.get("result"), ann.get("updated_at"), bool(ann.get("was_cancelled")),
                      ann.get("lead_time"), completed], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def export_project(client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    """Label Studio's own synchronous JSON export of a project's annotated tasks."""
    resp = client.request("GET", f"api/projects/{project_id}/export", what=f"export project {project_id}",
                          params={"exportType": "JSON", "download_all_tasks": "false"})
    return json.loads(resp.content)


def pull(job_dir: str | Path, *, connection: Connection | None = None, task_type: TaskType | None = None,
         retry: RetryPolicy | None = None) -> PullResult:
    """Bring the project's annotations into ``annotations.jsonl`` (see the module docstring).

    Args:
        job_dir: A job directory that was pushed.
        connection: The server (default: :func:`kdh_ai.labelstudio.connection.resolve_connection`).
        task_type: The task type (default: the job's, from ``job.json``).
        retry: Retry policy for the server calls.

    Raises:
        ValueError: The job was never pushed.
        JobLockedError: Another kdh run writes to the job.
        LabelStudioError: The server failed; nothing was written.
    """
    t0 = time.perf_counter()
    job = Job(Path(job_dir))
    state = read_ls_state(job)
    if not state.get("project_id"):
        raise InvalidInputError(f"{job.root} was never pushed to Label Studio (no labelstudio.json); run `kdh push` first")
    pid = int(state["project_id"])
    if connection is None:
        from kdh_ai.labelstudio.connection import resolve_connection

        connection = resolve_connection(job_dir=job_dir)
    client = LabelStudioClient(connection, retry=retry)
    task = task_type or (job.task_type() if job.task else get_task(state.get("task") or ""))  # labels not needed
    result = PullResult(project_id=pid)
    with job:
        from kdh_ai.labelstudio.server import is_simulated

        user_list = client.users()
        users = {u["id"]: u.get("email") for u in user_list}
        simulated = {u["id"] for u in user_list if is_simulated(u)}
        t_exp = time.perf_counter()
        exported = export_project(client, pid)
        result.export_s = time.perf_counter() - t_exp

        by_task = {t.ls_task_id: t for t in job.pushed_tasks(pid).values()}
        previous = {a.annotation_id: a for a in job.annotations(pid, include_deleted=True)}
        now = utc_now()
        records: list[Annotation] = []
        seen: set[Any] = set()
        for t in exported:
            result.tasks_seen += 1
            info = by_task.get(t["id"])
            data = t.get("data") or {}
            item_id = info.item_id if info else data.get("item_id")
            segment = info.segment if info else data.get("segment")
            segment = None if segment is None else int(segment)
            if item_id is None:
                result.unknown_items += 1
                continue
            role = info.role if info else None
            for ann in t.get("annotations") or []:
                result.annotations_seen += 1
                aid = ann["id"]
                seen.add(aid)
                fp = _fingerprint(ann)
                old = previous.get(aid)
                if old is not None and not old.deleted and old.fingerprint == fp:
                    result.unchanged += 1
                    continue
                completed = ann.get("completed_by")
                annotator_id = completed.get("id") if isinstance(completed, dict) else completed
                skipped = bool(ann.get("was_cancelled"))
                result_list = ann.get("result") or []
                records.append(Annotation(
                    item_id=str(item_id), task=task.name, annotation_id=aid, ls_task_id=t["id"],
                    ls_project_id=pid, annotator_id=annotator_id,
                    annotator_email=users.get(annotator_id), annotator_simulated=annotator_id in simulated,
                    answer=None if skipped else task.result_to_answer(result_list), result=result_list,
                    lead_time_s=ann.get("lead_time"), created_at=ann.get("created_at"),
                    updated_at=ann.get("updated_at"), skipped=skipped, gold=role == "gold",
                    prelabeled=info.prelabeled if info else bool(t.get("predictions")),
                    role=role, deleted=False, fingerprint=fp, pulled_at=now, segment=segment))
                if old is None or old.deleted:
                    result.new += 1
                else:
                    result.changed += 1
        for aid, old in previous.items():
            if aid not in seen and not old.deleted:
                records.append(dataclasses.replace(old, deleted=True, pulled_at=now))
                result.deleted += 1
        records, held = hold_unqualified(job, records, task=task.name, result=result, previous=previous)
        job.append_annotations(records)
        write_held(job, held)  # answers of annotators not qualified for the task type: kdh_ai.qualify
        state["last_pull_at"] = now
        write_ls_state(job, state)
        ls_manifest = dict(job.read_manifest().get("labelstudio") or {})
        ls_manifest.update(last_pull_at=now, project_id=pid)
        job.update_manifest(labelstudio=ls_manifest)
    result.wall_s = time.perf_counter() - t0
    logger.info("Pulled project %d: %d new, %d changed, %d deleted, %d unchanged annotations (%.1f s)", pid,
                result.new, result.changed, result.deleted, result.unchanged, result.wall_s)
    return result
