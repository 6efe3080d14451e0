"""What every ``kdh`` subcommand shares: consoles, logging set-up, failing with a clear message."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

__all__ = ["console", "err_console", "fail", "setup_logging"]

console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: bool) -> None:
    """Log through rich to stderr; INFO for kdh_ai, WARNING for libraries unless ``verbose``."""
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)], force=True)
    logging.getLogger("kdh_ai").setLevel(logging.INFO)
    if not verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error and return the ``typer.Exit`` to raise (exit code ``code``)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
