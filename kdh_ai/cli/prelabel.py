"""``kdh prelabel``: pre-label a client batch into a job directory."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from kdh_ai.cli._common import console, err_console, fail

__all__ = ["app", "check_language", "print_summary"]

RAY_HELP = ("Run the model work on a Ray cluster: its head's HOST:PORT, or auto (the cluster this machine "
            "belongs to); off runs here even when the pipeline YAML has a ray: block. Same results, same job "
            "directory; see docs/scale-out.md.")

app = typer.Typer(help="Pre-label a client batch with a model into a job directory.", no_args_is_help=True)


@app.command("transcribe")
def prelabel_transcribe(
    input: Annotated[Path, typer.Option("--input", "-i", help="A directory of audio files (wav, flac, mp3, "
                                        "ogg, m4a) or a manifest (CSV/JSONL: item_id, path, optional "
                                        "reference and metadata).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The job directory (created; re-use it to resume).")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A pipeline YAML, e.g. "
                                                   "pipelines/transcribe.yaml; flags override it.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Registry name (see `kdh models list`) or a local "
                                                 "CTranslate2 Whisper directory. [default: whisper-tiny.en]")] = None,
    beam_size: Annotated[Optional[int], typer.Option(help="Beam width (1 = greedy). [default: 5]")] = None,
    compute_type: Annotated[Optional[str], typer.Option(help="int8 | int8_float32 | float32. [default: int8]")] = None,
    language: Annotated[Optional[str], typer.Option(help="Language code; default: detect (en for .en models).")] = None,
    vad: Annotated[Optional[bool], typer.Option("--vad/--no-vad", help="Detect speech first (silence -> "
                                                "no_speech). [default: on]")] = None,
    pack: Annotated[Optional[bool], typer.Option("--pack/--no-pack", help="Transcribe several short clips "
                                                 "per Whisper window (faster, but a clip's text then depends on "
                                                 "the clips packed with it). [default: off]")] = None,
    max_duration: Annotated[Optional[float], typer.Option(help="Refuse files longer than this many seconds. "
                                                          "[default: 14400]")] = None,
    max_items: Annotated[Optional[int], typer.Option(help="Process at most N pending items now (a trial run; "
                                                     "run again to continue).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    engine: Annotated[Optional[str], typer.Option(help="faster-whisper | openai-whisper (OpenAI's reference "
                                                  "implementation on the same weights; slower). "
                                                  "[default: faster-whisper]")] = None,
    second_opinion: Annotated[Optional[str], typer.Option(
        "--second-opinion", metavar="MODEL", help="A second model (registry name or local directory, as --model) "
        "that transcribes every item too; where the two disagree the item's routing score drops, so `kdh route` "
        "sends it to people. Costs the second model's time (whisper-base after tiny.en: about 2.6x); see "
        "benchmarks/README.md. [default: none]")] = None,
    allow_root: Annotated[Optional[list[Path]], typer.Option(
        "--allow-root", help="A folder outside the manifest's own whose audio files the manifest may name "
        "(repeatable). Without it, a path that leads out of the batch folder ('..', an absolute path, a "
        "symbolic link) is refused.")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", help=RAY_HELP)] = None,
) -> None:
    """Transcribe a batch of audio with Whisper, offline, into JOB_DIR (resumable).

    Writes predictions.jsonl (append-only; the latest record per item for the current configuration wins),
    predictions.parquet, items.jsonl and job.json. Killed or interrupted? Run the same command again: done
    items are skipped. Only files inside the batch folder are read (see --allow-root); special files and
    link loops are refused per item. Exit codes: 0 every clip done (files that are not audio are listed as
    skipped); 1 some clip failed (each is listed with what to do); 2 bad input (an empty folder, a manifest
    without item_id or path); 3 another run holds the job.
    """
    from kdh_ai.config import ConfigError, load_input_config, load_pipeline, validate_options
    from kdh_ai.items import InputError
    from kdh_ai.job import JobLockedError
    from kdh_ai.prelabel import run_prelabel
    from kdh_ai.ray_runner import ClusterError
    from kdh_ai.registry import ModelNotAvailableError
    from kdh_ai.tasks.base import Prelabeler
    from kdh_ai.tasks.transcription import make_transcriber

    overrides: dict[str, Any] = {k: v for k, v in {
        "model": model, "beam_size": beam_size, "compute_type": compute_type, "language": language, "vad": vad,
        "pack_short_clips": pack, "max_duration_s": max_duration, "engine": engine,
        "second_opinion": second_opinion}.items() if v is not None}
    try:
        if config is not None:
            task, options = load_pipeline(config, overrides=overrides)
            if task != "transcription":
                raise ConfigError(f"{config} is a {task} pipeline; use `kdh prelabel classify`")
            roots = [*load_input_config(config).allow_roots, *(str(r) for r in allow_root or [])]
        else:
            options = validate_options("transcription", overrides, where="flags")
            roots = [str(r) for r in allow_root or []]
        check_language(options.model, options.language)
        if options.second_opinion:
            check_language(options.second_opinion, options.language)
    except ConfigError as exc:
        raise fail(str(exc)) from None

    timer = _Timer()

    def make() -> Prelabeler:
        with timer.setup():
            return make_transcriber(options)

    runner = _ray_runner(config, ray)
    try:
        with timer.total():
            summary = run_prelabel(
                out, input, make_prelabeler=make, task="transcription", item_kind="audio",
                options=dataclasses.asdict(options), log_progress=progress, max_items=max_items, allow_roots=roots,
                runner=runner)
    except JobLockedError as exc:
        raise fail(str(exc), 3) from None
    except (InputError, ModelNotAvailableError, ValueError, ClusterError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/] Everything finished so far is saved; run the same command "
                          "again to continue.")
        raise typer.Exit(130) from None
    print_summary(summary, timer=timer)
    if summary.failed:
        raise typer.Exit(1)


@app.command("classify")
def prelabel_classify(
    input: Annotated[Path, typer.Option("--input", "-i", help="A manifest (CSV/TSV/JSONL) with item_id, text, "
                                        "optional reference and metadata columns; UTF-8.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The job directory (created; re-use it to resume "
                                      "and for later rounds).")],
    labels: Annotated[Optional[Path], typer.Option("--labels", "-l", help="labels.yaml: a list of labels, each a "
                                                   "name with an optional description (see below).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A pipeline YAML, e.g. "
                                                   "pipelines/classify.yaml; flags override it.")] = None,
    train_labels: Annotated[Optional[Path], typer.Option(help="Human labels to train the head on: CSV "
                                                         "item_id,label[,text] or an annotations.jsonl. "
                                                         "[default: JOB_DIR/annotations.jsonl if present]")] = None,
    head: Annotated[Optional[str], typer.Option(help="auto (trained when human labels exist, else zero-shot) | "
                                                "zero_shot | trained. [default: auto]")] = None,
    model: Annotated[Optional[str], typer.Option(help="Registry name or a local sentence-transformers "
                                                 "directory. [default: minilm-l6-v2]")] = None,
    max_chars: Annotated[Optional[int], typer.Option(help="Refuse longer texts as errors. [default: 2000]")] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Labels kept in each prediction's probabilities. "
                                                 "[default: 5]")] = None,
    cpu_threads: Annotated[Optional[int], typer.Option(help="Torch threads (0 = torch default). "
                                                       "[default: 0]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the trained head's calibration folds (the same "
                                                "seed, labels and texts give the same head). [default: 0]")] = None,
    max_items: Annotated[Optional[int], typer.Option(help="Process at most N pending items now (a trial run; "
                                                     "run again to continue).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    ray: Annotated[Optional[str], typer.Option("--ray", help=RAY_HELP)] = None,
) -> None:
    """Classify a batch of texts with sentence embeddings and a head, offline, into JOB_DIR (resumable).

    labels.yaml lists the labels, each a name with an optional description that helps the zero-shot head and
    is shown to annotators as a hint:

        labels:
          - name: spam
            description: Unsolicited advertising, prizes or scams.
          - name: ham

    With no human labels the head is zero-shot (label names and descriptions). Once people have labelled
    some items (--train-labels, or annotations pulled into JOB_DIR), the same command trains a calibrated
    logistic-regression head on them and redoes the predictions. Empty, over-long and non-UTF-8 texts and
    duplicate ids are reported per item; the rest of the batch goes on. Exit code 1 when some item failed.
    """
    from kdh_ai.config import ConfigError, load_pipeline, validate_options
    from kdh_ai.items import InputError
    from kdh_ai.job import JobLockedError
    from kdh_ai.labels import LabelsError, load_labels
    from kdh_ai.prelabel import run_prelabel
    from kdh_ai.ray_runner import ClusterError
    from kdh_ai.registry import ModelNotAvailableError
    from kdh_ai.tasks.classification import Classifier

    overrides: dict[str, Any] = {k: v for k, v in {
        "labels": str(labels) if labels is not None else None, "model": model, "head": head,
        "train_labels": str(train_labels) if train_labels is not None else None, "max_chars": max_chars,
        "top_k": top_k, "cpu_threads": cpu_threads, "seed": seed}.items() if v is not None}
    try:
        if config is not None:
            task, options = load_pipeline(config, overrides=overrides)
            if task != "classification":
                raise ConfigError(f"{config} is a {task} pipeline; use `kdh prelabel transcribe`")
        else:
            options = validate_options("classification", overrides, where="flags")
        if not options.labels:
            raise ConfigError("no labels: give --labels labels.yaml (a list of labels, each a name with an "
                              "optional description)")
        label_set = load_labels(options.labels)
    except (ConfigError, LabelsError) as exc:
        raise fail(str(exc)) from None

    built: list[Classifier] = []
    timer = _Timer()

    def make() -> Classifier:
        with timer.setup():
            clf = Classifier.for_job(options, out, labels=label_set, source=input, log_progress=progress)
        built.append(clf)
        return clf

    runner = _ray_runner(config, ray)
    try:
        with timer.total():
            summary = run_prelabel(
                out, input, make_prelabeler=make, task="classification", item_kind="text",
                options=dataclasses.asdict(options), log_progress=progress, max_items=max_items, runner=runner)
    except JobLockedError as exc:
        raise fail(str(exc), 3) from None
    except (InputError, ModelNotAvailableError, FileNotFoundError, ValueError, ClusterError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/] Everything finished so far is saved; run the same command "
                          "again to continue.")
        raise typer.Exit(130) from None
    if built:
        h = built[0].head
        cv = getattr(h, "cv_accuracy_", None)
        console.print(f"head: [bold]{h.kind}[/] ({h.identity[:8]}), {h.n_train} human labels"
                      + (f", cross-validated accuracy {cv:.3f}" if cv is not None else ""))
        if h.calibration_warning:
            err_console.print(f"[bold red]warning: {h.calibration_warning}[/]")
    print_summary(summary, timer=timer)
    if summary.failed:
        raise typer.Exit(1)


def _ray_runner(config: Path | None, address: str | None) -> Any:
    """The Ray runner of ``--ray`` / the pipeline's ``ray:`` block, or ``None`` for a local run."""
    if address is None and config is None:
        return None
    from kdh_ai.ray_runner import RayRunner, pipeline_ray_block, ray_options

    try:
        opts = ray_options(pipeline_ray_block(config), address=address,
                           where=f"{config}: ray" if config is not None else "--ray")
    except ValueError as exc:
        raise fail(str(exc)) from None
    return RayRunner(opts) if opts is not None else None


def print_nodes(nodes: list[dict[str, Any]]) -> None:
    """The per-node throughput of a run on a Ray cluster."""
    table = Table(title="Ray cluster: throughput per node")
    for col in ("node", "workers", "items", "items/s", "audio", "busy", "failed units"):
        table.add_column(col, justify="left" if col == "node" else "right")
    for n in nodes:
        audio = f"{n['audio_s'] / 3600:.3f} h ({n['audio_x_realtime']}x)" if n.get("audio_x_realtime") else "-"
        table.add_row(f"{n['node']} {n['ip']}", str(n["workers"]), str(n["items"]),
                      f"{n['items_per_s']:.2f}" if n.get("items_per_s") is not None else "-", audio,
                      f"{n['busy_s']:.1f} s", str(n["failed_units"]))
    console.print(table)
    for n in nodes:
        for message in n.get("errors") or []:
            err_console.print(f"[yellow]worker:[/] {message}")


class _Timer:
    """Wall time of a whole ``kdh prelabel`` run, and the part spent loading the model and training the head."""

    def __init__(self) -> None:
        self.setup_s = 0.0
        self.total_s = 0.0

    @contextlib.contextmanager
    def setup(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.setup_s += time.perf_counter() - t0

    @contextlib.contextmanager
    def total(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.total_s += time.perf_counter() - t0


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
    import json

    try:
        if (folder / "vocabulary.json").is_file():
            return len(json.loads((folder / "vocabulary.json").read_text(encoding="utf-8")))
        if (folder / "vocabulary.txt").is_file():
            return sum(1 for _ in open(folder / "vocabulary.txt", encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return 0


def print_summary(summary: Any, *, timer: _Timer | None = None) -> None:
    c = summary.counts
    table = Table(title=f"{summary.task} job: {summary.job_dir}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    pending = f"  ({c['pending']} pending)" if c.get("pending") else ""
    if summary.task == "transcription":
        table.add_row("items ok / no_speech / error",
                      f"{c.get('ok', 0)} / {c.get('no_speech', 0)} / {c.get('error', 0)}" + pending)
    else:
        table.add_row("items ok / error", f"{c.get('ok', 0)} / {c.get('error', 0)}" + pending)
    table.add_row("this run", f"{summary.processed} processed, {summary.skipped} already done")
    if summary.audio_s:
        table.add_row("audio processed", f"{summary.audio_s:.1f} s ({summary.audio_s / 3600:.3f} h)")
    if timer is not None and timer.total_s:
        table.add_row("wall time", f"{timer.total_s:.1f} s (loading the model"
                      + (" and training the head" if summary.task == "classification" else "")
                      + f" {timer.setup_s:.1f} s, pre-labeling {summary.wall_s:.1f} s)")
    else:
        table.add_row("wall time", f"{summary.wall_s:.1f} s")
    if summary.real_time_factor:
        table.add_row("real-time factor", f"{summary.real_time_factor:.1f}x (audio seconds per second of "
                      "pre-labeling, model loading left out)")
    console.print(table)
    if getattr(summary, "nodes", None):
        print_nodes(summary.nodes)
    for item_id, message in summary.errors:
        err_console.print(f"[red]item {item_id}:[/] {message}")
    for issue in summary.ingest_issues:
        err_console.print(f"[yellow]input:[/] {issue}")
    for note in getattr(summary, "skipped_files", []):
        err_console.print(f"[dim]input: {escape(note)} (listed only: not a failed item)[/]")
    console.print(f"Results: {summary.job_dir / 'predictions.jsonl'} and predictions.parquet; "
                  f"job manifest: {summary.job_dir / 'job.json'}")
