"""``kdh qualify``: a gold-only qualification test for a trainee, scored against a pass mark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kdh_ai.cli._common import console, fail

__all__ = ["register"]


def qualify_command(
    email: Annotated[str, typer.Argument(help="The trainee's login e-mail (an annotator account).")],
    task: Annotated[str, typer.Option(help="Task type the test qualifies for: transcription or classification.")],
    score: Annotated[bool, typer.Option("--score", help="Score the trainee's latest test (after they answered "
                                        "it in Label Studio) and record pass or fail in the trainee ledger.")] = False,
    size: Annotated[int, typer.Option(help="Items in a new test (bundled real items with known answers).")] = 10,
    pass_mark: Annotated[Optional[float], typer.Option(help="With --score: the highest WER (transcription, "
                                                       "default 0.10) or lowest accuracy (classification, default "
                                                       "0.90) that passes.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the draw of test items (default: random).")] = None,
) -> None:
    """Qualify a trainee before paid work: a test in Label Studio of real items whose answers are known.

    `kdh qualify amina@hub.example --task transcription` puts a new test (no pre-annotations) into Label
    Studio and prints its URL. When the trainee has answered it, `kdh qualify amina@hub.example --task
    transcription --score` scores it (WER or accuracy with a 95% Wilson interval) and records pass or fail in
    the hub's trainee ledger (`trainees.jsonl` in the hub folder: `$KDH_HUB_DIR`, else `/var/lib/kdh/hub` for
    root, else `~/.kdh/hub`).

    Once the hub has a ledger, `kdh pull` (and `kdh status`) keep apart the answers of annotators not
    qualified for the job's task type: they are not delivered, and `kdh status` names them.
    `KDH_QUALIFICATION=auto|required|off` changes that (auto: enforced when the ledger exists).
    """
    from kdh_ai.qualify import score_qualification, start_qualification

    if task not in ("transcription", "classification"):
        raise fail(f"--task must be transcription or classification, got {task!r}")
    if not score:
        rec = start_qualification(email, task=task, size=size, seed=seed)
        console.print(f"Qualification test [bold]{rec.test_id}[/] for {email} ({task}, {rec.size} items, "
                      f"no pre-annotations): {rec.url}")
        console.print(f"When {email} has answered every item: `kdh qualify {email} --task {task} --score`")
        return
    res = score_qualification(email, task=task, pass_mark=pass_mark)
    rec = res.record
    table = Table("item", "known answer", "trainee's answer", "errors", title=f"{email}: {task} test {rec.test_id}")
    for row in res.details.itertuples():
        table.add_row(str(row.item_id), str(row.known)[:60], "—" if row.answer is None else str(row.answer)[:60],
                      "—" if row.errors is None else f"{row.errors:.0f}/{row.size:.0f}")
    console.print(table)
    if rec.score is None:
        console.print(f"No answers from {email} yet ({rec.answered} of {rec.size}); ask them to open {rec.url}")
        raise typer.Exit(1)
    what = "WER" if rec.metric == "wer" else "accuracy"
    rule = "at most" if rec.metric == "wer" else "at least"
    line = (f"{what} {rec.score:.1%} (95% interval {rec.low:.1%}-{rec.high:.1%}) on {rec.answered} of {rec.size} "
            f"items; pass mark: {what} {rule} {rec.pass_mark:.0%}")
    if rec.passed is None:
        console.print(f"[yellow]INCOMPLETE[/]: {line}. Not recorded as a pass or fail until every item is answered.")
        raise typer.Exit(1)
    console.print(("[bold green]PASSED[/]: " if rec.passed else "[bold red]NOT PASSED[/]: ") + line)
    if not rec.passed:
        raise typer.Exit(1)


def trainee_command(
    email: Annotated[str, typer.Argument(help="The trainee's login e-mail.")],
    jobs: Annotated[list[Path], typer.Option("--job", help="A pulled job directory (repeat for several).")],
    out: Annotated[Optional[Path], typer.Option(help="The page to write (default: trainee-<email>.html).")] = None,
) -> None:
    """Write one trainee's progress page across jobs: gold WER or accuracy per job with intervals, speed
    against the team, frequent errors with examples (audio at the error), qualification, the next lesson."""
    from kdh_ai.report.trainee import write_trainee_page

    target = out or Path(f"trainee-{email.replace('@', '_at_')}.html")
    path = write_trainee_page(email, list(jobs), target)
    console.print(f"Progress page of {email}: {path}")


def register(app: typer.Typer) -> None:
    """Add ``kdh qualify`` and ``kdh trainee`` to the app."""
    app.command("qualify")(qualify_command)
    app.command("trainee")(trainee_command)
