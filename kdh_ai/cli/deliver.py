"""``kdh deliver`` and ``kdh report``: what the client receives."""

from __future__ import annotations

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
) -> None:
    """Write the delivered dataset: JSONL, Parquet and a Hugging Face datasets folder.

    Each item carries its final answer (people's where there is one, aggregated where several, otherwise the
    model's), its provenance, the annotators, the model and its confidence.
    """
    from kdh_ai.deliver import deliver

    try:
        result = deliver(job_dir, out, model_weight=model_weight)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(f"Delivered {sum(result.counts.values())} items to [bold]{result.out_dir}[/]: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    for f in result.files:
        console.print(f"  {f}")


def register(app: typer.Typer) -> None:
    """Add ``kdh deliver`` to the ``kdh`` command."""
    app.command("deliver")(deliver_command)
