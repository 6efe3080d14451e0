"""``kdh prelabel``: pre-label a client batch into a job directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from kdh_ai.cli._common import console, err_console, fail

__all__ = ["app", "print_summary"]

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
) -> None:
    """Transcribe a batch of audio with Whisper, offline, into JOB_DIR (resumable).

    Writes predictions.jsonl (append-only; the latest record per item for the current configuration wins),
    predictions.parquet, items.jsonl and job.json. Killed or interrupted? Run the same command again: done
    items are skipped. Exit code 1 when some item failed (each is listed with what to do).
    """
    from kdh_ai.config import ConfigError, load_pipeline, validate_options
    from kdh_ai.items import InputError
    from kdh_ai.job import JobLockedError
    from kdh_ai.prelabel import run_prelabel
    from kdh_ai.registry import ModelNotAvailableError
    from kdh_ai.tasks.transcription import Transcriber

    overrides: dict[str, Any] = {k: v for k, v in {
        "model": model, "beam_size": beam_size, "compute_type": compute_type, "language": language, "vad": vad,
        "pack_short_clips": pack, "max_duration_s": max_duration}.items() if v is not None}
    try:
        if config is not None:
            task, options = load_pipeline(config, overrides=overrides)
            if task != "transcription":
                raise ConfigError(f"{config} is a {task} pipeline; use `kdh prelabel classify`")
        else:
            options = validate_options("transcription", overrides, where="flags")
    except ConfigError as exc:
        raise fail(str(exc)) from None

    try:
        summary = run_prelabel(
            out, input, make_prelabeler=lambda: Transcriber(options), task="transcription", item_kind="audio",
            options=dataclasses.asdict(options), log_progress=progress, max_items=max_items)
    except JobLockedError as exc:
        raise fail(str(exc), 3) from None
    except (InputError, ModelNotAvailableError, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/] Everything finished so far is saved; run the same command "
                          "again to continue.")
        raise typer.Exit(130) from None
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
    max_items: Annotated[Optional[int], typer.Option(help="Process at most N pending items now (a trial run; "
                                                     "run again to continue).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
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
    from kdh_ai.registry import ModelNotAvailableError
    from kdh_ai.tasks.classification import Classifier

    overrides: dict[str, Any] = {k: v for k, v in {
        "labels": str(labels) if labels is not None else None, "model": model, "head": head,
        "train_labels": str(train_labels) if train_labels is not None else None, "max_chars": max_chars,
        "top_k": top_k, "cpu_threads": cpu_threads}.items() if v is not None}
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

    def make() -> Classifier:
        clf = Classifier.for_job(options, out, labels=label_set, source=input, log_progress=progress)
        built.append(clf)
        return clf

    try:
        summary = run_prelabel(
            out, input, make_prelabeler=make, task="classification", item_kind="text",
            options=dataclasses.asdict(options), log_progress=progress, max_items=max_items)
    except JobLockedError as exc:
        raise fail(str(exc), 3) from None
    except (InputError, ModelNotAvailableError, FileNotFoundError, ValueError) as exc:
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
    print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def print_summary(summary: Any) -> None:
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
    table.add_row("wall time", f"{summary.wall_s:.1f} s")
    if summary.real_time_factor:
        table.add_row("real-time factor", f"{summary.real_time_factor:.1f}x (audio seconds per wall second)")
    console.print(table)
    for item_id, message in summary.errors:
        err_console.print(f"[red]item {item_id}:[/] {message}")
    for issue in summary.ingest_issues:
        err_console.print(f"[yellow]input:[/] {issue}")
    console.print(f"Results: {summary.job_dir / 'predictions.jsonl'} and predictions.parquet; "
                  f"job manifest: {summary.job_dir / 'job.json'}")
