"""A Label Studio client with retries, backoff, clear errors and a token that never leaks.

:class:`LabelStudioClient` wraps the official ``label-studio-sdk`` client. Every call goes through one retry
loop: a connection refused, a timeout or an answer 5xx/429/408 is retried with exponential backoff (and jitter),
then fails with :class:`LabelStudioUnavailable`, whose message names the server and what to do. Calls that are
not idempotent (a bulk import, creating an annotation) are retried only when the request never reached the
server (the connection was refused); any other failure surfaces at once, and the caller (``push``) reconciles
with the server before trying again, so a retry cannot create duplicates.

**Fail fast when the server dies.** Connecting has its own short timeout (``connect_timeout_s``, 5 s) next to
the long wait for an answer (``timeout_s``, 120 s: a large export is slow but alive). A call that has waited
``probe_after_s`` asks the server's ``/health`` on the side; when that stays silent ``probes`` times in a row,
the server is hung (stopped, swapping, wedged) and the call gives up at once instead of waiting out its read
timeout and retrying. Once a call has given up on an unavailable server, the client's circuit breaker opens:
every further call (from any thread) fails at once with the same message, without touching the network, for
``breaker_reset_s``; then one call may try again (and closes the breaker when it works). So a server killed
or stopped in the middle of a push of thousands of per-task updates costs one clear error within about a
minute, not one retry loop per task.

The API token is held only in memory: every message that leaves this module (exceptions, log lines) goes
through :func:`redact`, which replaces it with ``***``. ``repr(connection)`` does not show it either.

Example:
    >>> redact("401 for Token abcdef0123456789abcdef", "abcdef0123456789abcdef")
    '401 for Token ***'
    >>> str(Connection(url="http://127.0.0.1:8080/", token="s3cret-token-value"))
    "Connection(url='http://127.0.0.1:8080', local=False, files_root=None)"
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from kdh_ai.errors import InvalidInputError, LabelStudioAuthError, LabelStudioError, LabelStudioUnavailable

__all__ = [
    "Connection",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioUnavailable",
    "RetryPolicy",
    "redact",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_AUTH_PATTERN = re.compile(r"((?:Token|Bearer)\s+)[A-Za-z0-9._\-]{8,}")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret replaced by ``***``, and any ``Token X`` / ``Bearer X`` header value hidden.

    Args:
        text: Any message.
        *secrets: The values to hide (``None`` and very short values are ignored).

    Example:
        >>> redact("Authorization: Bearer eyJhbGciOi.J9.x", None)
        'Authorization: Bearer ***'
    """
    out = str(text)
    for s in secrets:
        if s and len(s) >= 6:
            out = out.replace(s, "***")
    return _AUTH_PATTERN.sub(r"\1***", out)


@dataclass(frozen=True)
class Connection:
    """Where the server is and how to authenticate.

    Attributes:
        url: Base URL, e.g. ``http://127.0.0.1:8080``.
        token: API token (a legacy token or a Personal Access Token). Never printed.
        local: True when kdh runs this server on this machine (audio goes through local-files storage).
        files_root: The server's local-files document root (local servers only).
    """

    url: str
    token: str = field(repr=False)
    local: bool = False
    files_root: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if not self.token:
            raise InvalidInputError("a Label Studio connection needs an API token (KDH_LS_TOKEN)")

    def __str__(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up, and how soon to see that the server is dead.

    Attributes:
        attempts: Total tries of a call (1 = no retry).
        backoff_s: Wait before the first retry; doubled at each further retry (with +-20 % jitter).
        max_backoff_s: Longest wait between two tries.
        timeout_s: Longest wait for the answer to one HTTP request once connected (a live server may be slow).
        connect_timeout_s: Longest wait to open a connection (short: a live server accepts at once).
        probe_after_s: A call that has waited this long checks ``/health`` on the side, again after each such
            wait (``None``: never; the call then waits up to ``timeout_s``).
        probe_timeout_s: How long one ``/health`` check may take.
        probes: Consecutive failed checks after which the server counts as hung and the call gives up.
        breaker_reset_s: How long the circuit breaker stays open (every call fails at once) after a call gave
            up on an unavailable server; then one call may try again.
    """

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    probe_after_s: float | None = 15.0
    probe_timeout_s: float = 10.0
    probes: int = 2
    breaker_reset_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("backoff_s must be >= 0, timeout_s and connect_timeout_s > 0")
        if (self.probe_after_s is not None and self.probe_after_s <= 0) or self.probe_timeout_s <= 0 \
                or self.probes < 1 or self.breaker_reset_s < 0:
            raise ValueError("probe_after_s and probe_timeout_s must be > 0, probes >= 1, breaker_reset_s >= 0")

    @property
    def http_timeout(self) -> httpx.Timeout:
        """The httpx timeout: ``connect_timeout_s`` to connect, ``timeout_s`` for the rest."""
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        base = min(self.backoff_s * (2.0 ** retry), self.max_backoff_s)
        return base * (1.0 + random.uniform(-0.2, 0.2))


class _ServerHung(Exception):
    """The server stopped answering ``/health`` while a call waited for it (internal)."""


class _Breaker:
    """The circuit breaker of one client (thread-safe): open after a call gave up on an unavailable server."""

    def __init__(self, reset_s: float) -> None:
        self.reset_s = reset_s
        self._lock = threading.Lock()
        self._message: str | None = None
        self._opened_at = 0.0
        self._trial = False

    def check(self) -> str | None:
        """The error message while open (the caller fails at once); ``None`` when the call may go ahead."""
        with self._lock:
            if self._message is None:
                return None
            if time.monotonic() - self._opened_at >= self.reset_s and not self._trial:
                self._trial = True  # half-open: this one call tries the server again
                return None
            return self._message

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._message is not None

    def open(self, message: str) -> None:
        with self._lock:
            first = self._message is None
            self._message, self._opened_at, self._trial = message, time.monotonic(), False
        if first:  # the caller raises the message itself: one clear error, not two
            logger.debug("circuit breaker open: %s", message)

    def close(self) -> None:
        with self._lock:
            if self._message is not None:
                logger.info("Label Studio answers again; circuit breaker closed")
            self._message, self._trial = None, False


class LabelStudioClient:
    """The Label Studio API, with retries and token redaction (see the module docstring).

    Args:
        connection: Server URL and token.
        retry: Retry policy.

    Attributes:
        sdk: The full ``label_studio_sdk.LabelStudio`` client, built on first use (importing it costs seconds:
            it compiles grammars), with its own retries off. Plain calls use the SDK's authenticated HTTP
            client directly, which handles both legacy tokens and Personal Access Tokens.
    """

    def __init__(self, connection: Connection, *, retry: RetryPolicy | None = None) -> None:
        from label_studio_sdk.core.client_wrapper import SyncClientWrapper

        self.connection = connection
        self.retry = retry or RetryPolicy()
        self._wrapper = SyncClientWrapper(api_key=connection.token, base_url=connection.url,
                                          httpx_client=httpx.Client(timeout=self.retry.http_timeout),
                                          timeout=None, max_retries=0)
        self._sdk: Any = None
        self._breaker = _Breaker(self.retry.breaker_reset_s)

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            from label_studio_sdk import LabelStudio

            self._sdk = LabelStudio(base_url=self.connection.url, api_key=self.connection.token,
                                    timeout=self.retry.timeout_s, max_retries=0,
                                    httpx_client=httpx.Client(timeout=self.retry.http_timeout,
                                                              follow_redirects=True))
        return self._sdk

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.connection.url!r})"

    @property
    def url(self) -> str:
        return self.connection.url

    # ---- the retry loop ----------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return redact(text, self.connection.token)

    def call(self, fn: Callable[[], T], *, what: str, idempotent: bool = True) -> T:
        """Run ``fn`` (one SDK or HTTP call) with retries; raise a redacted :class:`LabelStudioError`.

        Args:
            fn: The call.
            what: What the call does, for messages ("import 1000 tasks into project 3").
            idempotent: Whether repeating the call is harmless. A call that is not is retried only when
                the connection was refused (the request never reached the server).

        Raises:
            LabelStudioUnavailable: The server is down, unreachable, hung or failing (after the retries; at once
                while the circuit breaker is open).
            LabelStudioAuthError: The token was refused.
            LabelStudioError: The server rejected the call.
        """
        from label_studio_sdk.core.api_error import ApiError

        last = ""
        for attempt in range(self.retry.attempts):
            if (open_msg := self._breaker.check()) is not None:
                raise LabelStudioUnavailable(open_msg) from None
            retriable = False
            t0 = time.perf_counter()
            try:
                out = self._watched(fn)
                logger.debug("Label Studio %s: %.2f s", what, time.perf_counter() - t0)
                self._breaker.close()
                return out
            except _ServerHung as exc:
                last = str(exc)
                break  # waiting again for a server that does not answer /health would only add minutes
            except httpx.ConnectTimeout as exc:
                last, retriable = (f"cannot connect within {self.retry.connect_timeout_s:.0f} s "
                                   f"({type(exc).__name__})"), True
            except httpx.ConnectError as exc:
                last, retriable = f"cannot connect ({type(exc).__name__})", True
            except httpx.TimeoutException as exc:
                last, retriable = f"no answer within {self.retry.timeout_s:.0f} s ({type(exc).__name__})", idempotent
            except httpx.TransportError as exc:
                last, retriable = f"connection broken ({type(exc).__name__}: {exc})", idempotent
            except ApiError as exc:
                code = exc.status_code or 0
                body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)
                if code not in _RETRY_STATUS:
                    self._breaker.close()  # the server is up: it answered
                if code in (401, 403):
                    raise LabelStudioAuthError(self._redact(
                        f"Label Studio at {self.url} refused the API token for {what} (HTTP {code}: "
                        f"{body[:300]}); check KDH_LS_TOKEN, or run `kdh labelstudio status`")) from None
                if code in _RETRY_STATUS:
                    last, retriable = f"HTTP {code}: {body[:300]}", idempotent
                else:
                    raise LabelStudioError(self._redact(
                        f"Label Studio at {self.url} rejected {what}: HTTP {code}: {body[:1000]}")) from None
            if not retriable:
                break
            if attempt + 1 < self.retry.attempts:
                wait = self.retry.delay(attempt)
                # the first retry of an outage is a warning; the others (other threads too) are details
                level = logging.DEBUG if attempt or self._breaker.is_open else logging.WARNING
                logger.log(level, "%s", self._redact(f"Label Studio {what}: {last}; retrying in {wait:.1f} s "
                                                     f"({attempt + 1}/{self.retry.attempts - 1})"))
                time.sleep(wait)
        message = self._redact(
            f"Label Studio at {self.url} did not complete {what}: {last}. Is the server running and reachable? "
            "Check with `kdh labelstudio status`, then run the same command again (it resumes and never "
            "duplicates work)")
        if last.startswith(("cannot connect", "no answer", "connection broken", "stopped answering", "HTTP 5")):
            self._breaker.open(message)  # the server is unavailable: every further call fails at once
        raise LabelStudioUnavailable(message) from None

    def _watched(self, fn: Callable[[], T]) -> T:
        """``fn()``, checking ``/health`` on the side while it waits (raises :class:`_ServerHung`)."""
        every = self.retry.probe_after_s
        if every is None:
            return fn()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                box["exc"] = exc

        worker = threading.Thread(target=run, name="kdh-labelstudio-call", daemon=True)
        t0 = time.monotonic()
        worker.start()
        misses = 0
        while True:
            worker.join(every)
            if not worker.is_alive():
                break
            if self._probe():
                misses = 0
                continue
            misses += 1
            if misses >= self.retry.probes:
                # the worker thread is left to end at its own read timeout (a daemon: it never blocks exit)
                raise _ServerHung(f"stopped answering: no reply for {time.monotonic() - t0:.0f} s and "
                                  f"/health silent {misses} times in a row (hung, stopped or overloaded)")
        if "exc" in box:
            raise box["exc"]
        return box["out"]

    def _probe(self) -> bool:
        """Whether ``/health`` answers within ``probe_timeout_s`` (any HTTP answer means the server is alive)."""
        try:
            httpx.get(f"{self.url}/health", timeout=self.retry.probe_timeout_s)
            return True
        except httpx.HTTPError:
            return False

    def request(self, method: str, path: str, *, what: str, idempotent: bool | None = None,
                json_body: Any = None, params: dict[str, Any] | None = None, data: Any = None,
                files: dict[str, Any] | None = None, content: bytes | None = None,
                headers: dict[str, str] | None = None, timeout_s: float | None = None) -> httpx.Response:
        """One raw HTTP call through the SDK's authenticated client (used where the SDK has no method, or is
        slow for bulk work). Raises on any non-2xx answer.

        Args:
            method: ``GET``, ``POST``, ``PATCH``...
            path: API path relative to the base URL (``api/projects/3/export``).
            what: What the call does, for messages.
            idempotent: Default: True for GET/PUT/PATCH/DELETE/HEAD, False for POST.
            json_body: A JSON body (encoded by the SDK).
            content: A body already encoded (give ``headers={"Content-Type": ...}``); faster for bulk JSON.
            files: Multipart files ``{field: (name, fileobj, mime)}``; each file needs its own field name.
        """
        from label_studio_sdk.core.api_error import ApiError

        if idempotent is None:
            idempotent = method.upper() != "POST"
        http = self._wrapper.httpx_client
        opts: dict[str, Any] = {"max_retries": 0, "timeout": httpx.Timeout(
            timeout_s or self.retry.timeout_s, connect=self.retry.connect_timeout_s)}

        def once() -> httpx.Response:
            resp = http.request(path.lstrip("/"), method=method.upper(), json=json_body, params=params, data=data,
                                files=files, content=content, headers=headers, request_options=opts)
            if resp.status_code >= 400:
                try:
                    body: Any = resp.json()
                except ValueError:
                    body = resp.text[:1000]
                raise ApiError(status_code=resp.status_code, body=body)
            return resp

        return self.call(once, what=what, idempotent=idempotent)

    def get_json(self, path: str, *, what: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and decode its JSON answer."""
        return self.request("GET", path, what=what, params=params).json()

    # ---- health ------------------------------------------------------------------------------------------
    def health(self) -> bool:
        """Whether ``/health`` answers ``UP`` right now (one try, no retry; a yes closes the circuit breaker)."""
        try:
            resp = httpx.get(f"{self.url}/health", timeout=httpx.Timeout(5.0, connect=self.retry.connect_timeout_s))
            up = resp.status_code == 200 and resp.json().get("status") == "UP"
        except (httpx.HTTPError, ValueError):
            return False
        if up:
            self._breaker.close()
        return up

    def version(self) -> str | None:
        """The server's Label Studio version (``None`` when it does not say)."""
        info = self.get_json("api/version/", what="read the server version")
        release = info.get("release") if isinstance(info, dict) else None
        if release is None and isinstance(info, dict):
            release = (info.get("label-studio-os-package") or {}).get("version")
        return release

    def whoami(self) -> dict[str, Any]:
        """The user the token belongs to (``id``, ``email``...)."""
        return self.get_json("api/current-user/whoami", what="identify the token's user")

    # ---- paging helpers ----------------------------------------------------------------------------------
    def iter_tasks(self, project_id: int, *, fields: str = "task_only", page_size: int = 1000,
                   query: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every task of a project as a plain dict, one page at a time (lazy)."""
        page = 1
        while True:
            params: dict[str, Any] = {"project": project_id, "page": page, "page_size": page_size,
                                      "fields": fields}
            if query is not None:
                params["query"] = json.dumps(query)
            try:
                body = self.get_json("api/tasks/", what=f"list the tasks of project {project_id} (page {page})",
                                     params=params)
            except LabelStudioError as exc:
                if "HTTP 404" in str(exc) and page > 1:  # past the last page
                    return
                raise
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            yield from tasks
            total = body.get("total") if isinstance(body, dict) else None
            if not tasks or len(tasks) < page_size or (total is not None and page * page_size >= total):
                return
            page += 1

    def users(self) -> list[dict[str, Any]]:
        """All users of the organization, as dicts (``id``, ``email``, ``first_name``...)."""
        body = self.get_json("api/users/", what="list users")
        return body if isinstance(body, list) else body.get("results", [])
