"""The pre-labeling stage: run a model over a batch into a job directory, resumably.

:func:`run_prelabel` is the same for every task type:

1. take the job's write lock (a second run on the same job directory refuses to start);
2. read the batch (:func:`kdh_ai.items.read_items`) and record its items in ``items.jsonl``;
3. skip every item that already has a prediction for the current configuration and the same content hash,
   so a killed job continues where it stopped, a finished job re-run with the same configuration does
   nothing, and a changed model or decoding option redoes what it affects;
4. stream the rest through the task's :class:`~kdh_ai.tasks.base.Prelabeler`, appending each unit of work
   to ``predictions.jsonl`` durably before starting the next;
5. write the job manifest (``job.json``) and the Parquet snapshot, and return a :class:`RunSummary`.
"""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kdh_ai.errors import InvalidInputError
from kdh_ai.items import IngestIssue, Item, read_items, sha256_file, sha256_text
from kdh_ai.job import Job
from kdh_ai.tasks.base import Prelabeler

__all__ = ["RunSummary", "package_versions", "run_prelabel"]

logger = logging.getLogger(__name__)

_PACKAGES = ("kdh_ai", "faster-whisper", "ctranslate2", "av", "numpy", "pydantic", "sentence-transformers",
             "torch", "scikit-learn")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the packages that shape a job's results (recorded in ``job.json``)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES + extra:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@dataclass
class RunSummary:
    """What a pre-labeling run did, and the state of the whole job after it.

    Attributes:
        job_dir: The job directory.
        task: Task type.
        config_hash: The configuration the run used.
        processed: Items the model processed in this run.
        skipped: Items already done with this configuration (nothing to do).
        counts: Current status counts over all items of the job (``ok``, ``no_speech``, ``error``).
        ingest_issues: Rows that could not become items (duplicate ids and the like).
        skipped_files: Files of an input folder that are not audio (listed; not a failure).
        errors: ``(item_id, message)`` of every item whose current status is ``error``.
        audio_s: Seconds of audio processed in this run (audio tasks).
        wall_s: Wall time of the model work in this run.
        nodes: Per-node throughput when the run used a Ray cluster (see :mod:`kdh_ai.ray_runner`).
    """

    job_dir: Path
    task: str
    config_hash: str
    processed: int = 0
    skipped: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    ingest_issues: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    wall_s: float = 0.0
    nodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def real_time_factor(self) -> float | None:
        """Seconds of audio per wall second in this run (``None`` without audio)."""
        return self.audio_s / self.wall_s if self.audio_s and self.wall_s > 0 else None

    @property
    def failed(self) -> bool:
        """True when some item is in error or some input row was not processed (exit code 1).

        A file skipped because it is not audio (a client's README next to the clips) is not a failure."""
        return bool(self.errors or self.ingest_issues)


def _content_hash(item: Item) -> str | None:
    if item.error:
        return None
    try:
        if item.path is not None:
            return sha256_file(item.path)
        if item.text is not None:
            return sha256_text(item.text)
    except OSError:
        return None
    return None


def run_prelabel(
    job_dir: str | Path,
    source: str | Path,
    *,
    make_prelabeler: Callable[[], Prelabeler],
    task: str,
    item_kind: str,
    options: dict[str, Any],
    log_progress: bool = False,
    max_items: int | None = None,
    allow_roots: Sequence[str | Path] = (),
    runner: Any | None = None,
) -> RunSummary:
    """Pre-label a batch into a job directory (see the module docstring).

    Args:
        job_dir: The job directory (created if missing).
        source: A directory of audio files or a manifest.
        make_prelabeler: Builds the task's prelabeler (loads the model); called once per run.
        task: The task type's name.
        item_kind: ``"audio"`` or ``"text"``.
        options: The options as a plain dict, recorded in ``job.json``.
        log_progress: Show a progress bar.
        max_items: Process at most this many pending items (for trials; the rest waits for the next run).
        allow_roots: Folders besides the batch's own whose audio files may be read
            (:func:`kdh_ai.items.read_items`).
        runner: Where the model work runs instead of this process: a :class:`kdh_ai.ray_runner.RayRunner`
            (the model runs on a Ray cluster; this process still writes everything). ``None``: here.

    Raises:
        JobLockedError: Another run holds the job directory.
        InputError: The source cannot be read as a batch.
        ValueError: The job directory belongs to another task type.
    """
    job = Job(Path(job_dir))
    with job:
        manifest = job.read_manifest()
        if manifest.get("task") not in (None, task):
            raise InvalidInputError(f"{job.root} is a {manifest['task']} job; use a new job directory for {task}")
        items, found = read_items(source, kind=item_kind, allow_roots=allow_roots)
        issues = [i for i in found if not i.skipped]
        skipped_files = [str(i) for i in found if i.skipped]
        known = job.current_items()
        changed = [it.to_dict() for it in items if known.get(it.item_id) != it.to_dict()]
        job.items.append(changed)

        prelabeler = make_prelabeler()
        config_hash = prelabeler.config_hash
        done = {k: p.sha256 for k, p in job.current_predictions(config_hash).items()}
        todo = []
        for it in items:
            if it.item_id in done and done[it.item_id] == _content_hash(it):
                continue
            todo.append(it)
        skipped = len(items) - len(todo)
        if max_items is not None:
            todo = todo[:max_items]
        run_started = time.time()
        job.update_manifest(
            task=task, config=options, config_hash=config_hash, model=prelabeler.model_info,
            input=str(Path(source).expanduser().resolve()), packages=package_versions(),
            allow_roots=[str(Path(r).expanduser().resolve()) for r in allow_roots],
            ingest_issues=[str(i) for i in issues], skipped_files=skipped_files)
        summary = RunSummary(job.root, task, config_hash, skipped=skipped,
                             ingest_issues=[str(i) for i in issues], skipped_files=skipped_files)
        if skipped and not todo:
            logger.info("Nothing to do: all %d items already pre-labeled with this configuration", skipped)
        elif skipped:
            logger.info("Resuming: %d items already done, %d to go", skipped, len(todo))

        t0 = time.perf_counter()
        bar = tqdm(total=len(todo), unit="item", disable=not log_progress, dynamic_ncols=True,
                   desc=f"{task}")
        batches = runner.run(prelabeler, todo) if runner is not None else prelabeler.predict_batches(iter(todo))
        try:
            for batch in batches:
                if not batch:
                    continue
                job.predictions.append(p.to_dict() for p in batch)
                summary.processed += len(batch)
                summary.audio_s += sum(float(p.payload.get("duration_s") or 0.0) for p in batch
                                       if p.status != "error")
                bar.update(len(batch))
                note = f"{summary.audio_s / 3600:.3f} h audio" if summary.audio_s else ""
                if runner is not None:
                    note = ", ".join(filter(None, [note, runner.progress_note()]))
                if note:
                    bar.set_postfix_str(note, refresh=False)
        finally:
            bar.close()
            summary.wall_s = time.perf_counter() - t0
            if runner is not None:
                batches.close()  # stops the cluster's workers now (also after an interruption)
                summary.nodes = runner.node_summary()
            _finish(job, summary, items, issues, run_started)
    return summary


def _finish(job: Job, summary: RunSummary, items: list[Item], issues: list[IngestIssue],
            run_started: float) -> None:
    """Write counts, timings and the Parquet snapshot (also after an interruption)."""
    current = job.current_predictions(summary.config_hash)
    ids = {it.item_id for it in items}
    counts: Counter[str] = Counter()
    for item_id, pred in current.items():
        if item_id not in ids:
            continue
        counts[pred.status] += 1
        if pred.status == "error":
            summary.errors.append((item_id, pred.error or "unknown error"))
    counts["pending"] = len(ids) - sum(counts.values())
    summary.counts = dict(counts)
    manifest = job.read_manifest()
    runs = manifest.get("runs", [])
    runs.append({"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run_started)),
                 "config_hash": summary.config_hash, "processed": summary.processed, "skipped": summary.skipped,
                 "wall_s": round(summary.wall_s, 3), "audio_s": round(summary.audio_s, 3)})
    if summary.nodes:
        runs[-1]["ray_nodes"] = summary.nodes
    job.update_manifest(counts=summary.counts, items=len(ids), runs=runs,
                        ingest_issues=[str(i) for i in issues])
    job.write_parquet_snapshot()
