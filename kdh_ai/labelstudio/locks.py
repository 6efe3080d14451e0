"""A lock file that one kdh process holds at a time, waited for with a deadline (starting a server, the hub)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exclusive_lock"]


@contextlib.contextmanager
def exclusive_lock(path: Path, *, timeout_s: float, error: Exception) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, mode 0600) for the ``with`` block.

    Another process holding it is waited for, polling every 0.3 s, for at most ``timeout_s`` seconds.

    Args:
        path: The lock file.
        timeout_s: How long to wait for another holder.
        error: Raised when the lock is still held after ``timeout_s`` (its message says what to do).

    Example:
        >>> import tempfile
        >>> lock = Path(tempfile.mkdtemp()) / ".lock"
        >>> with exclusive_lock(lock, timeout_s=1, error=RuntimeError("busy")):
        ...     lock.exists()
        True
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise error from None
                time.sleep(0.3)
        yield
    finally:
        os.close(fd)
