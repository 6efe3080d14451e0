"""Label Studio as a real component: a local (or central) server, push, pull, status, overlap and gold.

Label Studio Community has no roles, no task assignment, no gold accuracy and no agreement. kdh adds them on
top of its API, with the design below (the long version, with what it guarantees and what it cannot, is in
``docs/labelstudio.md``).

Modules: :mod:`~kdh_ai.labelstudio.server` (start/stop/status of a local server, or a central one from
``KDH_LS_URL``/``KDH_LS_TOKEN``), :mod:`~kdh_ai.labelstudio.accounts` (annotator accounts: sign-up, log-in,
simulated accounts), :mod:`~kdh_ai.labelstudio.client` (retries, backoff,
token redaction), :mod:`~kdh_ai.labelstudio.project` (projects from a task type's template),
:mod:`~kdh_ai.labelstudio.push`, :mod:`~kdh_ai.labelstudio.pull`, :mod:`~kdh_ai.labelstudio.status`,
:mod:`~kdh_ai.labelstudio.gold` and :mod:`~kdh_ai.labelstudio.segments` (review tasks for the work segments of
long recordings: a clip with context, the segment a region, the model's text around it).

Design in short
---------------
* **One project per job**, ``maximum_annotations=1`` at the project level (never changed: changing it
  rewrites every task's overlap), sequential sampling, skipped tasks re-queued for others. Annotators work
  only through **Label All Tasks**.
* **Overlap**: a share of items (``overlap_fraction``) is set to ``overlap_k >= 2`` annotators per task with a
  per-task ``PATCH`` right after the bulk import (Label Studio ignores ``overlap`` at bulk import; done with a
  few parallel requests, its cost measured in ``docs/labelstudio.md``). Label Studio guarantees k *distinct* annotators per task through
  its queue, not which ones, and not balance.
* **Control**: a share of the other items (``control_share``) goes out without a pre-annotation, so the
  quality stage can measure the human time pre-labels save from ``lead_time``.
* **Gold**: known answers live only in the job directory (``gold.jsonl``), never in Label Studio, where any
  annotator's token can read and edit everything. Gold tasks are ordinary-looking tasks (pre-annotated like
  the others when a prediction exists), inserted at random positions of the import order; each goes to
  ``gold_overlap`` annotators (default: all of them). Accuracy is computed later by comparing pulled
  annotations with ``gold.jsonl``.
* **Blindness** between annotators holds only on the honour system inside one instance: the label stream
  (``/next/``) shows only one's own work, but the task table, the API and the export show everyone's
  annotations, and ``/next/`` leaks a task's overlap count (enough to guess which tasks are gold or overlap).
  Hard blindness needs one Label Studio instance per annotator (not built; see ``docs/labelstudio.md``).
* **Audio**: local-files storage when kdh runs the server on this machine. The server's document root is a
  *narrow* folder, ``DATA_DIR/files``, and each project gets ``DATA_DIR/files/project-<id>/`` holding one
  symlink per pushed item. A wide root such as ``/`` or ``$HOME`` is a leak: Label Studio serves any file under
  the root to any logged-in user who creates a local-files storage covering it, and every annotator can create
  storages (Community has no roles), so ``/data/local-files/?d=etc/...`` or another client's audio would be a
  URL away. With the narrow root only files kdh linked for a project are reachable. By **upload** when the
  server is remote (files are copied into the server's media folder; at most 100 files per request).
* **Secrets**: the API token lives in the server's data directory (``kdh-secrets.json``, mode 0600) or in
  ``KDH_LS_TOKEN``; it never appears in the job directory, logs, reports or exceptions (messages are redacted).

Files written in the job directory (all append-only JSONL via :class:`kdh_ai.job.JsonlLog`, latest record
per key wins, except ``labelstudio.json``)
------------------------------------------------------------------------------------------------------------
``labelstudio.json`` (rewritten atomically; no token)
    ``{url, project_id, project_title, task, data_key, job_key, audio_mode, files_dir, created_at, updated_at,
    last_push_at, last_pull_at}``. ``job.json`` also gets ``labelstudio: {url, project_id, project_title,
    last_push_at, last_pull_at, tasks}``.

``tasks.jsonl`` (key: ``item_id`` within ``ls_project_id``)
    ``{item_id, ls_project_id, ls_task_id, role, prelabeled, overlap, overlap_applied, model_version,
    data_url, pushed_at, adopted, missing}``. ``role`` is ``human | control | overlap | gold``;
    ``overlap`` is the number of annotators wanted, ``overlap_applied`` what Label Studio was told (a later
    record with ``overlap_set_at`` follows the PATCH); ``adopted`` marks a task found in Label Studio after an
    interrupted push; ``missing`` a task deleted in Label Studio (it is not sent again).

``annotations.jsonl`` (key: ``annotation_id``; the schema the quality and routing stages read)
    ``{item_id, task, annotation_id, ls_task_id, ls_project_id, annotator_id, annotator_email, answer, result,
    lead_time_s, created_at, updated_at, skipped, gold, prelabeled, role, deleted, fingerprint, pulled_at}``.
    ``answer`` is ``TaskType.result_to_answer(result)`` (``None`` for a skip); ``result`` is Label Studio's raw
    result list; ``lead_time_s`` is Label Studio's ``lead_time``; ``gold``/``prelabeled``/``role`` come from
    ``tasks.jsonl``. An edit in Label Studio gives a new record with the same ``annotation_id``; a deletion a
    record with ``deleted: true``.

``gold.jsonl`` (key: ``item_id``; never sent to Label Studio)
    ``{item_id, answer, source, path, text, added_at}``; ``path``/``text`` only for items that are not part of
    the job; ``answer: null`` withdraws an item.

``uploads.jsonl`` (remote servers only; key: ``item_id`` within ``ls_project_id``)
    ``{item_id, ls_project_id, file_upload_id, url, uploaded_at}``, so a resumed push does not upload twice.

``routing.jsonl`` (read through :meth:`kdh_ai.job.Job.roles`, written by the routing stage)
    ``{item_id, role, reason, step, at}``: when present, push sends every item whose latest
    :class:`~kdh_ai.records.Role` goes to people (``calibration``, ``human``, ``audit``: ordinary human items,
    with a pre-annotation when the model gave one; ``gold`` items only with an answer in ``gold.jsonl``), and
    never ``auto_accept`` or ``pending``.

Each of these files has one typed record in :mod:`kdh_ai.records` (``labelstudio.json`` is
:mod:`kdh_ai.labelstudio.state`).
"""

from __future__ import annotations

from kdh_ai.labelstudio.accounts import Annotator, add_annotator, login_token
from kdh_ai.labelstudio.client import (
    Connection,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioError,
    LabelStudioUnavailable,
    RetryPolicy,
    redact,
)
from kdh_ai.labelstudio.connection import resolve_connection
from kdh_ai.labelstudio.gold import GoldItem, add_gold, current_gold, gold_from_job, read_gold_manifest
from kdh_ai.labelstudio.pull import PullResult, annotations_frame, pull
from kdh_ai.labelstudio.push import PushOptions, PushResult, TaskRole, push
from kdh_ai.labelstudio.server import (
    PortBusyError,
    ServerError,
    ServerOptions,
    ensure_server,
    local_connection,
    server_status,
    start_server,
    stop_server,
)
from kdh_ai.labelstudio.status import AnnotatorStats, JobStatus, job_status

__all__ = [
    "Annotator",
    "AnnotatorStats",
    "Connection",
    "GoldItem",
    "JobStatus",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioUnavailable",
    "PortBusyError",
    "PullResult",
    "PushOptions",
    "PushResult",
    "RetryPolicy",
    "ServerError",
    "ServerOptions",
    "TaskRole",
    "add_annotator",
    "add_gold",
    "annotations_frame",
    "current_gold",
    "ensure_server",
    "gold_from_job",
    "job_status",
    "local_connection",
    "login_token",
    "pull",
    "push",
    "read_gold_manifest",
    "redact",
    "resolve_connection",
    "server_status",
    "start_server",
    "stop_server",
]
