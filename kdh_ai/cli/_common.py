"""What every ``kdh`` subcommand shares: consoles, logging set-up, and the one map from errors to exit codes.

Exit codes (the README lists them too):

* 0: success;
* 1: the job ran, but some item failed (each one is listed with what to do);
* 2: kdh refused to run: bad usage, a bad option, configuration or input, model weights missing on this
  machine, a Ray cluster it cannot use, a full disk, a Label Studio call that failed (the message says what
  to do);
* 3: the job directory is in use by another run;
* 4: the Label Studio server is down, unreachable or refused the API token;
* 5: a bug in kdh: an exception kdh did not raise on purpose. The message says where to report it; ``kdh -v``
  shows the traceback;
* 130: interrupted (Ctrl-C); what was finished is saved.

Commands do not catch library errors themselves: :class:`kdh_ai.errors.KdhError` and its subclasses propagate
to :func:`handle_error`, which the ``kdh`` group calls around every command (see :mod:`kdh_ai.cli`).
"""

from __future__ import annotations

import errno
import logging
import os
import traceback
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from kdh_ai.errors import JobLockedError, KdhError, LabelStudioAuthError, LabelStudioUnavailable

__all__ = ["BUG_EXIT_CODE", "REPORT_BUGS_TO", "console", "err_console", "exit_code_for", "fail", "handle_error",
           "setup_logging"]

console = Console()
err_console = Console(stderr=True)

BUG_EXIT_CODE = 5
"""The exit code of an exception kdh did not raise on purpose (a bug)."""

REPORT_BUGS_TO = "the issue tracker of the kdh_ai repository (or tell your lead)"
"""Where a bug is reported; shown in the bug message."""

_SECRET_VARIABLES = ("KDH_LS_TOKEN", "KDH_HUB_PG_URL", "POSTGRE_PASSWORD")
"""Environment variables whose values a bug's traceback must not show."""

_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (JobLockedError, 3),
    (LabelStudioUnavailable, 4),
    (LabelStudioAuthError, 4),
    (KdhError, 2),
)


def _kdh_errors() -> tuple[type[BaseException], ...]:
    """kdh's own error classes: :class:`KdhError`, and the quality metrics' ``InsufficientDataError``.

    :mod:`kdh_ai.quality` imports nothing else of kdh_ai (its metrics stand alone), so its error is a plain
    ``ValueError`` subclass rather than a :class:`KdhError`; it is kdh's own all the same.
    """
    from kdh_ai.quality import InsufficientDataError

    return KdhError, InsufficientDataError


def exit_code_for(exc: BaseException) -> int:
    """The exit code of ``exc``: 2, 3 or 4 for kdh's own errors (and a full disk), 5 for anything else (a bug).

    Example:
        >>> from kdh_ai.errors import InvalidInputError, JobLockedError
        >>> exit_code_for(JobLockedError("busy")), exit_code_for(InvalidInputError("bad")), exit_code_for(
        ...     ValueError("a bug"))
        (3, 2, 5)
    """
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 2
    if isinstance(exc, _kdh_errors()):
        return next((code for cls, code in _CODES if isinstance(exc, cls)), 2)
    return BUG_EXIT_CODE


def handle_error(exc: Exception, *, verbose: bool = False) -> NoReturn:
    """Print ``exc`` for a person and exit with its code (:func:`exit_code_for`).

    kdh's own errors print their message (it says what to do; it never holds a secret). A full disk says
    what to free. Anything else is a bug: a short message with the exception's type, where to report it and
    ``-v`` for the traceback. The exception's own text is not printed then, since it may come from a
    library that put a secret in it; with ``-v`` the traceback is printed, with the values of the secret
    environment variables and any ``Token``/``Bearer`` header value replaced by ``***``.
    """
    code = exit_code_for(exc)
    if code != BUG_EXIT_CODE:
        if isinstance(exc, OSError) and not isinstance(exc, KdhError):
            raise fail(f"no space left on the device of {exc.filename or 'the job directory'}: free some space, "
                       "then run the same command again (nothing was half-written; it resumes)", code) from None
        raise fail(escape(str(exc)), code) from None  # a message is text, not rich markup
    if verbose:
        from kdh_ai.labelstudio.client import redact

        text = "".join(traceback.format_exception(exc))
        err_console.print(escape(redact(text, *(os.environ.get(k) for k in _SECRET_VARIABLES))), highlight=False)
    err_console.print(f"[bold red]error:[/] this is a bug in kdh ({type(exc).__name__} in {_where(exc)}), not "
                      f"something you did wrong. Please report it to {REPORT_BUGS_TO} with the command you ran"
                      + ("." if verbose else " and the output of the same command with `kdh -v ...` (it shows "
                         "the traceback)."))
    raise typer.Exit(BUG_EXIT_CODE) from None


def _where(exc: BaseException) -> str:
    """``module.function`` of the innermost frame of ``exc``'s traceback (where it was raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "kdh"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} {last.name}"


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
