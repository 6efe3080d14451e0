"""``kdh route``: decide which items people see, for the client's quality target."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kdh_ai.cli._common import console, fail

__all__ = ["register"]


def route_command(
    job_dir: Annotated[Path, typer.Argument(help="A pre-labeled job directory.")],
    calibration: Annotated[Optional[str], typer.Option(metavar="SHARE|COUNT|all",
        help="Step 1: draw the calibration slice (a share of the items below 1, e.g. 0.2, or a count from 1 "
        "up, e.g. 60: 1.0 is one item), or 'all': people review every item (a new client's first batch, whose "
        "answers then serve later batches as --prior-calibration). With "
        "--target-wer/--target-accuracy it also plans the evidence: the slice is raised to the size the target "
        "needs, and it says how many gold answers are needed.")] = None,
    target_wer: Annotated[Optional[float], typer.Option(help="Step 2 (transcription): target WER of the whole "
                                                        "delivered batch, a share in (0, 1), e.g. 0.05 for 5%. "
                                                        "With --calibration: the target to plan for.")] = None,
    target_accuracy: Annotated[Optional[float], typer.Option(help="Step 2 (classification): target accuracy of "
                                                             "the delivered batch, a share in (0, 1), e.g. 0.98. "
                                                             "With --calibration: the target to plan for.")] = None,
    budget: Annotated[Optional[float], typer.Option(help="Step 2, budget mode: largest share of items people may "
                                                    "touch (e.g. 0.3); best quality within it.")] = None,
    check_audit: Annotated[bool, typer.Option("--check-audit", help="After the audit items are answered and "
                                              "pulled: check the promise, re-route what missed it.")] = False,
    audit_rate: Annotated[float, typer.Option(help="Share of auto-accepted items people check anyway.")] = 0.05,
    delta: Annotated[float, typer.Option(help="Error level of the guarantee (0.05 = 95% confidence).")] = 0.05,
    human_error: Annotated[Optional[float], typer.Option(
        "--human-error", "--human-wer", help="People's error rate if no gold item has been answered yet "
        "(recorded as an assumption in the report).")] = None,
    gold: Annotated[Optional[Path], typer.Option(help="With --calibration: a gold manifest (CSV/JSONL: item_id, "
                                                 "answer) whose items become gold (measure the people).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draws (calibration slice, audit).")] = 0,
    prior_calibration: Annotated[Optional[list[Path]], typer.Option(metavar="JOB_DIR",
        help="Step 2: an earlier job of the same client, pre-labeled with the same model and options, whose "
        "answered calibration slice joins this one (repeat for several). Used only if this batch shows no "
        "drift against them.")] = None,
    calibration_reviewed: Annotated[bool, typer.Option("--calibration-reviewed", help="Step 2: the calibration "
        "slice was labelled to gold quality (trusted reviewers, or overlap checked by a reviewer): count its "
        "items as delivered exact, not at the people's error rate.")] = False,
) -> None:
    """Route every item: calibration, gold, human, audit or auto_accept.

    Two steps. First `kdh route JOB --calibration 0.2 --gold gold.csv --target-wer 0.05` draws a random slice
    for people to label to gold quality and says how many calibration items and gold answers the target needs
    (push, annotate, pull). Then `kdh route JOB --target-wer 0.05` (or --target-accuracy, or --budget) chooses
    the confidence threshold from that slice with a finite-sample guarantee and routes the rest. `kdh push` then
    sends every item that is not auto_accept. Run step 2 again as more gold or calibration answers arrive:
    items nobody has answered yet may move back to auto-accept. For a client who sends batch after batch, add
    `--prior-calibration EARLIER_JOB` to pool earlier slices: a tighter bound, so fewer items for people.
    """
    from kdh_ai.job import Job
    from kdh_ai.routing import check_audit as do_check_audit, plan_calibration, route

    if budget is not None and not 0 <= budget <= 1:
        raise fail(f"--budget must be a share in [0, 1], got {budget:g}"
                   + (f"; for {budget:g}% write {budget / 100:g}" if 1 < budget <= 100 else ""))
    for name, value in (("--target-wer", target_wer), ("--target-accuracy", target_accuracy)):
        if value is not None and not 0 < value < 1:
            hint = (f"; for {value:g}% write {value / 100:g}" if 1 <= value <= 100 else "")
            raise fail(f"{name} must be a share in (0, 1), got {value:g}{hint}")
    if target_wer is not None and target_accuracy is not None:
        raise fail("give one target: --target-wer (transcription) or --target-accuracy (classification)")
    if target_wer is not None or target_accuracy is not None:
        task_name = (Job(job_dir).read_manifest() if (job_dir / "job.json").exists() else {}).get("task")
        if target_wer is not None and task_name not in (None, "transcription"):
            raise fail(f"--target-wer is for transcription jobs; {job_dir} is a {task_name} job: use "
                       "--target-accuracy (e.g. 0.95)")
        if target_accuracy is not None and task_name == "transcription":
            raise fail(f"--target-accuracy is for classification jobs; {job_dir} is a transcription job: use "
                       "--target-wer (e.g. 0.05)")
    target = target_wer if target_wer is not None else (1 - target_accuracy if target_accuracy is not None else None)
    step2 = [x is not None for x in (target, budget)] + [check_audit]
    if calibration is None and sum(step2) != 1:
        raise fail("give exactly one of --calibration, --target-wer, --target-accuracy, --budget or --check-audit")
    if calibration is not None and (budget is not None or check_audit):
        raise fail("--calibration (step 1) goes with a target to plan for, not with --budget or --check-audit")
    if gold is not None and calibration is None:
        raise fail("--gold goes with --calibration (step 1); later, add gold with `kdh push --gold`")
    if calibration is not None:
        if gold is not None:
            from kdh_ai.labelstudio.gold import add_gold, read_gold_manifest

            items, problems = read_gold_manifest(gold)
            added, more = add_gold(Job(job_dir), items)
            for p in problems + more:
                console.print(f"[yellow]gold:[/] {p}")
            console.print(f"{added} gold item(s) recorded from {gold}")
        if target is not None:
            console.print("planning the evidence for the target (simulated slices; a few seconds) ...")
        result = plan_calibration(job_dir, size=_slice_size(calibration), seed=seed, target=target, delta=delta)
    elif check_audit:
        result = do_check_audit(job_dir, delta=delta)
    else:
        result = route(job_dir, target=target, budget=budget, audit_rate=audit_rate, delta=delta,
                       human_error=human_error, seed=seed, prior=prior_calibration or (),
                       calibration_reviewed=calibration_reviewed)
    minutes = _audio_minutes(job_dir)  # long recordings: what people hear, not only how many units
    table = Table(title=f"routing ({result.step}): {job_dir}")
    table.add_column("role")
    table.add_column("items" if minutes is None else "units (clips, segments)", justify="right")
    if minutes is not None:
        table.add_column("audio min", justify="right")
    for role, n in result.counts.items():
        table.add_row(role, str(n), *([] if minutes is None else [f"{minutes.get(str(role), 0.0):.1f}"]))
    console.print(table)
    console.print(f"human share: [bold]{result.human_share:.1%}[/] of items (calibration + human + audit + gold)")
    if minutes is not None:
        total = sum(minutes.values())
        people = sum(v for k, v in minutes.items() if k in ("calibration", "human", "audit", "gold"))
        console.print(f"audio people hear: [bold]{people:.1f}[/] of {total:.1f} min ({people / max(total, 1e-9):.0%}); "
                      "long recordings are routed segment by segment")
    if result.threshold is not None:
        console.print(f"threshold: [bold]{result.threshold:.4f}[/] (auto-accept at or above)")
    console.print(result.message)
    if not result.reachable:
        raise typer.Exit(1)


def _audio_minutes(job_dir: Path) -> dict[str, float] | None:
    """Audio minutes per role when the job has long recordings cut into segments, else ``None``."""
    from kdh_ai.job import Job

    job = Job(job_dir)
    units = job.units()
    if not any(u.segment is not None for u in units.values()):
        return None
    out: dict[str, float] = {}
    for key, rec in job.roles().items():
        u = units.get(key)
        if u is not None:
            out[str(rec.role)] = out.get(str(rec.role), 0.0) + float(u.payload.get("duration_s") or 0.0) / 60
    return out


def register(app: typer.Typer) -> None:
    """Add ``kdh route`` to the ``kdh`` command."""
    app.command("route")(route_command)


def _slice_size(text: str) -> float:
    """``--calibration``: a share (< 1), a count (>= 1) or ``all`` (every routable item, ``inf``)."""
    if text.strip().lower() == "all":
        return float("inf")
    try:
        size = float(text)
    except ValueError:
        raise fail(f"--calibration takes a share below 1 (0.2), a count (60) or 'all', got {text!r}") from None
    if not size > 0 or size == float("inf"):
        raise fail(f"--calibration must be a share in (0, 1), a count from 1 up, or 'all', got {text!r}")
    return size

