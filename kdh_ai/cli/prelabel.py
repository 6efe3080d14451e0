"""``kdh prelabel``: pre-label a client batch into a job directory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from kdh_ai.cli._common import console, err_console

__all__ = ["app", "print_summary"]

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
    segment_over: Annotated[Optional[float], typer.Option(
        "--segment-over", metavar="SECONDS", help="Recordings longer than this are also cut at pauses into work "
        "segments of at most about 30 s, each with its own text, word times and confidence, so that routing "
        "and review work on segments; shorter clips stay whole. [default: 30]")] = None,
) -> None:
    """Transcribe a batch of audio with Whisper, offline, into JOB_DIR (resumable).

    Writes predictions.jsonl (append-only; the latest record per item for the current configuration wins),
    predictions.parquet, items.jsonl and job.json. Killed or interrupted? Run the same command again: done
    items are skipped. Only files inside the batch folder are read (see --allow-root); special files and
    link loops are refused per item. Exit codes: 0 every clip done (files that are not audio are listed as
    skipped); 1 some clip failed (each is listed with what to do); 2 bad input (an empty folder, a manifest
    without item_id or path); 3 another run holds the job.
    """
    from kdh_ai.prelabel import prelabel_transcription, ray_runner_for, transcription_options

    overrides: dict[str, Any] = {k: v for k, v in {
        "model": model, "beam_size": beam_size, "compute_type": compute_type, "language": language, "vad": vad,
        "pack_short_clips": pack, "max_duration_s": max_duration, "engine": engine,
        "second_opinion": second_opinion, "segment_over_s": segment_over}.items() if v is not None}
    options, roots = transcription_options(config, overrides, allow_root or [])
    with _interrupted():
        summary = prelabel_transcription(input, out, options=options, allow_roots=roots,
                                         runner=ray_runner_for(config, ray), log_progress=progress,
                                         max_items=max_items)
    print_summary(summary)
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
    from kdh_ai.prelabel import classification_options, prelabel_classification, ray_runner_for

    overrides: dict[str, Any] = {k: v for k, v in {
        "labels": str(labels) if labels is not None else None, "model": model, "head": head,
        "train_labels": str(train_labels) if train_labels is not None else None, "max_chars": max_chars,
        "top_k": top_k, "cpu_threads": cpu_threads, "seed": seed}.items() if v is not None}
    options, label_set = classification_options(config, overrides)
    with _interrupted():
        summary = prelabel_classification(input, out, options=options, labels=label_set,
                                          runner=ray_runner_for(config, ray), log_progress=progress,
                                          max_items=max_items)
    if summary.head is not None:
        h = summary.head
        cv = getattr(h, "cv_accuracy_", None)
        console.print(f"head: [bold]{h.kind}[/] ({h.identity[:8]}), {h.n_train} human labels"
                      + (f", cross-validated accuracy {cv:.3f}" if cv is not None else ""))
        if h.calibration_warning:
            err_console.print(f"[bold red]warning: {h.calibration_warning}[/]")
    print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


@contextlib.contextmanager
def _interrupted() -> Iterator[None]:
    """Ctrl-C during a run: say that what is finished is saved, and exit with code 130."""
    try:
        yield
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/] Everything finished so far is saved; run the same command "
                          "again to continue.")
        raise typer.Exit(130) from None


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


def print_summary(summary: Any) -> None:
    """The summary table of a pre-labeling run, then each failed item and input problem."""
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
    if summary.total_s:
        table.add_row("wall time", f"{summary.total_s:.1f} s (loading the model"
                      + (" and training the head" if summary.task == "classification" else "")
                      + f" {summary.setup_s:.1f} s, pre-labeling {summary.wall_s:.1f} s)")
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
