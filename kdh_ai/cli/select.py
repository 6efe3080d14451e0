"""``kdh select``: choose the items people should label next in a classification job (active learning)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from kdh_ai.cli._common import console, err_console, fail

if TYPE_CHECKING:
    from kdh_ai.routing.select import NextRound

__all__ = ["register"]


def select_command(
    job_dir: Annotated[Path, typer.Argument(help="A classification job directory (after `kdh prelabel classify`).")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many items to choose for the next human "
                                   "round.")] = 50,
    random_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of the round drawn uniformly at "
                                                "random from the rest (keeps an unbiased sample under human eyes "
                                                "for calibration).")] = 0.2,
    strategy: Annotated[str, typer.Option(help="margin (smallest gap between the two most probable labels) or "
                                          "least_confident (lowest calibrated top probability).")] = "margin",
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Go round the predicted labels when "
                                          "picking uncertain items, so one confusable pair cannot take the "
                                          "whole round.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the random draw (the same seed chooses the same items).")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the chosen items to this CSV "
                                                "(item_id, reason, score, predicted, confidence).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show (and --out) the choice; do not record it "
                                          "in the job, so `kdh push` will not send it.")] = False,
    show: Annotated[int, typer.Option(min=0, help="Chosen items to list on screen.")] = 15,
) -> None:
    """Choose the next round of items for people to label: the most uncertain, plus a random share.

    The pool: every item with a current prediction that nobody has answered and that is not already with people
    (pushed to Label Studio, gold, or routed to calibration/human/audit). While the predictions still come from
    the zero-shot head (no human labels yet), the whole round is drawn at random: the zero-shot model's
    uncertainty says little about what it would learn.

    The choice is recorded in the job's routing.jsonl (role `human`, step `select`, with the reason). That is
    where `kdh push` looks: it sends these items and holds back every item not routed yet. `--dry-run` only
    shows the choice (and writes `--out`).

    The loop:

    1. `kdh select JOB --n 50`
    2. `kdh push JOB`; people label in Label Studio; `kdh pull JOB`
    3. `kdh prelabel classify ... --out JOB` retrains on their labels and re-predicts; back to 1.

    When the model is good enough: `kdh route JOB --calibration 0.2`, then `--target-accuracy`.

    Exit codes: 0 chosen; 2 not a classification job, no predictions yet, or bad options; 3 the job is in use.
    """
    from kdh_ai.routing.select import choose_next_round

    if strategy not in ("margin", "least_confident"):
        raise fail(f"--strategy must be margin or least_confident, got {strategy!r}")
    result = choose_next_round(job_dir, n, random_share=random_share, strategy=strategy, balance=balance,
                               seed=seed, out=out, record=not dry_run)
    _print_round(result, n=n, strategy=strategy, balance=balance, random_share=random_share, seed=seed, show=show)
    if out is not None:
        console.print(f"Chosen ids and reasons written to {out}")
    if dry_run:
        console.print("Dry run: nothing recorded in the job; `kdh push` will not send these items.")
    elif result.recorded:
        console.print(f"Recorded in {result.job.root / 'routing.jsonl'}: {result.recorded} item(s) with role human "
                      "(step select).")
        if not result.had_routing:
            err_console.print("[yellow]note:[/] the job had no routing.jsonl; from now on `kdh push` sends only "
                              "routed items (these), and holds back the rest until they are selected or routed.")
        console.print(f"Next: `kdh push {job_dir}` sends them to Label Studio; after people answer, `kdh pull "
                      f"{job_dir}`, then `kdh prelabel classify ... --out {job_dir}` retrains and re-predicts.")
    elif not result.selection.item_ids:
        console.print("Nothing to choose: every item is answered or already with people.")


def _print_round(result: NextRound, *, n: int, strategy: str, balance: bool, random_share: float, seed: int,
                 show: int) -> None:
    """The round's summary table, its warnings, and the first ``show`` chosen items."""
    sel, cold = result.selection, result.cold
    table = Table(title=f"next human round: {result.job.root.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("pool", f"{sel.pool_size} items with a prediction, unanswered and not yet with people "
                  f"({result.with_people} already with people)")
    table.add_row("model", "zero-shot (no human labels yet)" if cold else ", ".join(sorted(result.heads)))
    table.add_row("chosen", f"{len(sel.item_ids)}: " + (f"{len(sel.for_missing)} for missing classes + "
                                                          if sel.for_missing else "")
                  + f"{len(sel.uncertain) - len(sel.for_missing)} uncertain + {len(sel.random)} random")
    table.add_row("strategy", f"{strategy}{', balanced over predicted labels' if balance else ''}; random share "
                  f"{random_share:.0%}; seed {seed}")
    console.print(table)
    if cold:
        console.print("[yellow]Cold start:[/] the predictions come from the zero-shot head, so the whole round is "
                      "drawn at random (its uncertainty says little about what the model would learn). Rounds "
                      "after the head is trained on people's labels are chosen by uncertainty.")
    if sel.missing_classes:
        shown = ", ".join(sel.missing_classes[:10]) + (" ..." if len(sel.missing_classes) > 10 else "")
        err_console.print(f"[bold yellow]Classes with no human label yet:[/] {shown}. The model has not seen them, "
                          f"so this round asks for them first: {len(sel.for_missing)} item(s) it finds likeliest "
                          "to be one of them. Label them, pull, and retrain.")
    if len(sel.item_ids) < n:
        console.print(f"Only {len(sel.item_ids)} item(s) left to choose from (asked for {n}).")
    if show and sel.item_ids:
        items, preds = result.job.current_items(), result.predictions
        listing = Table(title=f"chosen items (first {min(show, len(sel.item_ids))} of {len(sel.item_ids)})")
        for col in ("item_id", "why", "predicted", "confidence", "text"):
            listing.add_column(col, overflow="fold")
        for k in sel.item_ids[:show]:
            text = str(items.get(k, {}).get("text") or "")
            listing.add_row(k, result.reasons[k], preds[k].text, f"{preds[k].confidence:.3f}",
                            text[:60] + ("..." if len(text) > 60 else ""))
        console.print(listing)


def register(app: typer.Typer) -> None:
    """Add ``kdh select`` to the ``kdh`` command."""
    app.command("select")(select_command)
