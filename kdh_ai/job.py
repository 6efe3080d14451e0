"""The job directory: the contract between every stage of the flow.

A job directory holds one client batch. Every stage reads and writes it, so each stage can be re-run,
resumed or run by someone else on another day::

    JOB_DIR/
      job.json            job manifest: task, current config and its hash, counts, timings, package versions
      items.jsonl         the ingested items (append-only; latest line per item_id wins)
      predictions.jsonl   model answers (append-only; see kdh_ai.records for the versioning rule)
      predictions.parquet snapshot of the current predictions (rewritten at the end of each run)
      routing.jsonl       each item's routing role (kdh route, kdh select)
      gold.jsonl          known answers (kdh push --gold, kdh route --gold)
      tasks.jsonl         items sent to Label Studio as tasks (kdh push)
      annotations.jsonl   people's annotations (kdh pull)
      labelstudio.json    the job's Label Studio project (kdh push)
      .lock               held while a stage writes; a second writer refuses to start

Appends are crash-safe: each batch of records is written with a single ``write`` on a file opened with
``O_APPEND`` and then ``fsync``-ed, and a torn last line (a process killed in the middle of a write) is cut
off the next time the file is opened for writing, and skipped by readers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdh_ai.errors import InvalidInputError, JobLockedError
from kdh_ai.records import Annotation, GoldAnswer, Prediction, PushedTask, RoleRecord, utc_now

if TYPE_CHECKING:
    from kdh_ai.tasks import TaskType

__all__ = ["Job", "JobLockedError", "JsonlLog", "package_versions", "write_json_atomic"]

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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: leave neither a torn file nor the temporary one
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None


class JsonlLog:
    """An append-only JSON-lines file that survives being killed at any moment.

    Args:
        path: The ``.jsonl`` file (created on first append).

    Example:
        >>> import tempfile, pathlib
        >>> log = JsonlLog(pathlib.Path(tempfile.mkdtemp()) / "x.jsonl")
        >>> log.append([{"item_id": "a", "v": 1}, {"item_id": "a", "v": 2}])
        >>> [r["v"] for r in log]
        [1, 2]
        >>> log.latest_by("item_id")["a"]["v"]
        2
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._repaired = False

    def _repair_tail(self) -> None:
        """Cut a torn last line (no trailing newline) left by a killed writer."""
        if self._repaired or not self.path.exists():
            self._repaired = True
            return
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                self._repaired = True
                return
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                pos = size - 1
                chunk = 65536
                while pos > 0:
                    start = max(0, pos - chunk)
                    fh.seek(start)
                    data = fh.read(pos - start)
                    idx = data.rfind(b"\n")
                    if idx >= 0:
                        pos = start + idx + 1
                        break
                    pos = start
                logger.warning("%s: cutting a torn last line (%d bytes) left by an interrupted run",
                               self.path.name, size - pos)
                fh.truncate(pos)
                fh.flush()
                os.fsync(fh.fileno())
        self._repaired = True

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records durably: one write of whole lines, then fsync."""
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
                       for r in records).encode("utf-8")
        if not data:
            return
        self._repair_tail()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:  # e.g. a full disk: cut what this call wrote, so no torn record is left
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
                os.fsync(fd)
                if created:
                    self.path.unlink()
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        finally:
            os.close(fd)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield every complete record in file order (a torn or corrupt line is skipped with a warning)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    logger.warning("%s:%d: skipping a torn last line", self.path.name, lineno)
                    return
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s:%d: skipping a line that is not valid JSON", self.path.name, lineno)

    def latest_by(self, *keys: str, where: dict[str, Any] | None = None) -> dict[Any, dict[str, Any]]:
        """The last record for each value of ``keys`` (optionally only records matching ``where``)."""
        out: dict[Any, dict[str, Any]] = {}
        for rec in self:
            if where and any(rec.get(k) != v for k, v in where.items()):
                continue
            key = rec.get(keys[0]) if len(keys) == 1 else tuple(rec.get(k) for k in keys)
            out[key] = rec
        return out


@dataclass
class Job:
    """A job directory (see the module docstring for its layout).

    Args:
        root: The job directory; created if missing.
    """

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self._lock_fd: int | None = None

    # ---- paths -------------------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "job.json"

    @property
    def items(self) -> JsonlLog:
        return JsonlLog(self.root / "items.jsonl")

    @property
    def predictions(self) -> JsonlLog:
        return JsonlLog(self.root / "predictions.jsonl")

    def log(self, name: str) -> JsonlLog:
        """Another append-only log of this job (``annotations``, ``routing``, ``gold`` ...)."""
        return JsonlLog(self.root / f"{name}.jsonl")

    # ---- locking -----------------------------------------------------------------------------------------
    def lock(self) -> Job:
        """Take the job's write lock, or raise :class:`JobLockedError` naming the holder.

        The lock is an ``flock`` on ``.lock``: the kernel frees it when the holder exits, even after kill -9.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JobLockedError(
                f"job directory {self.root} is in use by another kdh run ({holder}); wait for it to finish, "
                "or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {utc_now()}".encode(), 0)
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        """Release the write lock (no-op when not held)."""
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Job:
        return self.lock()

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    # ---- manifest ----------------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        """The job manifest (``{}`` for a new job)."""
        if not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the manifest and write it atomically."""
        manifest = self.read_manifest()
        manifest.update(fields)
        manifest["updated_at"] = utc_now()
        manifest.setdefault("created_at", manifest["updated_at"])
        write_json_atomic(self.manifest_path, manifest)
        return manifest

    @property
    def task(self) -> str | None:
        """The job's task type, from the manifest."""
        return self.read_manifest().get("task")

    def task_type(self, *, with_labels: bool = False) -> TaskType:
        """The job's task type (:func:`kdh_ai.tasks.get_task` of the manifest's ``task``).

        Args:
            with_labels: Give a classification job's task type its label list (``config.labels``), as
                Label Studio's labeling config needs it.

        Raises:
            ValueError: No or an unknown task type, or a labels file that cannot be read (the message says
                to give the labels with --labels).
        """
        from kdh_ai.tasks import get_task

        manifest = self.read_manifest()
        name = manifest.get("task") or ""
        labels_path = (manifest.get("config") or {}).get("labels")
        if with_labels and name == "classification" and labels_path:
            from kdh_ai.labels import load_labels
            from kdh_ai.tasks.classification import ClassificationTask

            try:
                return ClassificationTask(load_labels(labels_path))
            except ValueError as exc:
                raise InvalidInputError(f"{exc} (the job's labels file); give the labels with --labels a,b,c") from None
        return get_task(name)

    # ---- reading the current state -----------------------------------------------------------------------
    def current_items(self) -> dict[str, dict[str, Any]]:
        """The job's items by ``item_id`` (latest ingest record wins)."""
        return self.items.latest_by("item_id")

    def current_predictions(self, config_hash: str | None = None) -> dict[str, Prediction]:
        """Current predictions by ``item_id``: the latest record with the job's current config hash.

        Args:
            config_hash: Read another configuration's predictions instead of the current one.
        """
        wanted = config_hash or self.read_manifest().get("config_hash")
        latest = self.predictions.latest_by("item_id", where={"config_hash": wanted} if wanted else None)
        return {k: Prediction.from_dict(v) for k, v in latest.items()}

    def units(self, config_hash: str | None = None) -> dict[str, Prediction]:
        """The units of work by unit key (:func:`kdh_ai.records.unit_key`): each current prediction of a whole
        item, and one per work segment of a long recording (:meth:`kdh_ai.records.Prediction.units`). Routing,
        Label Studio, quality and the report work on units; pre-labeling and delivery on whole items
        (:meth:`current_predictions`).

        Args:
            config_hash: Read another configuration's predictions instead of the current one.
        """
        return {u.key: u for p in self.current_predictions(config_hash).values() for u in p.units()}

    # ---- the people's side: roles, gold, pushed tasks, annotations (see kdh_ai.records) ----------------------
    def roles(self, *, step: str | None = None) -> dict[str, RoleRecord]:
        """Each routed unit's role record by unit key (latest ``routing.jsonl`` line per item or segment).

        Args:
            step: Only lines of this routing step (``"calibration"``, ``"route"``, ``"audit"``, ``"select"``...):
                each item's role as that step left it.
        """
        where = {"step": step} if step is not None else None
        latest = self.log("routing").latest_by("item_id", "segment", where=where).values()
        return {r.key: r for r in map(RoleRecord.from_dict, latest)}

    def role_history(self) -> list[RoleRecord]:
        """Every ``routing.jsonl`` line, oldest first."""
        return [RoleRecord.from_dict(r) for r in self.log("routing")]

    def append_roles(self, records: Iterable[RoleRecord]) -> None:
        """Append role records to ``routing.jsonl``."""
        self.log("routing").append(r.to_dict() for r in records)

    def gold(self, *, include_withdrawn: bool = False) -> dict[str, GoldAnswer]:
        """The job's gold set by unit key (latest ``gold.jsonl`` line; withdrawn answers left out)."""
        latest = (GoldAnswer.from_dict(v) for v in self.log("gold").latest_by("item_id", "segment").values())
        return {g.key: g for g in latest if include_withdrawn or g.answer is not None}

    def append_gold(self, records: Iterable[GoldAnswer]) -> None:
        """Append gold answers to ``gold.jsonl``."""
        self.log("gold").append(g.to_dict() for g in records)

    def pushed_tasks(self, project: int | None = None) -> dict[str, PushedTask]:
        """Units sent to Label Studio by unit key (latest ``tasks.jsonl`` line; ``missing`` ones included).

        Args:
            project: Only tasks of this Label Studio project.
        """
        where = {"ls_project_id": project} if project is not None else None
        latest = self.log("tasks").latest_by("item_id", "segment", where=where).values()
        return {t.key: t for t in map(PushedTask.from_dict, latest)}

    def append_pushed_tasks(self, records: Iterable[PushedTask]) -> None:
        """Append pushed-task records to ``tasks.jsonl``."""
        self.log("tasks").append(t.to_dict() for t in records)

    def annotations(self, project: int | None = None, *, include_deleted: bool = False) -> list[Annotation]:
        """The people's annotations (latest ``annotations.jsonl`` line per annotation_id, in file order).

        Args:
            project: Only annotations of this Label Studio project.
            include_deleted: Keep annotations deleted in Label Studio (``deleted: true``).
        """
        where = {"ls_project_id": project} if project is not None else None
        latest = self.log("annotations").latest_by("annotation_id", where=where).values()
        return [a for a in map(Annotation.from_dict, latest) if include_deleted or not a.deleted]

    def append_annotations(self, records: Iterable[Annotation]) -> None:
        """Append annotations to ``annotations.jsonl`` (in one write: a pull is all or nothing)."""
        self.log("annotations").append([a.to_dict() for a in records])

    def write_parquet_snapshot(self, *, batch_size: int = 2000) -> Path:
        """Write ``predictions.parquet``: the current predictions, streamed in batches (flat memory).

        Common fields are columns; ``model`` and the task-specific ``payload`` are JSON strings, so the
        schema is the same for every task type and every batch.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        wanted = self.read_manifest().get("config_hash")
        winner: dict[str, int] = {}
        for i, rec in enumerate(self.predictions):
            if wanted is None or rec.get("config_hash") == wanted:
                winner[rec["item_id"]] = i
        keep = set(winner.values())
        out = self.root / "predictions.parquet"
        tmp = out.with_name(".predictions.parquet.tmp")
        writer: pq.ParquetWriter | None = None
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal writer
            if not batch:
                return
            rows = [_parquet_row(r) for r in batch]
            table = pa.Table.from_pylist(rows, schema=writer.schema if writer else None)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            batch.clear()

        for i, rec in enumerate(self.predictions):
            if i in keep:
                batch.append(rec)
                if len(batch) >= batch_size:
                    flush()
        flush()
        if writer is None:
            pq.write_table(pa.table({"item_id": pa.array([], pa.string())}), tmp)
        else:
            writer.close()
        os.replace(tmp, out)
        return out


def _parquet_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One prediction as a Parquet row (``model`` and ``payload`` as JSON strings)."""
    row = {k: v for k, v in rec.items() if k != "payload"}
    row["model"] = json.dumps(rec.get("model"), sort_keys=True)
    payload = rec.get("payload") or {}
    row["payload"] = json.dumps(payload, ensure_ascii=False)
    return row
