"""The errors kdh_ai raises on purpose: one base, :class:`KdhError`, and a subclass for each kind of trouble.

Every exception the library raises for a reason a user can act on (bad input or options, a job directory in
use, model weights not on this machine, a Label Studio server that is down or refuses the token) is a
:class:`KdhError`; its message names the item or option and says what to do. Anything else that escapes the
library is a bug. The ``kdh`` command relies on this split: it maps kdh's own errors to exit codes
(:func:`kdh_ai.cli._common.exit_code_for`) and reports any other exception as a bug (exit code 5).

The kinds keep their old built-in base as a second base, so ``except ValueError`` and ``except RuntimeError``
written before this module existed still catch them:

- :class:`InvalidInputError` (a ``ValueError``): an input, option or file cannot be used as given;
  :class:`InputFileNotFoundError` is the case of a file that does not exist (also a ``FileNotFoundError``);
- :class:`JobLockedError` (a ``RuntimeError``): another process is writing to the job directory;
- :class:`ModelNotAvailableError` (a ``RuntimeError``): a model's weights are not on this machine;
- :class:`LabelStudioError` (a ``RuntimeError``): a Label Studio call or the local server failed; its
  subclasses :class:`LabelStudioUnavailable` (no answer after all retries) and :class:`LabelStudioAuthError`
  (the token was refused).

Other modules subclass these for their own cases (``ConfigError``, ``LabelsError``, ``RoutingError``,
``PostgresError``, ...) and stay importable from where they always were. The one exception that is not a
:class:`KdhError` is :class:`kdh_ai.quality.InsufficientDataError`: :mod:`kdh_ai.quality` imports nothing else
of kdh_ai so that its metrics can be used on their own; it is a ``ValueError`` and the CLI maps it as a kdh
error too.

This module imports nothing else of kdh_ai, so every layer may import it.

Example:
    >>> from kdh_ai.errors import InvalidInputError, KdhError
    >>> try:
    ...     raise InvalidInputError("--n must be at least 1, got 0")
    ... except KdhError as exc:
    ...     print(type(exc).__name__, isinstance(exc, ValueError), exc)
    InvalidInputError True --n must be at least 1, got 0
"""

from __future__ import annotations

__all__ = [
    "InputFileNotFoundError",
    "InvalidInputError",
    "JobLockedError",
    "KdhError",
    "LabelStudioAuthError",
    "LabelStudioError",
    "LabelStudioUnavailable",
    "ModelNotAvailableError",
]


class KdhError(Exception):
    """Base of every error kdh_ai raises on purpose; the message says what is wrong and what to do.

    Messages never hold a secret (API tokens, passwords): they may be printed, logged or shown in a report.
    """


class InvalidInputError(KdhError, ValueError):
    """An input, option or file cannot be used as given (the message names it and what to do)."""


class InputFileNotFoundError(InvalidInputError, FileNotFoundError):
    """A file the user named does not exist (also a ``FileNotFoundError``)."""


class JobLockedError(KdhError, RuntimeError):
    """Another process is already writing to this job directory."""


class ModelNotAvailableError(KdhError, RuntimeError):
    """The model's weights are not on this machine (the message says how to get them, offline)."""


class LabelStudioError(KdhError, RuntimeError):
    """A Label Studio call failed (the message names the call and what to do; it never holds the token)."""


class LabelStudioUnavailable(LabelStudioError):
    """The server did not answer (down, unreachable, or failing) after all retries."""


class LabelStudioAuthError(LabelStudioError):
    """The server refused the API token (HTTP 401/403)."""
