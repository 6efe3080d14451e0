"""Keep the libraries kdh_ai runs from reaching the network: the hub promises clients that nothing leaves.

kdh_ai itself talks only to Label Studio (on 127.0.0.1, or the hub's own server). Some of the libraries it runs
would phone home on their own:

- **onnxruntime** (faster-whisper's Silero VAD runs on it) ships Microsoft's 1DS telemetry on Linux since 1.2x:
  at ``import onnxruntime`` it creates a device id and an event store under
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``, records process, session and performance events, and a
  background thread uploads them to ``mobile.events.data.microsoft.com`` (DNS lookups, then HTTPS every few
  seconds while the name resolves). ``onnxruntime.disable_telemetry_events()`` does not stop this uploader;
  only the environment variable ``ORT_DISABLE_TELEMETRY=1``, read once when the library is imported, does
  (no event store, no thread, no lookup).
- **Hugging Face** libraries (sentence-transformers for MiniLM) would look models up on the Hub and send usage
  telemetry: ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` and ``HF_HUB_DISABLE_TELEMETRY`` turn that off.

:func:`enforce_offline` sets these variables; ``import kdh_ai`` calls it, before anything can import
onnxruntime, so every entry point (the ``kdh`` command, pipelines, notebooks, Ray workers, tests) gets it.
``ORT_DISABLE_TELEMETRY`` is always forced to ``1``; the Hugging Face switches are defaults a user may
override. A process that imported onnxruntime *before* kdh_ai keeps onnxruntime's telemetry running (the
variable is read only at that import): :func:`enforce_offline` then logs a warning that says what to do.
``tests/test_offline.py`` checks the whole promise with a network namespace and a syscall trace.

Example:
    >>> import os, kdh_ai
    >>> os.environ["ORT_DISABLE_TELEMETRY"]
    '1'
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["FORCED_ENV", "DEFAULT_ENV", "enforce_offline"]

logger = logging.getLogger(__name__)

#: Always set: there is no legitimate reason for a kdh run to send telemetry.
FORCED_ENV: dict[str, str] = {"ORT_DISABLE_TELEMETRY": "1"}
#: Set unless the user has set them (models come from local packages, never from a hub).
DEFAULT_ENV: dict[str, str] = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def enforce_offline() -> bool:
    """Switch off the network features of the libraries kdh_ai runs (see the module docstring).

    Returns:
        True when the switches are in effect; False when onnxruntime was already imported with its telemetry
        on (a warning is logged: that process can still try to reach Microsoft's telemetry host).
    """
    late = "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != "1"
    os.environ.update(FORCED_ENV)
    for name, value in DEFAULT_ENV.items():
        os.environ.setdefault(name, value)
    if late:
        logger.warning("onnxruntime was imported before kdh_ai, with its telemetry on: this process may try to "
                       "reach mobile.events.data.microsoft.com. Import kdh_ai first, or start Python with "
                       "ORT_DISABLE_TELEMETRY=1 in the environment")
    return not late
