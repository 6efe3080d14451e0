"""``kdh deliver``, ``kdh report`` and ``kdh quality``: what the client receives, and the job's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kdh_ai.cli._common import console, fail

__all__ = ["register"]


def deliver_command(
    job_dir: Annotated[Path, typer.Argument(help="The job directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Delivery folder (created).")],
    model_weight: Annotated[Optional[int], typer.Option(help="Copies of the model's answer when several people's "
                                                        "answers are aggregated (model-aware).")] = None,
    per_file: Annotated[str, typer.Option(help="Which audio items get transcripts/ITEM.txt, .srt, .vtt and "
                                          ".json: long (recordings cut into work segments), all, or none.")] = "long",
    max_line_chars: Annotated[int, typer.Option(help="Subtitles: most characters per line.")] = 42,
    max_lines: Annotated[int, typer.Option(help="Subtitles: most lines per cue.")] = 2,
    min_cue_s: Annotated[float, typer.Option(help="Subtitles: shortest time a cue is on screen (s).")] = 1.0,
    max_cue_s: Annotated[float, typer.Option(help="Subtitles: longest time a cue is on screen (s).")] = 7.0,
    realign: Annotated[bool, typer.Option(help="Time the words people changed in a segment by aligning their text "
                                          "to the audio with the job's Whisper model (--no-realign: place them "
                                          "between the words they kept, by length).")] = True,
) -> None:
    """Write the delivered dataset: JSONL, Parquet and a Hugging Face datasets folder; for audio also one row
    per clip or work segment (delivered_segments.*, hf_segments/), and per long recording its transcript
    (TXT), subtitles (SRT, WebVTT) and a JSON with segments, word times and who checked each segment.

    Each item carries its final answer (people's where there is one, aggregated where several, otherwise the
    model's), its provenance, the annotators, the model and its confidence. A segment people edited keeps its
    bounds and the model's times of the words they kept; the words they changed are aligned to the audio
    (word_times: aligned) or, where that fails, placed between the kept words (word_times: estimated).
    """
    from kdh_ai.deliver import PER_FILE, deliver
    from kdh_ai.subtitles import SubtitleOptions

    if per_file not in PER_FILE:
        raise fail(f"--per-file must be one of {', '.join(PER_FILE)}; got {per_file!r}")
    try:
        rules = SubtitleOptions(max_chars=max_line_chars, max_lines=max_lines, min_s=min_cue_s, max_s=max_cue_s)
    except ValueError as exc:
        raise fail(str(exc)) from None
    result = deliver(job_dir, out, model_weight=model_weight, per_file=per_file,  # type: ignore[arg-type]
                     subtitles=rules, realign=realign)
    console.print(f"Delivered {sum(result.counts.values())} items to [bold]{result.out_dir}[/]: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    for f in result.files:
        console.print(f"  {f}")
    if result.transcripts:
        console.print(f"  {result.out_dir / 'transcripts'}: TXT, SRT, WebVTT and JSON of "
                      f"{len(result.transcripts)} recording(s)")


def report_command(
    job_dir: Annotated[Path, typer.Argument(help="The job directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write; NAME.metrics.json and "
                                      "NAME.plots.json go next to it.")] = Path("report.html"),
    client: Annotated[Optional[str], typer.Option(help="The client's name, shown in the title.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write NAME.pdf (printed by headless Chromium; "
                                      "`make system-deps` installs it).")] = False,
) -> None:
    """Write the client quality report: one self-contained HTML file (no network needed), its figures as JSON,
    and with --pdf a PDF to forward.

    A verdict against the agreed target with its bound and how it is guaranteed; a DRAFT banner while items
    routed to people are unanswered or the audit is unchecked; provenance of every delivered answer; method
    (calibration, gold, overlap, audit, guideline); model and people with intervals; the model's typical
    errors; turnaround and the time pre-labels saved. Lead instructions stay out of it: see `kdh status`.
    """
    from kdh_ai.report import report_paths, write_client_report

    path = write_client_report(job_dir, out, client=client, pdf=pdf)
    paths = report_paths(path)
    console.print(f"Report: [bold]{path}[/] (open it in any browser); figures: {paths['metrics']}, plot data: "
                  f"{paths['plots']}" + (f"; PDF: {paths['pdf']}" if pdf else ""))
    draft = json.loads(paths["metrics"].read_text(encoding="utf-8")).get("draft") or {}
    if draft.get("is_draft"):
        console.print("[yellow]The report is marked DRAFT:[/] " + "; ".join(draft["reasons"])
                      + ". See `kdh status` for what to do next.")


def quality_command(
    job_dir: Annotated[Path, typer.Argument(help="The job directory.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for metrics.json and annotators.csv "
                                                "(default: the job directory).")] = None,
) -> None:
    """Compute every applicable metric of a job: metrics.json and a per-annotator table (annotators.csv).

    Model against the client's references and against people; delivered quality; each annotator's answers,
    hours, speed and accuracy (or WER) on gold; agreement on overlap items; effort saved by pre-labels.
    What cannot be computed yet is listed with the reason, never a crash or a silent NaN.
    """
    from kdh_ai.job import Job, write_json_atomic
    from kdh_ai.report import annotator_table, job_metrics

    job = Job(job_dir)
    if not job.read_manifest():
        raise fail(f"{job.root} is not a job directory (no job.json)")
    folder = out or job.root
    folder.mkdir(parents=True, exist_ok=True)
    metrics = job_metrics(job)
    write_json_atomic(folder / "metrics.json", metrics)
    table = annotator_table(job)
    table.to_csv(folder / "annotators.csv", index=False)
    console.print(table.to_string(index=False) if not table.empty else "no annotations yet")
    for key, why in (metrics.get("not_enough_data") or {}).items():
        console.print(f"[yellow]not enough data[/] {key}: {why}")
    console.print(f"Written: {folder / 'metrics.json'}, {folder / 'annotators.csv'}")


def feedback_command(
    job_dir: Annotated[Path, typer.Argument(help="The job directory.")],
    annotator: Annotated[str, typer.Option("--annotator", "-a", help="The annotator's e-mail (as in Label Studio).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The HTML page to write (default: "
                                                "JOB_DIR/feedback/<e-mail with @ as _at_>.html, e.g. "
                                                "JOB_DIR/feedback/amina_at_hub.example.html).")] = None,
) -> None:
    """Write one trainee's feedback page: accuracy on gold over time, most frequent errors with examples and
    timestamps, speed against the team median, and concrete hints."""
    from kdh_ai.report import write_feedback

    target = out or Path(job_dir) / "feedback" / f"{annotator.replace('@', '_at_')}.html"
    path = write_feedback(job_dir, annotator, target)
    console.print(f"Feedback page for {annotator}: [bold]{path}[/]")


def register(app: typer.Typer) -> None:
    """Add ``kdh deliver``, ``kdh report``, ``kdh quality`` and ``kdh feedback`` to the ``kdh`` command."""
    app.command("deliver")(deliver_command)
    app.command("report")(report_command)
    app.command("quality")(quality_command)
    app.command("feedback")(feedback_command)
