"""The ``kdh`` command: a thin face over the library (parse arguments, call kdh_ai, print).

Each group of subcommands lives in its own module of this package and is registered here.

Commands do not catch library errors: every command runs inside the one error-to-exit-code map,
:func:`kdh_ai.cli._common.handle_error`. Exit codes: 0 success; 1 the job ran but some item failed (each one
is listed with what to do); 2 bad usage, bad configuration or input, missing model weights (kdh's own errors:
the message says what to do); 3 the job directory is in use by another run; 4 the Label Studio server is down
or refused the API token; 5 a bug in kdh (any exception kdh did not raise on purpose; `kdh -v` shows the
traceback); 130 interrupted.
"""

from __future__ import annotations

import os
from typing import Annotated

import click
import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from kdh_ai.cli import deliver, labelstudio, models, prelabel, qualify, route, select
from kdh_ai.cli._common import handle_error, setup_logging

__all__ = ["WORKFLOW", "app", "main"]

WORKFLOW = ("prelabel", "route", "labelstudio", "push", "pull", "select", "status", "quality", "deliver", "report",
            "feedback", "trainee", "qualify", "models")
"""The commands in the order a lead uses them (``kdh --help`` lists them so); any other command follows."""


_PASS_THROUGH = (typer.Exit, typer.Abort, TyperException, click.exceptions.ClickException, click.exceptions.Exit,
                 click.exceptions.Abort)
"""What commands raise to end with a chosen exit code or a usage error: typer's own (it carries its own copy of
click) and click's."""


class _WorkflowGroup(TyperGroup):
    """Lists the subcommands in workflow order (:data:`WORKFLOW`) rather than in registration order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in WORKFLOW if n in names] + [n for n in names if n not in WORKFLOW]

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; map what it raises to an exit code (:func:`~kdh_ai.cli._common.handle_error`).

        click's own exceptions (usage errors, ``typer.Exit``, Ctrl-C) pass through unchanged.
        """
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns any exception into an exit code
            handle_error(exc, verbose=bool(ctx.params.get("verbose")))


app = typer.Typer(
    name="kdh",
    cls=_WorkflowGroup,
    help="kdh_ai: offline pre-labeling, Label Studio hand-off and quality measurement for client batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(models.app, name="models")
app.add_typer(prelabel.app, name="prelabel")
labelstudio.register(app)  # kdh labelstudio start|stop|status|add-annotator, kdh push|pull|status
route.register(app)  # kdh route
select.register(app)  # kdh select
deliver.register(app)  # kdh deliver, kdh report
qualify.register(app)  # kdh qualify


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show detailed logs.")] = False) -> None:
    setup_logging(verbose)


def main() -> None:
    """Entry point of the ``kdh`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    app()
