"""Push a job's items to Label Studio as tasks, with the model's pre-annotations, overlap and gold.

What goes out (see :mod:`kdh_ai.labelstudio` for the whole design):

* **Which items.** Without routing: every item whose prediction has status ``ok`` or ``no_speech``, or only
  those with ``confidence < max_confidence``. With routing (:meth:`kdh_ai.job.Job.roles`): every item whose
  :class:`~kdh_ai.records.Role` goes to people (``calibration``, ``human``, ``audit``; not ``auto_accept`` or
  ``pending``), items the model failed on included (without a pre-annotation); items not routed yet wait.
  Items in the gold set are held back and only go out as gold.
* **Units.** A short clip or a text is one task. A long recording with work segments is routed and pushed
  segment by segment (:meth:`kdh_ai.job.Job.units`, unit keys ``item#0007``): each segment meant for people
  becomes a task of its own, its clip with a few seconds of context, the segment marked as a region, the
  model's text around it shown (:mod:`kdh_ai.labelstudio.segments`). Task roles, gold and ``tasks.jsonl``
  are per unit.
* **Task roles** (:class:`~kdh_ai.records.TaskRole`). Each item gets one, decided by a hash of
  ``(seed, item_id)`` so that it never changes between pushes: ``overlap`` (a share ``overlap_fraction`` of
  the items, done by ``overlap_k`` annotators each), ``control`` (a share ``control_share`` of the rest, sent
  *without* a pre-annotation so that the time saved by pre-labels can be measured from lead_time) or
  ``human``. An item routing put below its threshold (routing role ``human``) is always ``human``; a gold
  item is ``gold``.
* **Gold.** Gold items are inserted at random positions of the import order, which annotators follow
  (sequential sampling), at a rate that gives each annotator about ``gold_rate`` gold in their stream (see
  :func:`gold_count`), or more: as many as routing's evidence plan needs for its target
  (:func:`gold_needed_items`), all of them on the first push when the lead recorded fewer. Each gold task is
  done by ``gold_overlap`` annotators (default: all the annotators of the server; pushing again after adding
  annotators raises it). The answers never leave the job directory.
* **Audio.** Through local-files storage when kdh runs the server on this machine: each project gets a folder
  of symlinks (one per pushed item) under the server's narrow document root. By upload otherwise. Only a file
  that the model decoded as audio (prediction ``ok`` or ``no_speech``, with its ``sha256``) is linked or
  uploaded, and only while its bytes still have that hash; a gold file kdh never pre-labeled must decode as
  audio. An item the model failed on that is routed to people goes out as a task that describes the error
  (``data.kdh_error``, no file). See ``docs/labelstudio.md``, "Which files Label Studio can serve".

Idempotent and crash-safe: each task carries ``data.item_id``; a chunk is recorded in ``tasks.jsonl`` as soon
as Label Studio confirms it. Before importing, push compares the project's task count with ``tasks.jsonl``;
when they differ (an import whose answer was lost, a task deleted by hand) it lists the project's tasks and
reconciles by ``item_id``, so pushing again never creates a duplicate.

Example:
    >>> assign_role("LJ001-0001", seed=0, overlap_fraction=0.0, control_share=0.0)
    'human'
    >>> assign_role("LJ001-0001", seed=0, overlap_fraction=1.0, control_share=0.0)
    'overlap'
    >>> gold_count(100, rate=0.1, gold_overlap=2)
    6
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from kdh_ai.errors import InvalidInputError
from kdh_ai.guidelines import guideline_record, with_default_guideline
from kdh_ai.job import Job
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, LabelStudioError, RetryPolicy
from kdh_ai.labelstudio.project import create_project, data_key, project_url, read_guidelines
from kdh_ai.labelstudio.state import read_ls_state
from kdh_ai.labelstudio.state import write_ls_state as _write_ls_state
from kdh_ai.labelstudio import segments as segs
from kdh_ai.records import GoldAnswer, Prediction, PushedTask, Role, RoleRecord, TaskRole, unit_key, utc_now
from kdh_ai.routing import routing_result
from kdh_ai.tasks import TaskType

__all__ = ["PushOptions", "PushResult", "TaskRole", "assign_role", "gold_count", "gold_needed_items", "push",
           "read_ls_state"]

logger = logging.getLogger(__name__)

_PUSHABLE = ("ok", "no_speech")
_AUDIO_MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
               ".m4a": "audio/mp4"}


@dataclass(frozen=True)
class PushOptions:
    """Options of ``kdh push``.

    Attributes:
        project: Project title (default: the job directory's name). A job lives in one project.
        project_id: Attach the job to this existing project instead (its tasks are matched by item_id).
        max_confidence: Push only items whose confidence is below this (until routing exists).
        control_share: Share of the ordinary human items sent without a pre-annotation.
        overlap_fraction: Share of the human items done by ``overlap_k`` annotators.
        overlap_k: Annotators per overlap item (>= 2).
        gold_rate: Target share of gold in each annotator's stream (0 = no gold).
        gold_overlap: Annotators per gold item (default: every annotator on the server, at least 1).
        guidelines: Markdown or HTML file shown to annotators (when the project is created or updated). Default:
            the task type's guideline, ``docs/guidelines/<task>.md`` (:func:`kdh_ai.guidelines.load_guideline`).
        labels: Label list for task types that take one (classification).
        audio: ``"auto"`` (local files for a local server, else upload), ``"local"`` or ``"upload"``.
        chunk_size: Tasks per import request.
        upload_batch: Files per upload request (Label Studio accepts at most 100).
        workers: Parallel requests when setting per-task overlap.
        limit: Push at most this many new ordinary items now.
        seed: Seed of the role hash and of gold positions.
    """

    project: str | None = None
    project_id: int | None = None
    max_confidence: float | None = None
    control_share: float = 0.1
    overlap_fraction: float = 0.1
    overlap_k: int = 2
    gold_rate: float = 0.05
    gold_overlap: int | None = None
    guidelines: Path | None = None
    labels: tuple[str, ...] | None = None
    audio: Literal["auto", "local", "upload"] = "auto"
    chunk_size: int = 1000
    upload_batch: int = 50
    workers: int = 4
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("control_share", "overlap_fraction", "gold_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InvalidInputError(f"{name} must lie in [0, 1], got {v}")
        if self.gold_rate >= 1.0:
            raise InvalidInputError("gold_rate must be below 1")
        if self.overlap_k < 2:
            raise InvalidInputError(f"overlap_k must be >= 2, got {self.overlap_k}")
        if self.gold_overlap is not None and self.gold_overlap < 1:
            raise InvalidInputError(f"gold_overlap must be >= 1, got {self.gold_overlap}")
        if self.audio not in ("auto", "local", "upload"):
            raise InvalidInputError(f"audio must be 'auto', 'local' or 'upload', got {self.audio!r}")
        if self.chunk_size < 1 or self.workers < 1 or not 1 <= self.upload_batch <= 100:
            raise InvalidInputError("chunk_size and workers must be >= 1, upload_batch in 1..100")
        if self.max_confidence is not None and not 0.0 < self.max_confidence <= 1.0 + 1e-9:
            raise InvalidInputError(f"max_confidence must lie in (0, 1], got {self.max_confidence}")
        if self.limit is not None and self.limit < 0:
            raise InvalidInputError(f"limit must be >= 0, got {self.limit}")


@dataclass
class PushResult:
    """What a push did.

    Attributes:
        project_id: The Label Studio project.
        project_url: Its page.
        created: New tasks by role.
        already: Items pushed before (not sent again).
        adopted: Tasks found in Label Studio but missing from ``tasks.jsonl``, now recorded.
        skipped: Items not sent, by reason.
        issues: One message per item that could not be sent (what is wrong and what to do).
        overlap_set: Tasks whose overlap was set or raised.
        gold_overlap: Annotators per gold task.
        audio_mode: ``"local"``, ``"upload"`` or ``"none"`` (text tasks).
        import_s: Seconds spent importing.
        wall_s: Seconds in all.
    """

    project_id: int
    project_url: str
    created: dict[str, int] = field(default_factory=dict)
    already: int = 0
    adopted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    overlap_set: int = 0
    gold_overlap: int = 1
    audio_mode: str = "none"
    import_s: float = 0.0
    wall_s: float = 0.0

    @property
    def total_created(self) -> int:
        return sum(self.created.values())


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def assign_role(item_id: str, *, seed: int, overlap_fraction: float, control_share: float) -> str:
    """The :class:`TaskRole` value of an ordinary item: ``overlap``, ``control`` or ``human`` (stable for a seed)."""
    if _unit(seed, "overlap", item_id) < overlap_fraction:
        return TaskRole.OVERLAP.value
    if _unit(seed, "control", item_id) < control_share:
        return TaskRole.CONTROL.value
    return TaskRole.HUMAN.value


def gold_count(ordinary: int, *, rate: float, gold_overlap: int) -> int:
    """How many gold tasks to mix among ``ordinary`` new tasks.

    Each gold task is done by ``gold_overlap`` annotators and each ordinary task by about one, so an
    annotator sees ``G`` gold among ``ordinary / gold_overlap + G`` tasks. Solving for a share ``rate`` gives
    ``G = rate * ordinary / (gold_overlap * (1 - rate))``, rounded up.
    """
    if ordinary <= 0 or rate <= 0:
        return 0
    return math.ceil(rate * ordinary / (gold_overlap * (1.0 - rate)) - 1e-9)


def gold_needed_items(evidence: dict[str, Any] | None, gold_overlap: int) -> int:
    """Gold items routing's evidence plan needs in all (:attr:`RoutingResult.evidence`; 0 without a plan).

    The plan counts gold *answers* for people erring at 1%, 2% and 5%; the largest reachable figure is taken,
    divided by the annotators per gold item.

    Example:
        >>> gold_needed_items({"gold_needed": {"0.01": 4, "0.02": 9, "0.05": None}}, 2)
        5
    """
    needed = [int(v) for v in ((evidence or {}).get("gold_needed") or {}).values() if v is not None]
    return math.ceil(max(needed) / max(1, gold_overlap)) if needed else 0


def _job_key(job: Job) -> str:
    return hashlib.sha256(str(job.root).encode()).hexdigest()[:12]


def _model_version(pred: Prediction) -> str:
    m = pred.model or {}
    return f"{m.get('name', 'model')}@{m.get('version', '?')}/{(pred.config_hash or '')[:8]}"


def _safe_name(item_id: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._")[:80] or "item"
    return f"{stem}-{hashlib.sha256(item_id.encode()).hexdigest()[:8]}{suffix.lower()}"


# ---- the project --------------------------------------------------------------------------------------------
def _list_projects(client: LabelStudioClient, title: str) -> list[dict[str, Any]]:
    """Projects whose title contains ``title`` (the server filters; the caller checks equality)."""
    out, page = [], 1
    while True:
        body = client.get_json("api/projects/", what="list projects",
                               params={"page": page, "page_size": 100, "title": title})
        results = body.get("results", []) if isinstance(body, dict) else body
        out.extend(results)
        if not isinstance(body, dict) or not body.get("next") or not results:
            return out
        page += 1


def _ensure_project(job: Job, client: LabelStudioClient, task: TaskType, opts: PushOptions,
                    state: dict[str, Any]) -> dict[str, Any]:
    """Find or create the job's project; record it in labelstudio.json before anything else happens."""
    title = opts.project or job.root.name
    marker = f"kdh job {_job_key(job)}"
    opts = with_default_guideline(opts, task.name)  # the task type's guideline unless --guidelines gives one
    guidelines = read_guidelines(opts.guidelines) if opts.guidelines else None
    pid = state.get("project_id")
    if opts.project_id is not None and pid is not None and int(pid) != opts.project_id:
        raise InvalidInputError(f"{job.root} is already pushed to project {pid} ({state.get('project_title')!r}); a job "
                         "lives in one project: use a new job directory for another project")
    if opts.project_id is not None or pid is not None:
        want = int(opts.project_id if opts.project_id is not None else pid)
        try:
            project = client.get_json(f"api/projects/{want}/", what=f"read project {want}")
        except LabelStudioError as exc:
            if "HTTP 404" in str(exc):
                raise InvalidInputError(f"project {want} does not exist on {client.url} (the job was pushed to "
                                 f"{state.get('url', client.url)}); check KDH_LS_URL, or attach the job to "
                                 "another project with --project-id") from None
            raise
        if opts.project and pid is not None and opts.project != project["title"]:
            raise InvalidInputError(f"{job.root} is already pushed to project {want} titled {project['title']!r}, not "
                             f"{opts.project!r}; a job lives in one project")
    else:
        same = [p for p in _list_projects(client, title) if p.get("title") == title]
        mine = [p for p in same if marker in (p.get("description") or "")]
        if mine:
            project = mine[0]
            logger.info("Found this job's project %d %r (created by an interrupted push)", project["id"], title)
        elif same:
            raise InvalidInputError(f"a project titled {title!r} already exists on {client.url} (id {same[0]['id']}) and "
                             f"is not this job's; choose another --project name, or attach the job to it with "
                             f"--project-id {same[0]['id']}")
        else:
            project = create_project(client, task, title=title, guidelines=guidelines, labels=opts.labels,
                                     description=f"{task.name} batch; {marker}")
    config = task.label_config(labels=opts.labels) if opts.labels else task.label_config()
    if task.name == "transcription" and project.get("label_config") != config:
        # A project made before segment review: its template gains the header, region and context lines
        # (the text box keeps its name, so the annotations already made stay valid).
        client.request("PATCH", f"api/projects/{project['id']}/", what="update the labeling template",
                       json_body={"label_config": config})
    if guidelines and project.get("expert_instruction") != guidelines:
        client.request("PATCH", f"api/projects/{project['id']}/", what="update the guidelines",
                       json_body={"expert_instruction": guidelines, "show_instruction": True})
    state.update({"url": client.url, "project_id": int(project["id"]), "project_title": project["title"],
                  "task": task.name, "data_key": data_key(task, labels=opts.labels), "job_key": _job_key(job)})
    if opts.guidelines:  # which guideline the people worked to, for the client report
        state["guidelines"] = guideline_record(opts.guidelines)
    state.setdefault("created_at", utc_now())
    _write_ls_state(job, state)
    return project


def _ensure_local_storage(client: LabelStudioClient, conn: Connection, project_id: int,
                          state: dict[str, Any]) -> Path:
    """The project's folder under the server's narrow document root, and its local-files storage record."""
    if conn.files_root is None:
        raise InvalidInputError("local-files audio needs a server that kdh runs on this machine; use --audio upload")
    folder = Path(conn.files_root) / f"project-{project_id}"
    folder.mkdir(parents=True, exist_ok=True)
    storages = client.get_json("api/storages/localfiles/", what="list local-files storages",
                               params={"project": project_id})
    if not any(Path(s.get("path", "")) == folder for s in storages):
        # regex_filter matches nothing: a "Sync" clicked in the UI cannot create tasks without item_id
        client.request("POST", "api/storages/localfiles/", what="create the local-files storage",
                       json_body={"project": project_id, "path": str(folder), "title": "kdh audio",
                                  "use_blob_urls": True, "regex_filter": "(?!)"})
    state["files_dir"] = str(folder)
    return folder


# ---- reconciling ------------------------------------------------------------------------------------------
def _reconcile(job: Job, client: LabelStudioClient, project_id: int, recorded: dict[str, PushedTask],
               roles_for: dict[str, tuple[str, int]], result: PushResult) -> None:
    """Make tasks.jsonl agree with the tasks in Label Studio (by unit: data.item_id and data.segment)."""
    project = client.get_json(f"api/projects/{project_id}/", what=f"read project {project_id}")
    if int(project.get("task_number") or 0) == len(recorded):
        return
    logger.info("Project %d has %s tasks, tasks.jsonl records %d: reconciling by item_id", project_id,
                project.get("task_number"), len(recorded))
    in_ls: dict[str, tuple[str, int | None, dict[str, Any]]] = {}
    for t in client.iter_tasks(project_id):
        data = t.get("data") or {}
        if data.get("item_id") is None:
            continue
        item_id, segment = str(data["item_id"]), data.get("segment")
        segment = None if segment is None else int(segment)
        key = unit_key(item_id, segment)
        if key in in_ls:
            logger.warning("Project %d holds two tasks for %s (%d and %d); kdh uses the first", project_id,
                           key, in_ls[key][2]["id"], t["id"])
            continue
        in_ls[key] = (item_id, segment, t)
    now = utc_now()
    records = []
    for key, (item_id, segment, t) in in_ls.items():
        rec = recorded.get(key)
        if rec is not None and rec.ls_task_id == t["id"]:
            continue
        role, overlap = roles_for.get(key, (TaskRole.HUMAN, 1))
        records.append(PushedTask(item_id, project_id, t["id"], str(role), prelabeled=bool(t.get("total_predictions")),
                                  overlap=overlap, overlap_applied=int(t.get("overlap") or 1), model_version=None,
                                  data_url=None, pushed_at=t.get("created_at") or now, adopted=True, missing=False,
                                  segment=segment))
    for key, rec in recorded.items():
        if key not in in_ls:
            logger.warning("Item %s (task %s) is no longer in project %d; it will not be sent again",
                           key, rec.ls_task_id, project_id)
            records.append(dataclasses.replace(rec, missing=True, checked_at=now))
    job.append_pushed_tasks(records)
    result.adopted = sum(1 for r in records if r.adopted and not r.missing)


# ---- audio ------------------------------------------------------------------------------------------------
def _link_audio(folder: Path, item_id: str, path: str) -> str:
    """Symlink the item's audio into the project's folder; return its local-files URL."""
    target = os.path.realpath(path)
    name = _safe_name(item_id, Path(path).suffix)
    link = folder / name
    try:
        os.symlink(target, link)
    except FileExistsError:
        if os.readlink(link) != target:
            link.unlink()
            os.symlink(target, link)
    return f"/data/local-files/?d={folder.name}/{name}"


def _upload_audio(job: Job, client: LabelStudioClient, project_id: int, todo: Sequence[tuple[str, str]],
                  batch: int) -> dict[str, str]:
    """Upload audio files (``[(item_id, path)]``) not uploaded yet; return ``{item_id: url}``."""
    log = job.log("uploads")
    done = {k: v["url"] for k, v in log.latest_by("item_id", where={"ls_project_id": project_id}).items()}
    out = {i: done[i] for i, _ in todo if i in done}
    pending = [(i, p) for i, p in todo if i not in done]
    for start in range(0, len(pending), batch):
        part = pending[start:start + batch]
        files, names = {}, {}
        for n, (item_id, path) in enumerate(part):
            name = _safe_name(item_id, Path(path).suffix)
            files[f"file{n}"] = (name, Path(path).read_bytes(), _AUDIO_MIME.get(Path(path).suffix.lower(),
                                                                                 "application/octet-stream"))
            names[name] = item_id
        body = client.request("POST", f"api/projects/{project_id}/import", what=f"upload {len(part)} audio files",
                              params={"commit_to_project": "false"}, files=files, idempotent=True).json()
        ids = body.get("file_upload_ids") or []
        uploads = client.get_json(f"api/projects/{project_id}/file-uploads", what="read uploaded file names",
                                  params={"ids": json.dumps(ids)})
        recs = []
        for u in uploads:
            stored = str(u["file"])
            base = stored.rsplit("/", 1)[-1]
            item_id = next((names[n] for n in names if base.endswith(n)), None)
            if item_id is None:
                continue
            url = f"/data/{stored}"
            out[item_id] = url
            recs.append({"item_id": item_id, "ls_project_id": project_id, "file_upload_id": u["id"], "url": url,
                         "uploaded_at": utc_now()})
        log.append(recs)
    return out


# ---- the push ---------------------------------------------------------------------------------------------
@dataclass
class _Planned:
    item_id: str
    role: str
    value: str | None  # audio path or text
    prediction: Prediction | None
    overlap: int
    sha256: str | None = None  # audio: the hash the model's decoding recorded (the file must still have it)
    note: str | None = None  # audio the model could not decode: what went wrong (sent instead of the file)
    segment: int | None = None  # a work segment of a long recording: its index (the task is its clip)
    data: dict[str, Any] | None = None  # extra task data (segment: context, header, clip bounds)
    clip: segs.SegmentClip | None = None  # a segment: where its clip lies in the recording

    @property
    def key(self) -> str:
        return unit_key(self.item_id, self.segment)


_ABS_PATH = re.compile(r"(?<![\w.])/[^\s'\"]+")


def _error_note(item_id: str, error: str | None) -> str:
    """What an annotator is told about an item whose file is not sent (absolute paths cut to their names)."""
    reason = _ABS_PATH.sub(lambda m: Path(m.group(0)).name or "/", error or "the model could not read it")
    return (f"kdh did not send this item's file: it could not be used as audio ({reason}). Do not transcribe; "
            "tell the lead, who has the details in the job directory.")


def _annotator_count(client: LabelStudioClient) -> int:
    me = client.whoami().get("id")
    return sum(1 for u in client.users() if u.get("id") != me)


def push(job_dir: str | Path, options: PushOptions | None = None, *, connection: Connection | None = None,
         task_type: TaskType | None = None, retry: RetryPolicy | None = None, log_progress: bool = False
         ) -> PushResult:
    """Send the job's items meant for humans to Label Studio (see the module docstring).

    Args:
        job_dir: The job directory.
        options: What to send and how.
        connection: The server (default: :func:`kdh_ai.labelstudio.connection.resolve_connection`).
        task_type: The task type (default: the job's, from ``job.json``).
        retry: Retry policy for the server calls.
        log_progress: Show progress bars.

    Raises:
        ValueError: Bad options, or a job/project mismatch (the message says what to do).
        JobLockedError: Another kdh run writes to the job.
        LabelStudioError: The server failed; what was confirmed is recorded, and pushing again resumes.
    """
    t0 = time.perf_counter()
    opts = options or PushOptions()
    job = Job(Path(job_dir))
    if not job.manifest_path.exists():
        raise InvalidInputError(f"{job.root} is not a job directory (no job.json); run `kdh prelabel` first")
    if connection is None:
        from kdh_ai.labelstudio.connection import resolve_connection

        connection = resolve_connection(job_dir=job_dir)
    client = LabelStudioClient(connection, retry=retry)
    with job:
        run = _open_project(job, client, connection, opts, task_type)
        _read_job(run)
        ordinary, skipped = _choose_items(run)
        plan = _mix_in_gold(run, ordinary)
        _send(run, plan, log_progress)
        current = job.pushed_tasks(run.pid)
        todo = [(t, run.gold_overlap if t.role == TaskRole.GOLD else int(t.overlap or 1))
                for t in current.values() if not t.missing]
        run.result.overlap_set = _apply_overlap(job, client, [(t, n) for t, n in todo if n > t.overlap_applied],
                                                opts.workers, log_progress)
        run.result.skipped = dict(skipped)
        run.result.wall_s = time.perf_counter() - t0
        run.state["last_push_at"] = utc_now()
        _write_ls_state(job, run.state)
        job.update_manifest(labelstudio={"url": connection.url, "project_id": run.pid,
                                         "project_title": run.project["title"],
                                         "last_push_at": run.state["last_push_at"],
                                         "tasks": sum(1 for t in current.values() if not t.missing)})
    logger.info("Pushed %d new tasks to project %d (%s) in %.1f s", run.result.total_created, run.pid,
                dict(run.result.created), run.result.wall_s)
    return run.result


@dataclass
class _Run:
    """One push in progress: the project, the job's current records, and what the push did so far."""

    job: Job
    client: LabelStudioClient
    opts: PushOptions
    task: TaskType
    project: dict[str, Any]
    state: dict[str, Any]
    result: PushResult
    folder: Path | None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    preds: dict[str, Prediction] = field(default_factory=dict)
    units: dict[str, Prediction] = field(default_factory=dict)  # by unit key (segments of long recordings)
    gold: dict[str, GoldAnswer] = field(default_factory=dict)
    roles: dict[str, RoleRecord] | None = None  # None: the job was never routed
    recorded: dict[str, PushedTask] = field(default_factory=dict)  # tasks.jsonl of the project, missing included
    gold_overlap: int = 1

    @property
    def pid(self) -> int:
        return int(self.project["id"])

    def role_of(self, key: str) -> tuple[str, int]:
        """The task role of a unit (item or segment, by unit key) and the annotators it needs (gold; else
        stable by the role hash)."""
        if key in self.gold:
            return TaskRole.GOLD.value, self.gold_overlap
        routed = (self.roles or {}).get(key)
        o = self.opts
        role = TaskRole.HUMAN.value if routed is not None and routed.role == Role.HUMAN else assign_role(
            key, seed=o.seed, overlap_fraction=o.overlap_fraction, control_share=o.control_share)
        return role, (o.overlap_k if role == TaskRole.OVERLAP else 1)


def _open_project(job: Job, client: LabelStudioClient, connection: Connection, opts: PushOptions,
                  task_type: TaskType | None) -> _Run:
    """The job's project (found or created) and its audio storage, recorded in labelstudio.json."""
    task = task_type or job.task_type(with_labels=not opts.labels)
    if opts.audio == "local" and not connection.local:
        raise InvalidInputError(f"--audio local needs a server that kdh runs on this machine; {connection.url} is "
                         "remote: use --audio upload (or auto)")
    state = read_ls_state(job)
    project = _ensure_project(job, client, task, opts, state)
    pid = int(project["id"])
    result = PushResult(project_id=pid, project_url=project_url(connection.url, pid))
    if task.item_kind == "audio":
        result.audio_mode = "local" if (opts.audio == "local" or (opts.audio == "auto" and connection.local)) \
            else "upload"
    folder = _ensure_local_storage(client, connection, pid, state) if result.audio_mode == "local" else None
    state["audio_mode"] = result.audio_mode
    _write_ls_state(job, state)
    return _Run(job, client, opts, task, project, state, result, folder)


def _read_job(run: _Run) -> None:
    """Read the job's items, predictions, gold and roles; reconcile tasks.jsonl with the project."""
    job = run.job
    run.items, run.preds, run.gold = job.current_items(), job.current_predictions(), job.gold()
    run.units = {u.key: u for p in run.preds.values() for u in p.units()}
    run.roles = job.roles() if job.log("routing").path.exists() else None
    has_gold = bool(run.gold) or any(t.role == TaskRole.GOLD for t in job.pushed_tasks(run.pid).values())
    run.gold_overlap = run.opts.gold_overlap or (max(1, _annotator_count(run.client)) if has_gold else 1)
    run.result.gold_overlap = run.gold_overlap
    live = {k: t for k, t in job.pushed_tasks(run.pid).items() if not t.missing}
    keys = set(run.items) | set(run.units) | set(run.gold)
    _reconcile(job, run.client, run.pid, live, {k: run.role_of(k) for k in keys}, run.result)
    run.recorded = job.pushed_tasks(run.pid)


def _choose_items(run: _Run) -> tuple[list[_Planned], Counter[str]]:
    """The ordinary units to send now (routing's roles, or the confidence cut), and why others are not sent.

    A short clip or a text is one unit; a long recording with work segments is one unit per segment (its clip,
    :mod:`kdh_ai.labelstudio.segments`), and only its segments meant for people go out."""
    opts, result = run.opts, run.result
    skipped: Counter[str] = Counter()
    ordinary: list[_Planned] = []
    for item_id, item in run.items.items():
        pred = run.preds.get(item_id)
        siblings = pred.units() if pred is not None and pred.work_segments() else None
        for unit in siblings or [pred]:
            key = unit.key if siblings else item_id
            planned = _choose_unit(run, key, item_id, item, unit, skipped, siblings)
            if planned is not None:
                ordinary.append(planned)
    if opts.limit is not None and len(ordinary) > opts.limit:
        skipped["over --limit (next push)"] += len(ordinary) - opts.limit
        ordinary = ordinary[:opts.limit]
    return ordinary, skipped


def _choose_unit(run: _Run, key: str, item_id: str, item: dict[str, Any], pred: Prediction | None,
                 skipped: Counter[str], siblings: list[Prediction] | None) -> _Planned | None:
    """One unit's task, or ``None`` (already sent, gold, or not for people: counted in ``skipped``)."""
    task, opts, result = run.task, run.opts, run.result
    if key in run.recorded:
        result.already += 1
        return None
    if key in run.gold:
        return None
    if item.get("error") and (run.roles is None or task.item_kind != "audio"):
        skipped["item could not be read at ingest"] += 1
        return None
    if run.roles is not None:
        r = run.roles.get(key)
        if r is None:
            skipped["not routed yet"] += 1
            return None
        if not r.role.to_people:
            skipped[str(r.role)] += 1
            return None
        if r.role == Role.GOLD:
            result.issues.append(f"item {key}: routed as gold but gold.jsonl has no answer for it; add it with --gold")
            return None
        if pred is not None and pred.status not in _PUSHABLE:
            pred = None  # routed to people although the model failed on it: no pre-annotation
    else:
        why = _not_for_people(pred, opts.max_confidence)
        if why:
            skipped[why] += 1
            return None
    value = item.get("path") if task.item_kind == "audio" else item.get("text")
    role, overlap = run.role_of(key)
    sha, note = None, None
    if task.item_kind == "audio":
        decoded = pred is not None and pred.status in _PUSHABLE and bool(pred.sha256) and not item.get("error")
        if decoded:
            sha = pred.sha256
        else:  # never decoded as audio: people get a description of the error, never the file
            value, note = None, _error_note(item_id, item.get("error") or (
                run.preds[item_id].error if item_id in run.preds else None))
    planned = _Planned(item_id, role, value, pred if role != TaskRole.CONTROL else None, overlap, sha256=sha,
                       note=note)
    if siblings is not None and pred is not None:
        _as_segment(planned, pred, siblings)
    return planned


def _as_segment(planned: _Planned, unit: Prediction, siblings: list[Prediction]) -> None:
    """Make a unit's task a segment's: its clip with context (:mod:`kdh_ai.labelstudio.segments`)."""
    planned.segment = unit.segment
    planned.clip = segs.segment_clip(unit)
    planned.data = segs.segment_data(unit, siblings)


def _not_for_people(pred: Prediction | None, max_confidence: float | None) -> str | None:
    """Without routing: why an item's prediction keeps it from people, or ``None``."""
    if pred is None:
        return "no prediction yet (run kdh prelabel)"
    if pred.status not in _PUSHABLE:
        return f"prediction status {pred.status}"
    if max_confidence is not None and (pred.confidence is None or pred.confidence >= max_confidence):
        return f"confidence >= {max_confidence}"
    return None


def _mix_in_gold(run: _Run, ordinary: list[_Planned]) -> list[_Planned]:
    """The import order: the ordinary items with gold items inserted at random positions."""
    task, opts, result, gold, gold_overlap = run.task, run.opts, run.result, run.gold, run.gold_overlap
    pool = sorted((g for g in gold if g not in run.recorded), key=lambda g: _unit(opts.seed, "gold", g))
    # Routing's evidence plan says how many gold answers its target needs: send them now, not at the rate.
    # Without a plan, the gold routing step 1 marked (the lead gave it to measure the people) is all needed.
    routed = routing_result(run.job)
    needed = gold_needed_items(routed.evidence, gold_overlap) if routed is not None and routed.evidence \
        else sum(r.role == Role.GOLD for r in (run.roles or {}).values())
    at_rate = gold_count(len(ordinary), rate=opts.gold_rate, gold_overlap=gold_overlap)
    wanted = max(at_rate, needed - sum(t.role == TaskRole.GOLD for t in run.recorded.values()))
    n_gold = min(len(pool), wanted)
    if gold and opts.gold_rate > 0 and ordinary and n_gold < at_rate:
        logger.warning("Only %d gold items are left for %d new tasks (rate %.2f wants more); add gold with "
                       "--gold", n_gold, len(ordinary), opts.gold_rate)
    gold_planned = []
    for g in pool[:n_gold]:
        grec = gold[g]
        item = run.items.get(grec.item_id, {})
        value = (item.get("path") or grec.path) if task.item_kind == "audio" else (item.get("text") or grec.text)
        pred = run.units.get(g) if grec.segment is not None else run.preds.get(g)
        prelabel = pred is not None and pred.status in _PUSHABLE and assign_role(
            g, seed=opts.seed, overlap_fraction=0.0, control_share=opts.control_share) != TaskRole.CONTROL
        sha = pred.sha256 if pred is not None and pred.status in _PUSHABLE else None
        if task.item_kind == "audio" and g in run.items and sha is None:
            result.issues.append(f"gold item {g}: the model could not decode its audio ("
                                 f"{(pred.error if pred is not None else None) or 'no pre-label yet'}); "
                                 "it is not sent: fix the file and run kdh prelabel again")
            continue
        planned = _Planned(grec.item_id, TaskRole.GOLD, value, pred if prelabel else None, gold_overlap, sha256=sha)
        if grec.segment is not None:
            if pred is None:
                result.issues.append(f"gold {g}: the recording has no segment {grec.segment}; it is not sent")
                continue
            _as_segment(planned, pred, run.preds[grec.item_id].units())
        gold_planned.append(planned)
    rng = random.Random(f"{opts.seed}:{run.pid}:{len(run.recorded)}")
    plan = list(ordinary)
    for pos, gp in zip(sorted(rng.sample(range(len(ordinary) + len(gold_planned)), len(gold_planned))),
                       gold_planned):
        plan.insert(pos, gp)
    return plan


def _send(run: _Run, plan: list[_Planned], log_progress: bool) -> None:
    """Import the plan chunk by chunk; record each chunk in tasks.jsonl as soon as Label Studio confirms it."""
    job, client, pid, task, opts, result = run.job, run.client, run.pid, run.task, run.opts, run.result
    key = run.state["data_key"]
    t_import = time.perf_counter()
    bar = tqdm(total=len(plan), unit="task", desc="push", disable=not log_progress, dynamic_ncols=True)
    try:
        for start in range(0, len(plan), opts.chunk_size):
            chunk = plan[start:start + opts.chunk_size]
            urls = _resolve_audio(job, client, pid, chunk, run.folder, result, task, opts)
            sent = [p for p in chunk if p.key in urls]
            if not sent:
                continue
            payload = [_task_payload(p, key, urls[p.key], task) for p in sent]
            body = client.request(
                "POST", f"api/projects/{pid}/import", what=f"import {len(payload)} tasks into project {pid}",
                params={"return_task_ids": "true"}, idempotent=False,
                content=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json"}).json()
            ids = body.get("task_ids") or []
            if len(ids) != len(sent):
                raise LabelStudioError(f"Label Studio created {len(ids)} tasks for {len(sent)} sent; run "
                                       "`kdh push` again: it reconciles by item_id")
            now = utc_now()
            job.append_pushed_tasks(
                PushedTask(p.item_id, pid, tid, str(p.role), prelabeled=p.prediction is not None, overlap=p.overlap,
                           overlap_applied=1, model_version=_model_version(p.prediction) if p.prediction else None,
                           data_url=urls[p.key], pushed_at=now, adopted=False, missing=False, segment=p.segment)
                for p, tid in zip(sent, ids))
            for p in sent:
                result.created[str(p.role)] = result.created.get(str(p.role), 0) + 1
            bar.update(len(chunk))
    finally:
        bar.close()
        result.import_s = time.perf_counter() - t_import
    if result.total_created:
        mv = next((_model_version(p.prediction) for p in plan if p.prediction is not None), None)
        if mv and run.project.get("model_version") != mv:
            client.request("PATCH", f"api/projects/{pid}/", what="set the project's model version",
                           json_body={"model_version": mv})


def _task_payload(p: _Planned, key: str, url: str, task: TaskType) -> dict[str, Any]:
    """One task of an import: its data (and the error note) and the model's pre-annotation.

    A transcription task also carries the template's header and context lines (:mod:`kdh_ai.labelstudio.segments`:
    empty context for a short clip); a segment's pre-annotation holds the region that marks it in its clip
    (a control task, sent without the model's text, still gets the region)."""
    entry: dict[str, Any] = {"data": {key: url, "item_id": p.item_id}}
    if task.name == "transcription":
        entry["data"].update(p.data or segs.short_clip_data(p.item_id))
    if p.note is not None:
        entry["data"]["kdh_error"] = p.note
        if task.name == "transcription":
            entry["data"]["kdh_header"] = p.note
    region = [segs.region_result(p.clip.region, to_name=task.to_name)] if p.clip is not None else []
    if p.prediction is not None:
        entry["predictions"] = [{"model_version": _model_version(p.prediction), "score": p.prediction.confidence,
                                 "result": task.answer_to_result(p.prediction.text) + region}]
    elif region:
        entry["predictions"] = [{"model_version": "kdh-segment-region", "result": region}]
    return entry


def _resolve_audio(job: Job, client: LabelStudioClient, pid: int, chunk: Sequence[_Planned], folder: Path | None,
                   result: PushResult, task: TaskType, opts: PushOptions) -> dict[str, str]:
    """``{item_id: value for task.data}`` for a chunk; items whose audio is missing become issues."""
    if task.item_kind != "audio":
        out = {}
        for p in chunk:
            if p.value is None:
                result.issues.append(f"item {p.item_id}: no text to annotate; fix the manifest")
            else:
                out[p.item_id] = p.value
        return out
    ok: list[tuple[str, str]] = []
    notes: dict[str, str] = {}
    clips: dict[str, list[_Planned]] = {}
    checked: dict[tuple[str | None, str | None], tuple[str, str | None]] = {}  # a recording's segments: hash it once
    for p in chunk:
        if p.note is not None:
            notes[p.key] = ""  # no file: the task describes the error (data.kdh_error)
            continue
        if (p.value, p.sha256) not in checked:
            checked[(p.value, p.sha256)] = _verified_audio(p.value, p.sha256)
        real, problem = checked[(p.value, p.sha256)]
        if problem:
            result.issues.append(f"item {p.key}: {problem}")
            continue
        if p.clip is not None:
            clips.setdefault(real, []).append(p)
            continue
        ok.append((p.key, real))
    ok += _cut_clips(job, clips, result)
    if folder is not None:
        return {**notes, **{i: _link_audio(folder, i, path) for i, path in ok}}
    return {**notes, **_upload_audio(job, client, pid, ok, opts.upload_batch)}


def _cut_clips(job: Job, clips: dict[str, list[_Planned]], result: PushResult) -> list[tuple[str, str]]:
    """Cut the review clips of segments (``{verified recording: segments}``) into the job's ``clips/`` folder;
    ``[(unit key, clip path)]``. A recording that cannot be decoded any more becomes an issue per segment."""
    from kdh_ai.audio import AudioError

    out: list[tuple[str, str]] = []
    for source, planned in clips.items():
        names = {segs.clip_name(p.item_id, int(p.segment or 0), p.clip.start, p.clip.end): p
                 for p in planned if p.clip is not None}
        try:
            made = segs.cut_clip(source, [(n, p.clip.start, p.clip.end) for n, p in names.items()
                                          if p.clip is not None], job.root / "clips")
        except AudioError as exc:
            result.issues.extend(f"item {p.key}: its clip could not be cut ({exc})" for p in planned)
            continue
        out.extend((p.key, made[n][0]) for n, p in names.items())
    return out


def _verified_audio(path: str | None, sha256: str | None) -> tuple[str, str | None]:
    """The file to link or upload, and ``None`` or why it must not go out.

    A file goes out only when it is a regular file whose bytes still have the hash recorded when the model
    decoded it (``sha256``). A gold file kdh never pre-labeled (``sha256`` is ``None``) must decode as audio.
    """
    from kdh_ai.audio import AudioError, probe_duration
    from kdh_ai.items import sha256_file

    if not path:
        return "", "no audio file recorded; fix the manifest, run kdh prelabel and push again"
    real = os.path.realpath(path)
    try:
        digest = sha256_file(real)
    except FileNotFoundError:
        return real, f"audio file {Path(path).name} not found; restore it and push again"
    except OSError as exc:
        return real, (f"audio file {Path(path).name} cannot be read ({exc.strerror or exc}); it is not sent: "
                      "give a regular audio file and run kdh prelabel again")
    if sha256 is None:
        try:
            probe_duration(real)
        except AudioError:
            return real, (f"file {Path(path).name} is not audio; it is not sent: give the gold item an audio "
                          "file")
    elif digest != sha256:
        return real, (f"audio file {Path(path).name} changed since it was pre-labeled (its SHA-256 differs from "
                      "the one recorded); it is not sent: restore the file, or run kdh prelabel again to "
                      "pre-label the new content")
    return real, None


def _apply_overlap(job: Job, client: LabelStudioClient, todo: Iterable[tuple[PushedTask, int]], workers: int,
                   log_progress: bool) -> int:
    """PATCH each task's overlap (and reopen it); record each success in tasks.jsonl."""
    todo = list(todo)
    if not todo:
        return 0

    def one(rec: PushedTask, target: int) -> PushedTask:
        client.request("PATCH", f"api/tasks/{rec.ls_task_id}/", what=f"set overlap of task {rec.ls_task_id}",
                       json_body={"overlap": target, "is_labeled": False})
        return dataclasses.replace(rec, overlap=target, overlap_applied=target, overlap_set_at=utc_now())

    done: list[PushedTask] = []
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(todo), unit="task", desc="overlap", disable=not log_progress) as bar:
        futures = [pool.submit(one, rec, target) for rec, target in todo]
        for fut in as_completed(futures):
            try:
                done.append(fut.result())
            except LabelStudioError as exc:
                error = error or exc
            bar.update(1)
            if len(done) >= 200:
                job.append_pushed_tasks(done)
                done = []
    job.append_pushed_tasks(done)
    if error is not None:
        raise error
    return len(todo)
