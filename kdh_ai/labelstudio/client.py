"""A Label Studio client with retries, backoff, clear errors and a token that never leaks.

:class:`LabelStudioClient` wraps the official ``label-studio-sdk`` client. Every call goes through one retry
loop: a connection refused, a timeout or an answer 5xx/429/408 is retried with exponential backoff (and jitter),
then fails with :class:`LabelStudioUnavailable`, whose message names the server and what to do. Calls that are
not idempotent (a bulk import, creating an annotation) are retried only when the request never reached the
server (the connection was refused); any other failure surfaces at once, and the caller (``push``) reconciles
with the server before trying again, so a retry cannot create duplicates.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

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


class LabelStudioError(RuntimeError):
    """A Label Studio call failed (the message names the call and what to do; it never holds the token)."""


class LabelStudioUnavailable(LabelStudioError):
    """The server did not answer (down, unreachable, or failing) after all retries."""


class LabelStudioAuthError(LabelStudioError):
    """The server refused the API token (HTTP 401/403)."""


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
            raise ValueError("a Label Studio connection needs an API token (KDH_LS_TOKEN)")

    def __str__(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up.

    Attributes:
        attempts: Total tries of a call (1 = no retry).
        backoff_s: Wait before the first retry; doubled at each further retry (with +-20 % jitter).
        max_backoff_s: Longest wait between two tries.
        timeout_s: Timeout of one HTTP request.
    """

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("backoff_s must be >= 0 and timeout_s > 0")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        base = min(self.backoff_s * (2.0 ** retry), self.max_backoff_s)
        return base * (1.0 + random.uniform(-0.2, 0.2))


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
                                          httpx_client=httpx.Client(timeout=self.retry.timeout_s),
                                          timeout=self.retry.timeout_s, max_retries=0)
        self._sdk: Any = None

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            from label_studio_sdk import LabelStudio

            self._sdk = LabelStudio(base_url=self.connection.url, api_key=self.connection.token,
                                    timeout=self.retry.timeout_s, max_retries=0)
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
        """
        from label_studio_sdk.core.api_error import ApiError

        last = ""
        for attempt in range(self.retry.attempts):
            retriable = False
            t0 = time.perf_counter()
            try:
                out = fn()
                logger.debug("Label Studio %s: %.2f s", what, time.perf_counter() - t0)
                return out
            except httpx.ConnectError as exc:
                last, retriable = f"cannot connect ({type(exc).__name__})", True
            except httpx.TimeoutException as exc:
                last, retriable = f"no answer within {self.retry.timeout_s:.0f} s ({type(exc).__name__})", idempotent
            except httpx.TransportError as exc:
                last, retriable = f"connection broken ({type(exc).__name__}: {exc})", idempotent
            except ApiError as exc:
                code = exc.status_code or 0
                body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)
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
                logger.warning("%s", self._redact(f"Label Studio {what}: {last}; retrying in {wait:.1f} s "
                                                  f"({attempt + 1}/{self.retry.attempts - 1})"))
                time.sleep(wait)
        raise LabelStudioUnavailable(self._redact(
            f"Label Studio at {self.url} did not complete {what}: {last}. Is the server running and reachable? "
            "Check with `kdh labelstudio status`, then run the same command again (it resumes and never "
            "duplicates work)")) from None

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
        opts: dict[str, Any] = {"max_retries": 0}
        if timeout_s is not None:
            opts["timeout_in_seconds"] = timeout_s

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
        """Whether ``/health`` answers ``UP`` right now (one try, no retry)."""
        try:
            resp = httpx.get(f"{self.url}/health", timeout=5.0)
            return resp.status_code == 200 and resp.json().get("status") == "UP"
        except (httpx.HTTPError, ValueError):
            return False

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
