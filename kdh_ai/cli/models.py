"""``kdh models``: the models available to this hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kdh_ai.cli._common import console

__all__ = ["app"]

app = typer.Typer(help="Models available to this hub (never downloaded: they ship in packages).",
                  no_args_is_help=True)


@app.command("list")
def models_list(
    details: Annotated[bool, typer.Option("--details", "-d", help="Print each model's full card.")] = False,
) -> None:
    """Show each model, whether it is available on this machine, and its card."""
    from kdh_ai.registry import ModelNotAvailableError, list_cards, resolve_model

    table = Table(title="kdh models")
    for col in ("name", "task", "languages", "available", "where / why not", "license"):
        table.add_column(col, overflow="fold")
    cards = list_cards()
    for card in cards:
        try:
            resolved = resolve_model(card.name)
            avail, where = "[green]yes[/]", f"{resolved.path} (v{resolved.version})"
        except ModelNotAvailableError as exc:
            avail, where = "[red]no[/]", str(exc)
        table.add_row(card.name, card.task, ", ".join(card.languages), avail, where, card.license)
    console.print(table)
    console.print("Any local CTranslate2 Whisper directory also works: [bold]--model /path/to/model[/].")
    if details:
        for card in cards:
            console.rule(card.name)
            console.print(card.path.read_text(encoding="utf-8") if card.path else card)


@app.command("convert")
def models_convert(
    model: Annotated[str, typer.Argument(help="Registry name (see `kdh models list`) or a local CTranslate2 "
                                              "Whisper directory.")] = "whisper-tiny.en",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the checkpoint here instead of the "
                                                "cache (~/.cache/kdh_ai/openai-whisper).")] = None,
) -> None:
    """Write an OpenAI Whisper checkpoint (.pt) from a CTranslate2 Whisper model, offline.

    `whisper.load_model(PATH)` (the openai-whisper package) loads the result. `kdh prelabel transcribe --engine
    openai-whisper` converts on first use by itself; this command does it ahead of time, or for your own use.
    """
    from kdh_ai.engines.whisper_checkpoint import openai_whisper_checkpoint
    from kdh_ai.registry import resolve_model

    path = openai_whisper_checkpoint(resolve_model(model), out=out)
    record = path.with_name(path.name + ".json")
    console.print(f"[green]OpenAI Whisper checkpoint[/] {path} ({path.stat().st_size / 1e6:.0f} MB; SHA-256 "
                  f"recorded in {record.name})")
    console.print(f'Load it with: [bold]whisper.load_model("{path}", device="cpu")[/]')
