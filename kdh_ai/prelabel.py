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

:func:`prelabel_transcription` and :func:`prelabel_classification` are what ``kdh prelabel transcribe`` and
``kdh prelabel classify`` run: the task's options (:func:`transcription_options`,
:func:`classification_options`, from a pipeline YAML and the command's flags), the model, and the optional Ray
runner (:func:`ray_runner_for`) around :func:`run_prelabel`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kdh_ai.errors import InvalidInputError
from kdh_ai.items import IngestIssue, Item, read_items, sha256_file, sha256_text
from kdh_ai.job import Job, package_versions
from kdh_ai.tasks.base import Prelabeler

__all__ = [
    "RunSummary",
    "check_language",
    "classification_options",
    "package_versions",
    "prelabel_classification",
    "prelabel_transcription",
    "ray_runner_for",
    "run_prelabel",
    "transcription_options",
]

logger = logging.getLogger(__name__)

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
        setup_s: Wall time spent loading the model (and training the head) in this run.
        total_s: Wall time of the whole run, model loading included (0 when not measured).
        head: The classification head the run used (``None`` for other tasks).
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
    setup_s: float = 0.0
    total_s: float = 0.0
    head: Any = None

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
        if hasattr(prelabeler, "log_progress"):  # a long file's own bar, in seconds of audio
            prelabeler.log_progress = log_progress
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


class _Stopwatch:
    """Adds up the wall time spent inside ``with`` blocks (loading the model, training the head)."""

    def __init__(self) -> None:
        self.elapsed_s = 0.0
        self._t0 = 0.0

    def __enter__(self) -> _Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed_s += time.perf_counter() - self._t0


def transcription_options(config: str | Path | None = None, overrides: dict[str, Any] | None = None,
                          allow_roots: Sequence[str | Path] = ()) -> tuple[Any, list[str]]:
    """The transcription options of a run, and the folders its manifest may read audio from.

    Args:
        config: A pipeline YAML (its ``input.allow_roots`` are added to ``allow_roots``); ``None``: defaults.
        overrides: Option values that win over the file (the command's flags).
        allow_roots: Folders besides the batch's own whose audio files the manifest may name.

    Raises:
        ConfigError: An unknown key, a bad value, a classification pipeline, or a language the English-only
            model cannot transcribe (:func:`check_language`).
    """
    from kdh_ai.config import ConfigError, load_input_config, load_pipeline, validate_options

    overrides = overrides or {}
    if config is not None:
        task, options = load_pipeline(config, overrides=overrides)
        if task != "transcription":
            raise ConfigError(f"{config} is a {task} pipeline; use `kdh prelabel classify`")
        roots = [*load_input_config(config).allow_roots, *(str(r) for r in allow_roots)]
    else:
        options = validate_options("transcription", overrides, where="flags")
        roots = [str(r) for r in allow_roots]
    check_language(options.model, options.language)
    if options.second_opinion:
        check_language(options.second_opinion, options.language)
    return options, roots


def classification_options(config: str | Path | None = None,
                           overrides: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """The classification options of a run, and its label set (read from ``options.labels``).

    Raises:
        ConfigError: An unknown key, a bad value, a transcription pipeline, or no labels file.
        LabelsError: The labels file cannot be read or breaks a rule.
    """
    from kdh_ai.config import ConfigError, load_pipeline, validate_options
    from kdh_ai.labels import load_labels

    overrides = overrides or {}
    if config is not None:
        task, options = load_pipeline(config, overrides=overrides)
        if task != "classification":
            raise ConfigError(f"{config} is a {task} pipeline; use `kdh prelabel transcribe`")
    else:
        options = validate_options("classification", overrides, where="flags")
    if not options.labels:
        raise ConfigError("no labels: give --labels labels.yaml (a list of labels, each a name with an "
                          "optional description)")
    return options, load_labels(options.labels)


def ray_runner_for(config: str | Path | None, address: str | None) -> Any:
    """The Ray runner of ``address`` (``--ray``) or of the pipeline's ``ray:`` block; ``None`` for a local run.

    Raises:
        InvalidInputError: The ``ray:`` block or the address is not valid.
    """
    if address is None and config is None:
        return None
    from kdh_ai.ray_runner import RayRunner, pipeline_ray_block, ray_options

    opts = ray_options(pipeline_ray_block(config), address=address,
                       where=f"{config}: ray" if config is not None else "--ray")
    return RayRunner(opts) if opts is not None else None


def prelabel_transcription(source: str | Path, job_dir: str | Path, *, options: Any,
                           allow_roots: Sequence[str | Path] = (), runner: Any | None = None,
                           log_progress: bool = False, max_items: int | None = None) -> RunSummary:
    """Transcribe a batch of audio into ``job_dir`` with Whisper (what ``kdh prelabel transcribe`` runs).

    Args:
        source: A folder of audio files or a manifest.
        job_dir: The job directory (created; re-used to resume).
        options: Transcription options (:func:`transcription_options`).
        allow_roots: Folders besides the batch's own whose audio files the manifest may name.
        runner: A Ray runner (:func:`ray_runner_for`), or ``None`` to run here.
        log_progress: Show a progress bar.
        max_items: Process at most this many pending items now.

    Returns:
        The run's summary, with ``setup_s`` (loading the model) and ``total_s`` filled in.
    """
    from kdh_ai.engines import make_transcriber

    setup = _Stopwatch()

    def make() -> Prelabeler:
        with setup:
            return make_transcriber(options)

    t0 = time.perf_counter()
    summary = run_prelabel(job_dir, source, make_prelabeler=make, task="transcription", item_kind="audio",
                           options=dataclasses.asdict(options), log_progress=log_progress, max_items=max_items,
                           allow_roots=allow_roots, runner=runner)
    summary.setup_s, summary.total_s = setup.elapsed_s, time.perf_counter() - t0
    return summary


def prelabel_classification(source: str | Path, job_dir: str | Path, *, options: Any, labels: Any,
                            runner: Any | None = None, log_progress: bool = False,
                            max_items: int | None = None) -> RunSummary:
    """Classify a batch of texts into ``job_dir`` (what ``kdh prelabel classify`` runs).

    The head is trained on the job's human labels when there are some (see
    :func:`kdh_ai.active_learning.classifier_for_job`); the summary's ``head`` is the head used.

    Args:
        source: A manifest of texts.
        job_dir: The job directory (created; re-used to resume and for later rounds).
        options: Classification options (:func:`classification_options`).
        labels: The label set (:func:`classification_options`).
        runner: A Ray runner (:func:`ray_runner_for`), or ``None`` to run here.
        log_progress: Show a progress bar.
        max_items: Process at most this many pending items now.

    Returns:
        The run's summary, with ``head``, ``setup_s`` (loading the model, training the head) and ``total_s``.
    """
    from kdh_ai.active_learning import classifier_for_job
    from kdh_ai.tasks.classification import Classifier

    setup = _Stopwatch()
    built: list[Classifier] = []

    def make() -> Classifier:
        with setup:
            clf = classifier_for_job(options, job_dir, labels=labels, source=source, log_progress=log_progress)
        built.append(clf)
        return clf

    t0 = time.perf_counter()
    summary = run_prelabel(job_dir, source, make_prelabeler=make, task="classification", item_kind="text",
                           options=dataclasses.asdict(options), log_progress=log_progress, max_items=max_items,
                           runner=runner)
    summary.setup_s, summary.total_s = setup.elapsed_s, time.perf_counter() - t0
    summary.head = built[0].head if built else None
    return summary


def check_language(model: str, language: str | None) -> None:
    """Refuse a language an English-only Whisper model cannot transcribe, naming the multilingual models.

    A registry model is English-only when its card lists only ``en``; a local CTranslate2 directory when its
    vocabulary is Whisper's English-only one (under 51,865 tokens, faster-whisper's own test).

    Raises:
        ConfigError: ``language`` is not English and ``model`` is English-only.
    """
    from kdh_ai.config import ConfigError
    from kdh_ai.registry import list_cards

    if not language or language.lower() in ("en", "english"):
        return
    cards = {c.name: c for c in list_cards()}
    if model in cards:
        english_only = [x.lower() for x in cards[model].languages] == ["en"]
    else:
        english_only = _vocabulary_size(Path(model).expanduser()) in range(1, 51865)
    if english_only:
        multi = sorted(c.name for c in cards.values() if c.task == "transcription"
                       and [x.lower() for x in c.languages] != ["en"])
        raise ConfigError(f"--language {language}: the model {model} is English-only and cannot transcribe "
                          f"{language!r}. Use a multilingual model: "
                          + (" or ".join(f"--model {m}" for m in multi) if multi else "a multilingual Whisper "
                             "directory (--model PATH)") + " (see `kdh models list`), or leave out --language")


def _vocabulary_size(folder: Path) -> int:
    """Tokens in a CTranslate2 Whisper directory's vocabulary (0 when it has none that can be read)."""
    try:
        if (folder / "vocabulary.json").is_file():
            return len(json.loads((folder / "vocabulary.json").read_text(encoding="utf-8")))
        if (folder / "vocabulary.txt").is_file():
            return sum(1 for _ in open(folder / "vocabulary.txt", encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return 0
