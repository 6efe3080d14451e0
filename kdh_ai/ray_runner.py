"""Scale-out on Ray: one pre-labeling job over the hub's workstations, with the guarantees of a local job.

:func:`kdh_ai.prelabel.run_prelabel` hands the items still to do to a :class:`RayRunner` instead of the local
model; everything else stays where it was. So:

* **The driver is the only writer of the job directory.** It holds the job's lock, reads the batch, works out
  what is left to do (resume), and appends each finished unit's predictions to ``predictions.jsonl`` as the
  unit comes back, exactly as it appends a local unit of work. Workers never see the job directory: the
  driver ships each unit's content (the audio bytes, or the texts) with the unit, so the workstations need
  neither the client's files nor a shared disk.
* **One loaded model per actor.** Each actor builds the same prelabeler as a local run (same options, same
  head, model from the pinned packages, offline) and reports its ``config_hash``; an actor whose hash differs
  from the driver's (another model version on that workstation) or that cannot load the model is refused with
  a per-worker message, and the job goes on with the others. The predictions then carry the job's
  ``config_hash``, so a job started on Ray can be finished locally, and the other way round.
* **Units of items.** The items to do are cut, in order, into units of ``unit_items`` items. A unit is the
  unit of retry: a worker process killed with ``kill -9``, or a node that leaves (a power cut), fails the
  units it held; the driver sends them again, to another worker. Nothing is written for a unit until its
  result is back, so nothing is lost and nothing is written twice. A unit that fails ``max_attempts`` times
  is split into single items, each tried again; an item that still fails becomes a ``status="error"``
  record without a content hash, so the next run (on Ray or locally) tries it again.
* **The driver killed** with ``kill -9``: Ray ends the actors it owned (they share the driver's fate), the
  job's lock is freed by the kernel, and the same command started again skips what was written.

Why Ray Core actors and not Ray Data ``map_batches`` with an actor pool: the driver must append each unit
durably the moment it is back (Ray Data streams blocks of its own choosing), must count failures per unit and
turn a unit that keeps failing into per-item errors (Ray Data fails the whole dataset, or with
``max_errored_blocks`` drops blocks silently, which the brief forbids), must refuse one worker with a clear
message when its model is missing or different, and must place and count workers per node (the summary's
throughput per node). A few hundred lines of actor bookkeeping do all of this with ``ray`` alone, without
Ray Data's dependencies; Ray still does all the scheduling, the transport and the failure detection.

Answers on Ray equal local answers item for item when the task's answer for an item does not depend on
which items share its unit of work: classification (a unit is, by default, exactly a local batch, and the
job's cached embeddings travel with it), and transcription with its default options (tested). With
``pack_short_clips: true`` a transcript may depend on the clips that share its Whisper window, and units on
Ray group items differently from one local stream (see ``docs/scale-out.md``).

Example:
    >>> RayOptions(address="auto").cpus_per_worker
    1.0
    >>> RayOptions(address="127.0.0.1:6379", unit_items=0)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RayOptions
    unit_items
      Input should be greater than or equal to 1 [type=greater_than_equal, input_value=0, input_type=int]
        For further information visit https://errors.pydantic.dev/.../v/greater_than_equal
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from kdh_ai.errors import InvalidInputError, KdhError
from kdh_ai.items import Item
from kdh_ai.records import Prediction
from kdh_ai.tasks.base import Prelabeler

__all__ = ["ClusterError", "NodeStats", "RayOptions", "RayRunner", "pipeline_ray_block", "ray_options"]

logger = logging.getLogger(__name__)


@pydantic_dataclass(config=ConfigDict(extra="forbid", frozen=True))
class RayOptions:
    """How a job runs on a Ray cluster (``--ray ADDRESS``, or the ``ray:`` block of a pipeline YAML).

    None of these change an answer, so none is part of the job's ``config_hash``.

    Attributes:
        address: The cluster: ``"auto"`` (the cluster this machine belongs to, or ``$RAY_ADDRESS``) or the
            head's ``HOST:PORT`` (``ray start --head`` prints it).
        unit_items: Items per unit of work (the unit of retry, and of writing to the job directory).
            ``None`` (default): the task's own ``batch_size``, so that units are the local run's batches.
        cpus_per_worker: CPUs each model worker (actor) reserves; a node runs ``floor(its CPUs / this)``
            workers. Each worker holds one copy of the model in memory.
        max_workers: At most this many workers over the whole cluster (``None``: as many as fit).
        in_flight: Units queued at each worker, so that it never waits for the driver.
        max_attempts: Tries of a unit (and then of each of its items) before the item is written as an error.
        unit_timeout_s: A worker busy with one unit for longer is stopped and the unit tried elsewhere.
        start_timeout_s: With no worker able to run the model for this long, the job stops with an error.
        rescan_s: How often the driver looks for nodes that joined (or came back) to start workers there.
    """

    address: str = "auto"
    unit_items: int | None = Field(None, ge=1, le=100_000)
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    max_workers: int | None = Field(None, ge=1)
    in_flight: int = Field(2, ge=1, le=64)
    max_attempts: int = Field(3, ge=1, le=20)
    unit_timeout_s: float = Field(3600.0, gt=0)
    start_timeout_s: float = Field(300.0, gt=0)
    rescan_s: float = Field(5.0, gt=0)


def ray_options(block: dict[str, Any] | None, *, address: str | None = None,
                where: str = "ray") -> RayOptions | None:
    """The Ray options of a run: a pipeline YAML's ``ray:`` block, with the ``--ray`` flag on top.

    Args:
        block: The ``ray:`` mapping of the pipeline file (``None``: none).
        address: The ``--ray`` flag: an address, ``"auto"``, or ``"off"`` to run locally despite the file.
        where: Where the block comes from, for error messages.

    Returns:
        The options, or ``None`` for a local run.

    Raises:
        ValueError: An unknown key or a bad value (the message names it and lists the valid keys).

    Example:
        >>> ray_options({"unit_items": 4}, address="127.0.0.1:6379")
        RayOptions(address='127.0.0.1:6379', unit_items=4, cpus_per_worker=1.0, max_workers=None, in_flight=2, max_attempts=3, unit_timeout_s=3600.0, start_timeout_s=300.0, rescan_s=5.0)
        >>> ray_options({"unit_items": 4}, address="off") is None
        True
        >>> ray_options(None) is None
        True
    """
    if address is not None and address.strip().lower() in ("off", "no", "none", "local"):
        return None
    if block is None and address is None:
        return None
    values = dict(block or {})
    if address is not None:
        values["address"] = address.strip()
    try:
        return TypeAdapter(RayOptions).validate_python(values)
    except ValidationError as exc:
        valid = ", ".join(RayOptions.__dataclass_fields__)
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                msgs.append(f"{where}: {loc}: unknown key; valid keys: {valid}")
            else:
                msgs.append(f"{where}: {loc}: {err['msg']} (got {err.get('input')!r})")
        raise InvalidInputError("\n".join(msgs)) from None


def pipeline_ray_block(path: str | Path | None) -> dict[str, Any] | None:
    """The ``ray:`` block of a pipeline YAML file (``None`` without a file or a block).

    The rest of the file is read and checked by :func:`kdh_ai.config.load_pipeline`.
    """
    if path is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None  # load_pipeline reports it
    block = data.get("ray") if isinstance(data, dict) else None
    if block is not None and not isinstance(block, dict):
        raise InvalidInputError(f"{path}: ray: must be a mapping of Ray options, e.g. {{address: auto}}")
    return block


class ClusterError(KdhError, RuntimeError):
    """The Ray cluster cannot run the job (unreachable, or no worker can run the model); the message says
    what to do. Everything written before it stays in the job directory."""


@dataclass
class NodeStats:
    """What one node of the cluster did in a run (the summary's throughput per node).

    Attributes:
        node_id: Ray's node id.
        host: The node's host name.
        ip: The node's address.
        workers: Workers that loaded the model there.
        units: Units it finished.
        items: Items it finished.
        audio_s: Seconds of audio it transcribed (audio tasks).
        busy_s: Seconds its workers spent on units (summed over workers).
        failed_units: Unit tries that failed there (worker killed, node lost, error, timeout).
        errors: Why workers there could not run the model (empty when they could).
    """

    node_id: str
    host: str = ""
    ip: str = ""
    workers: int = 0
    units: int = 0
    items: int = 0
    audio_s: float = 0.0
    busy_s: float = 0.0
    failed_units: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self, wall_s: float) -> dict[str, Any]:
        """The node's record in ``job.json``'s ``runs`` and in the summary (rates over the run's wall time)."""
        return {"node": self.host or self.ip or self.node_id[:8], "ip": self.ip, "node_id": self.node_id,
                "workers": self.workers, "units": self.units, "items": self.items,
                "audio_s": round(self.audio_s, 3), "busy_s": round(self.busy_s, 3),
                "items_per_s": round(self.items / wall_s, 3) if wall_s > 0 else None,
                "audio_x_realtime": round(self.audio_s / wall_s, 2) if wall_s > 0 and self.audio_s else None,
                "failed_units": self.failed_units, "errors": list(self.errors)}


# ----------------------------------------------------------------------------------------------------------
# Task adapters: how a unit travels to a worker and back. The driver side runs in the driver; the worker side
# in the actor. Both are plain module-level functions, so Ray pickles them by reference.


@dataclass
class _Unit:
    """Items sent together to one worker, and the tries so far."""

    index: int
    items: list[Item]
    attempts: int = 0
    last_error: str = ""


class _MemoryCache:
    """An embedding cache in a worker's memory: starts with the driver's cached vectors for the unit, and
    collects the new ones, which go back to the driver's ``JOB_DIR/embeddings/`` (the driver writes them)."""

    def __init__(self, known: dict[str, np.ndarray]) -> None:
        self.known = known
        self.new: dict[str, np.ndarray] = {}

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {k: self.known[k].astype(np.float32) for k in keys if k in self.known}

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for k, v in zip(keys, np.asarray(vectors, dtype=np.float16)):
            self.known[k] = v
            self.new[k] = v

    def compact(self) -> None:
        return None


def _build_classifier(options: Any, labels: Any, head: Any, source: str | None) -> Prelabeler:
    from kdh_ai.tasks.classification import Classifier

    return Classifier(options, labels=labels, head=head, source=source)


def _worker_factory(prelabeler: Prelabeler) -> Callable[[], Prelabeler]:
    """A picklable recipe that builds, in a worker, the prelabeler the driver built (same answers)."""
    custom = getattr(prelabeler, "worker_factory", None)
    if callable(custom):
        return custom()
    from kdh_ai.tasks.classification import Classifier
    from kdh_ai.engines import TranscribeOptions, make_transcriber

    if prelabeler.task == "transcription" and isinstance(getattr(prelabeler, "options", None), TranscribeOptions):
        return functools.partial(make_transcriber, prelabeler.options)  # the same engine as the driver's
    if isinstance(prelabeler, Classifier):
        return functools.partial(_build_classifier, prelabeler.options, prelabeler.labels, prelabeler.head,
                                 prelabeler.source)
    raise ClusterError(f"{type(prelabeler).__name__} cannot run on Ray yet: give it a worker_factory() method "
                       "that returns a picklable callable building the same prelabeler, or run without --ray")


def _pack_unit(prelabeler: Prelabeler, items: list[Item]) -> tuple[dict[str, Any], list[Item]]:
    """Driver side: the unit's payload (the content travels with it), and items the driver answers itself.

    Items that are already known to be bad (an ingest error, or an audio file the driver cannot read) are
    answered by the driver's own prelabeler, which fails them at once with the local message: no model work.
    """
    payload: dict[str, Any] = {"items": [], "files": {}, "vectors": {}}
    local: list[Item] = []
    cache = getattr(getattr(prelabeler, "embedder", None), "cache", None)
    for item in items:
        if item.error:
            local.append(item)
            continue
        if item.path is not None and item.text is None:
            try:
                payload["files"][item.item_id] = Path(item.path).read_bytes()
            except OSError:
                local.append(item)
                continue
        payload["items"].append(item)
    if cache is not None:
        from kdh_ai.items import sha256_text

        keys = [sha256_text(it.text) for it in payload["items"] if it.text]
        payload["vectors"] = {k: v.astype(np.float16) for k, v in cache.get(keys).items()}
    return payload, local


def _work_unit(prelabeler: Prelabeler, payload: dict[str, Any]) -> tuple[list[Prediction], dict[str, Any]]:
    """Worker side: run the prelabeler over one unit; return its predictions and what goes back to the job."""
    items: list[Item] = payload["items"]
    files: dict[str, bytes] = payload["files"]
    embedder = getattr(prelabeler, "embedder", None)
    memory = None
    if embedder is not None:
        memory = _MemoryCache(dict(payload["vectors"]))
        embedder.cache = memory
    with tempfile.TemporaryDirectory(prefix="kdh-unit-") as tmp:
        local_path: dict[str, str] = {}
        run_items: list[Item] = []
        for i, item in enumerate(items):
            if item.item_id in files:
                # keep the file's name (and so its extension): some containers are found by it
                p = Path(tmp) / f"{i:06d}" / Path(item.path or "audio").name
                p.parent.mkdir()
                p.write_bytes(files[item.item_id])
                local_path[item.item_id] = str(p)
                run_items.append(Item(item.item_id, path=str(p), text=item.text, reference=item.reference,
                                      metadata=item.metadata, error=item.error))
            else:
                run_items.append(item)
        preds = [p for batch in prelabeler.predict_batches(iter(run_items)) for p in batch]
    original = {it.item_id: it.path for it in items}
    for p in preds:  # the records name the client's file, not the worker's copy
        copy = local_path.get(p.item_id)
        if copy is not None:
            if p.source == copy:
                p.source = original[p.item_id]
            if p.error:
                p.error = p.error.replace(copy, original[p.item_id] or "")
    extras: dict[str, Any] = {}
    if memory is not None and memory.new:
        extras["vectors"] = memory.new
    return preds, extras


def _absorb(prelabeler: Prelabeler, extras: dict[str, Any]) -> None:
    """Driver side: keep what a worker computed for the job (new embeddings into the job's cache)."""
    vectors = extras.get("vectors")
    cache = getattr(getattr(prelabeler, "embedder", None), "cache", None)
    if vectors and cache is not None:
        keys = list(vectors)
        cache.put(keys, np.stack([vectors[k] for k in keys]))


# ----------------------------------------------------------------------------------------------------------
# The actor


class _PrelabelWorker:
    """One model on one worker process. Ray runs its methods one at a time, in the order they were sent."""

    def __init__(self, factory: Callable[[], Prelabeler]) -> None:
        import ray

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from kdh_ai.job import package_versions

        ctx = ray.get_runtime_context()
        self.info: dict[str, Any] = {"node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(),
                                     "host": socket.gethostname(), "pid": os.getpid(), "error": None}
        t0 = time.perf_counter()
        self.prelabeler: Prelabeler | None = None
        try:
            self.prelabeler = factory()
            self.info.update(config_hash=self.prelabeler.config_hash, model=dict(self.prelabeler.model_info))
        except Exception as exc:  # reported to the driver, which names this worker
            self.info["error"] = f"{type(exc).__name__}: {exc}"
        self.info["load_s"] = round(time.perf_counter() - t0, 3)
        self.info["packages"] = package_versions()

    def hello(self) -> dict[str, Any]:
        """Where this worker runs, and whether (and which) model it loaded."""
        return self.info

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Pre-label one unit; the predictions go back to the driver, which writes them."""
        if self.prelabeler is None:
            raise RuntimeError(f"no model on this worker: {self.info['error']}")
        t0 = time.perf_counter()
        preds, extras = _work_unit(self.prelabeler, payload)
        return {"predictions": [p.to_dict() for p in preds], "extras": extras,
                "busy_s": time.perf_counter() - t0, "node_id": self.info["node_id"]}


@dataclass
class _Actor:
    """The driver's view of one actor."""

    handle: Any
    node_id: str
    hello: Any  # the hello() reference until it is answered, then None
    ready: bool = False
    pid: int | None = None
    queue: deque[tuple[Any, _Unit]] = field(default_factory=deque)
    head_since: float = 0.0  # when the unit at the head of the queue started (approximately)


# ----------------------------------------------------------------------------------------------------------
# The runner


class RayRunner:
    """Runs a prelabeler's model work on a Ray cluster; the caller writes what it yields.

    Args:
        options: The cluster and how to use it.

    Attributes:
        nodes: Per-node statistics of the last run (by node id).
        retried_units: Unit tries that failed and were sent again in the last run.
        wall_s: Wall time of the last run.

    Example:
        >>> runner = RayRunner(RayOptions(address="127.0.0.1:6379"))   # doctest: +SKIP
        >>> run_prelabel(job_dir, source, make_prelabeler=..., task=..., item_kind=..., options=...,
        ...              runner=runner)                                # doctest: +SKIP
    """

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.nodes: dict[str, NodeStats] = {}
        self.retried_units = 0
        self.wall_s = 0.0
        self._actors: list[_Actor] = []
        self._bad_nodes: set[str] = set()

    # ---- progress and summary ------------------------------------------------------------------------
    @property
    def live_workers(self) -> int:
        """Workers with a loaded model right now."""
        return sum(1 for a in self._actors if a.ready)

    def progress_note(self) -> str:
        """A short note for the progress bar: the cluster at work."""
        nodes = {a.node_id for a in self._actors if a.ready}
        note = f"{self.live_workers} workers on {len(nodes)} nodes"
        return note + (f", {self.retried_units} retried" if self.retried_units else "")

    def workers(self) -> list[dict[str, Any]]:
        """The workers right now: node, process id, model loaded, units queued at it."""
        return [{"node_id": a.node_id, "ip": self._node(a.node_id).ip, "pid": a.pid, "ready": a.ready,
                 "units": len(a.queue)} for a in list(self._actors)]

    def node_summary(self) -> list[dict[str, Any]]:
        """Per-node statistics of the last run (JSON-ready; see :meth:`NodeStats.to_dict`)."""
        return [s.to_dict(self.wall_s) for s in sorted(self.nodes.values(), key=lambda s: (s.host, s.ip))]

    # ---- the run -------------------------------------------------------------------------------------
    def run(self, prelabeler: Prelabeler, items: Sequence[Item]) -> Iterator[list[Prediction]]:
        """Lazily yield the predictions of ``items``, one list per finished unit (see the module docstring).

        Args:
            prelabeler: The driver's prelabeler: its ``config_hash`` is the job's; workers build the same one.
            items: The items to do, in order.

        Raises:
            ClusterError: The cluster is unreachable, or no worker can run the model (after
                ``start_timeout_s``); what was yielded before stays valid.
        """
        opts = self.options
        self.nodes, self.retried_units, self._actors, self._bad_nodes = {}, 0, [], set()
        size = self.unit_items(prelabeler)
        self._pending: deque[_Unit] = deque(
            _Unit(i // size, list(items[i:i + size])) for i in range(0, len(items), size))
        self._given_up: list[_Unit] = []
        if not self._pending:
            return
        t_start = time.perf_counter()
        ray = self._connect()
        local: list[Item] = []
        payloads: dict[int, dict[str, Any]] = {}
        written: set[str] = set()
        try:
            factory_ref = ray.put(_worker_factory(prelabeler))
            no_worker_since = time.monotonic()
            last_scan = -math.inf
            while self._pending or local or self._given_up or any(a.queue for a in self._actors):
                if local:  # items the driver answers itself (known-bad input): no model work
                    out = self._dedupe([p for b in prelabeler.predict_batches(iter(local)) for p in b], written)
                    local = []
                    if out:
                        yield out
                if self._given_up:
                    out = self._dedupe([_error_record(prelabeler, it, self._give_up_message(u))
                                        for u in self._given_up for it in u.items], written)
                    self._given_up = []
                    if out:
                        yield out
                now = time.monotonic()
                if now - last_scan >= opts.rescan_s:
                    self._top_up(ray, factory_ref)
                    last_scan = now
                if any(a.ready for a in self._actors):
                    no_worker_since = now
                elif not any(a.hello is not None for a in self._actors) and self._bad_nodes \
                        and not self._startable(ray):
                    raise ClusterError(self._no_worker_message())
                elif now - no_worker_since > opts.start_timeout_s:
                    raise ClusterError(self._no_worker_message(timed_out=True))
                # feed the workers, emptiest queue first
                for actor in sorted((a for a in self._actors if a.ready), key=lambda a: len(a.queue)):
                    while self._pending and len(actor.queue) < opts.in_flight:
                        unit = self._pending.popleft()
                        if unit.index not in payloads:
                            payload, bad = _pack_unit(prelabeler, unit.items)
                            local.extend(bad)
                            if not payload["items"]:
                                continue
                            payloads[unit.index] = payload
                            unit.items = payload["items"]
                        if not actor.queue:
                            actor.head_since = time.monotonic()
                        actor.queue.append((actor.handle.run.remote(payloads[unit.index]), unit))
                refs = [a.hello for a in self._actors if a.hello is not None]
                refs += [a.queue[0][0] for a in self._actors if a.queue]
                if not refs:
                    if not local:
                        time.sleep(0.2)
                    continue
                ready, _ = ray.wait(refs, num_returns=1, timeout=min(1.0, opts.rescan_s))
                if ready:  # and whatever else is back already: one write (one fsync) for all of them
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                out = []
                for ref in ready:
                    out += self._dedupe(self._collect(ray, ref, prelabeler, payloads), written)
                if out:
                    yield out
                self._check_timeouts(ray)
        finally:
            self.wall_s = time.perf_counter() - t_start
            for a in self._actors:
                _kill(ray, a.handle)
            self._actors = []
            if self._connected_here:
                ray.shutdown()

    def unit_items(self, prelabeler: Prelabeler) -> int:
        """Items per unit: ``options.unit_items``, else the task's ``batch_size`` (the local run's batches)."""
        if self.options.unit_items is not None:
            return self.options.unit_items
        return int(getattr(getattr(prelabeler, "options", None), "batch_size", 0) or 8)

    # ---- pieces of the run ---------------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ClusterError("Ray is not installed here: run `make install` (kdh_ai pins ray), or run without "
                               "--ray") from None
        self._connected_here = False
        if ray.is_initialized():
            return ray
        address = self.options.address
        try:
            ray.init(address=address, namespace="kdh_ai", log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Ray cluster at {address!r}: {_short(exc)}. Start it first (`ray start --head` "
                "on the lead's machine, `ray start --address=HEAD:6379` on each workstation; see "
                "docs/scale-out.md), or run without --ray") from None
        self._connected_here = True
        return ray

    def _node(self, node_id: str, info: dict[str, Any] | None = None) -> NodeStats:
        stats = self.nodes.get(node_id)
        if stats is None:
            stats = self.nodes[node_id] = NodeStats(node_id)
        if info:
            stats.host = stats.host or str(info.get("host") or "")
            stats.ip = stats.ip or str(info.get("ip") or "")
        return stats

    def _room(self, node: dict[str, Any]) -> int:
        return int(node.get("Resources", {}).get("CPU", 0) / self.options.cpus_per_worker + 1e-9)

    def _startable(self, ray: Any) -> bool:
        """Some alive node, not refused, could hold a worker."""
        return any(n["NodeID"] not in self._bad_nodes and self._room(n) > 0 for n in ray.nodes() if n.get("Alive"))

    def _top_up(self, ray: Any, factory_ref: Any) -> None:
        """Start workers on every alive node with room (nodes that joined or came back included), never more
        than there are units left to do."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts = self.options
        left = len(self._pending) + sum(len(a.queue) for a in self._actors)
        cap = min(opts.max_workers or left, left)
        remote_cls = _remote_worker_class(ray)
        nodes = [n for n in sorted(ray.nodes(), key=lambda n: n["NodeID"])
                 if n.get("Alive") and n["NodeID"] not in self._bad_nodes]
        for n in nodes:
            self._node(n["NodeID"], {"ip": n.get("NodeManagerAddress"), "host": n.get("NodeManagerHostname")})
        added = True
        while added and len(self._actors) < cap:  # one more worker per node and round: spread over the nodes
            added = False
            for n in nodes:
                nid = n["NodeID"]
                if len(self._actors) >= cap or sum(1 for a in self._actors if a.node_id == nid) >= self._room(n):
                    continue
                handle = remote_cls.options(
                    num_cpus=opts.cpus_per_worker, max_restarts=0, max_concurrency=1,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)).remote(factory_ref)
                self._actors.append(_Actor(handle, nid, handle.hello.remote()))
                added = True

    def _drop(self, ray: Any, actor: _Actor, reason: str) -> None:
        """Forget an actor; the units it held go back to the front of the queue (each try counted)."""
        if actor in self._actors:
            self._actors.remove(actor)
        _kill(ray, actor.handle)
        stats = self._node(actor.node_id)
        for _, unit in reversed(actor.queue):
            stats.failed_units += 1
            self._failed(unit, reason)
        actor.queue.clear()

    def _failed(self, unit: _Unit, reason: str) -> None:
        """A unit's try failed: try it again, split it into single items, or give its items up as errors."""
        unit.attempts += 1
        unit.last_error = reason
        self.retried_units += 1
        logger.warning("unit %d (%d items) failed on the cluster (try %d of %d): %s", unit.index, len(unit.items),
                       unit.attempts, self.options.max_attempts, reason)
        if unit.attempts < self.options.max_attempts:
            self._pending.appendleft(unit)
        elif len(unit.items) > 1:  # find the item that fails; the others go through
            for k, item in reversed(list(enumerate(unit.items))):
                self._pending.appendleft(_Unit(unit.index * 1_000_000 + k + 1, [item]))
        else:
            self._given_up.append(unit)

    def _give_up_message(self, unit: _Unit) -> str:
        return (f"failed {unit.attempts} times on the Ray cluster (last: {unit.last_error}); nothing was written "
                "for it: run the job again to retry it, or run it without --ray to see the error locally")

    def _collect(self, ray: Any, ref: Any, prelabeler: Prelabeler,
                 payloads: dict[int, dict[str, Any]]) -> list[Prediction]:
        """Handle one answer: a worker's hello, or a unit's result (returned) or failure (retried)."""
        from ray.exceptions import RayActorError, RayTaskError

        actor = next((a for a in self._actors if a.hello is not None and a.hello == ref), None)
        if actor is not None:
            self._hello(ray, actor, ref, prelabeler)
            return []
        actor = next((a for a in self._actors if a.queue and a.queue[0][0] == ref), None)
        if actor is None:
            return []
        _, unit = actor.queue.popleft()
        actor.head_since = time.monotonic()
        stats = self._node(actor.node_id)
        where = f"worker pid {actor.pid} on {stats.host or stats.ip}"
        try:
            result = ray.get(ref)
        except RayActorError as exc:
            stats.failed_units += 1
            self._failed(unit, f"{where} was lost ({_short(exc)})")
            self._drop(ray, actor, f"{where} was lost")
            return []
        except RayTaskError as exc:
            stats.failed_units += 1
            self._failed(unit, f"error on {where}: {_short(exc)}")
            return []
        preds = [Prediction.from_dict(d) for d in result["predictions"]]
        expected = {it.item_id for it in unit.items}
        preds = [p for p in preds if p.item_id in expected]
        missing = expected - {p.item_id for p in preds}
        preds += [_error_record(prelabeler, it, "the worker returned no answer for it; run the job again to retry it")
                  for it in unit.items if it.item_id in missing]
        _absorb(prelabeler, result.get("extras") or {})
        stats.units += 1
        stats.items += len(preds)
        stats.busy_s += float(result.get("busy_s") or 0.0)
        stats.audio_s += sum(float(p.payload.get("duration_s") or 0.0) for p in preds if p.status != "error")
        payloads.pop(unit.index, None)
        return preds

    def _hello(self, ray: Any, actor: _Actor, ref: Any, prelabeler: Prelabeler) -> None:
        """A worker loaded its model (or could not): accept it, or refuse it with a per-worker message."""
        from ray.exceptions import RayActorError, RayTaskError

        actor.hello = None
        try:
            info = ray.get(ref)
        except (RayActorError, RayTaskError) as exc:
            self._node(actor.node_id).errors.append(f"a worker died while loading the model: {_short(exc)}")
            self._drop(ray, actor, "worker died while loading the model")
            return
        actor.pid = info.get("pid")
        stats = self._node(actor.node_id, info)
        where = f"worker on {info.get('host')} ({info.get('ip')}, pid {info.get('pid')})"
        problem = info.get("error")
        if problem is None and info.get("config_hash") != prelabeler.config_hash:
            problem = (f"its model gives config_hash {info.get('config_hash')} ({info.get('model')}), the job's is "
                       f"{prelabeler.config_hash} ({prelabeler.model_info}); it has "
                       f"{_package_diff(info.get('packages') or {})}")
        if problem is not None:
            message = (f"{where} cannot run the model: {problem}. Install the pinned packages on that workstation "
                       "(`make install` from the same kdh_ai checkout) or stop Ray there; the job goes on with "
                       "the other workers")
            if not stats.errors:  # one message per node (its other workers fail the same way)
                stats.errors.append(message)
                logger.error("%s", message)
            self._bad_nodes.add(actor.node_id)
            self._drop(ray, actor, message)
            return
        actor.ready = True
        stats.workers += 1
        logger.info("%s loaded the model in %.1f s", where, float(info.get("load_s") or 0.0))

    def _check_timeouts(self, ray: Any) -> None:
        now = time.monotonic()
        for actor in list(self._actors):
            if actor.ready and actor.queue and now - actor.head_since > self.options.unit_timeout_s:
                stats = self._node(actor.node_id)
                stats.failed_units += 1
                _, unit = actor.queue.popleft()
                self._failed(unit, f"worker pid {actor.pid} on {stats.host or stats.ip} spent over "
                                   f"{self.options.unit_timeout_s:g} s on it (unit_timeout_s) and was stopped")
                self._drop(ray, actor, "its worker was stopped (another unit timed out)")

    @staticmethod
    def _dedupe(preds: list[Prediction], written: set[str]) -> list[Prediction]:
        """Each item is written at most once per run (a safety net: retries only follow lost results)."""
        out = []
        for p in preds:
            if p.item_id in written:
                logger.warning("item %s came back twice from the cluster; the second answer is ignored", p.item_id)
                continue
            written.add(p.item_id)
            out.append(p)
        return out

    def _no_worker_message(self, *, timed_out: bool = False) -> str:
        errors = [e for s in self.nodes.values() for e in s.errors]
        if errors:
            return "no worker of the Ray cluster can run the model:\n  " + "\n  ".join(errors)
        if timed_out:
            return (f"no worker of the Ray cluster loaded the model within {self.options.start_timeout_s:g} s "
                    f"(its CPUs are busy, or no node has cpus_per_worker={self.options.cpus_per_worker:g} CPUs); "
                    "check `ray status`, or run without --ray. What was done is saved")
        return "the Ray cluster has no node that can hold a worker; check `ray status`, or run without --ray"


def _kill(ray: Any, handle: Any) -> None:
    try:
        ray.kill(handle)
    except Exception:  # already gone
        logger.debug("worker already gone")


def _error_record(prelabeler: Prelabeler, item: Item, message: str) -> Prediction:
    """An item the cluster could not answer: an error without a content hash (the next run tries it again)."""
    return Prediction.failed(item_id=item.item_id, task=prelabeler.task, error=message,
                             model=dict(prelabeler.model_info), config_hash=prelabeler.config_hash,
                             source=getattr(prelabeler, "source", None) or item.path, sha256=None)


def _short(exc: BaseException) -> str:
    """One line about an exception (for a worker's error: the original exception, not Ray's wrapper)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(exc)):
        return f"{type(cause).__name__}: {_short(cause)}"
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return first[:300]


def _package_diff(theirs: dict[str, str]) -> str:
    from kdh_ai.job import package_versions

    ours = package_versions()
    diff = [f"{k} {theirs.get(k)} (here {v})" for k, v in sorted(ours.items()) if theirs.get(k) != v]
    return ", ".join(diff) or "the same package versions"


@functools.lru_cache(maxsize=1)
def _remote_worker_class(ray: Any) -> Any:
    return ray.remote(_PrelabelWorker)
