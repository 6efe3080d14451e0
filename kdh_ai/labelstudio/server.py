"""Run a local Label Studio server, or connect to a central one, without a browser.

A **local** server runs ``label-studio`` (pinned, from the ``.venv-ls`` virtual environment that ``make``
creates: it pins Django and much else, so it never shares kdh's environment) as a background process:

* bound to ``127.0.0.1`` by default; ``lan=True`` binds ``0.0.0.0`` so annotators on other machines of the hub
  can connect (a warning is logged: anyone on the network can then reach the login page);
* SQLite in the data directory (default ``~/.kdh/labelstudio``, or ``KDH_LS_DATA_DIR``); PostgreSQL when
  ``database="postgresql"``, configured with the ``POSTGRE_NAME/USER/PASSWORD/HOST/PORT`` environment variables;
* no outbound calls: Sentry, the PyPI version check and analytics are off;
* the admin account and its API token are provisioned on first start from random values kept in
  ``DATA_DIR/kdh-secrets.json`` (mode 0600, in a 0700 directory). They are passed to the server through its
  environment, never on its command line, and never written anywhere else;
* local-files serving is on, with a **narrow** document root, ``DATA_DIR/files``: push links each project's
  audio into ``DATA_DIR/files/<project folder>/`` (see :mod:`kdh_ai.labelstudio` for why a wide root leaks);
* starting twice does not start a second server (a lock and the recorded pid), and a busy port is a clear error.

On the hub, :mod:`kdh_ai.labelstudio.hub` runs one such server per client (own data directory, port,
PostgreSQL database and admin account); :func:`kdh_ai.labelstudio.connection.resolve_connection` finds a job's client instance.

Annotator accounts (sign-up, log-in for a token, simulated accounts) are in :mod:`kdh_ai.labelstudio.accounts`;
their names are importable from here too.

A **remote** (central) server is used when ``KDH_LS_URL`` and ``KDH_LS_TOKEN`` are set: the same commands then
check it, and audio goes up by upload. ``stop`` refuses to touch a server kdh did not start.

Example:
    >>> from kdh_ai.labelstudio.server import ServerOptions
    >>> ServerOptions(port=8090, lan=True).bind_host
    '0.0.0.0'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from kdh_ai.errors import InvalidInputError
from kdh_ai.job import write_json_atomic
from kdh_ai.labelstudio.accounts import SIMULATED_NAME, Annotator, add_annotator, is_simulated, login_token
from kdh_ai.labelstudio.client import (
    Connection,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioError,
    LabelStudioUnavailable,
    redact,
)
from kdh_ai.labelstudio.locks import exclusive_lock
from kdh_ai.labelstudio.postgres import PgDatabase
from kdh_ai.records import utc_now

__all__ = [
    "LS_VERSION",
    "SIMULATED_NAME",
    "Annotator",
    "NoServerError",
    "PortBusyError",
    "ServerError",
    "ServerInfo",
    "ServerOptions",
    "ServerStatus",
    "add_annotator",
    "default_data_dir",
    "ensure_server",
    "find_label_studio",
    "is_simulated",
    "local_connection",
    "login_token",
    "env_connection",
    "running_server",
    "server_status",
    "start_server",
    "stop_server",
]

logger = logging.getLogger(__name__)

LS_VERSION = "1.23.2"
"""The Label Studio version kdh is tested with (``make`` pins it in ``.venv-ls``)."""

_STATE = "kdh-server.json"
_SECRETS = "kdh-secrets.json"
_LOG = "server.log"
_DROP_ENV = ("HOST", "PORT", "USERNAME", "PASSWORD", "DEBUG", "USER_TOKEN", "KDH_LS_TOKEN", "KDH_LS_URL",
             "DJANGO_DB", "SENTRY_DSN", "FRONTEND_SENTRY_DSN")


class ServerError(LabelStudioError):
    """The local server cannot be started, stopped or found (the message says what to do)."""


class PortBusyError(ServerError):
    """The port is already used by another program."""


class NoServerError(ServerError, LabelStudioUnavailable):
    """No Label Studio server to talk to: none configured, or the local one's process is gone (``kdh`` exit
    code 4, like any server that is down)."""


def default_data_dir() -> Path:
    """``KDH_LS_DATA_DIR`` if set, else ``~/.kdh/labelstudio``."""
    env = os.environ.get("KDH_LS_DATA_DIR")
    return Path(env).expanduser().resolve() if env else Path.home() / ".kdh" / "labelstudio"


def find_label_studio() -> Path:
    """The ``label-studio`` executable of the dedicated environment.

    Looked up in ``KDH_LS_BIN``, then ``.venv-ls/bin/label-studio`` next to the kdh_ai source tree.

    Raises:
        ServerError: Not installed (the message says how to install it).
    """
    env = os.environ.get("KDH_LS_BIN")
    candidates = [Path(env).expanduser()] if env else []
    repo = Path(__file__).resolve().parents[2]
    candidates.append(repo / ".venv-ls" / "bin" / "label-studio")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ServerError(
        f"Label Studio is not installed (looked for {', '.join(str(c) for c in candidates)}). Run "
        f"`make .venv-ls/.installed` in the kdh_ai folder (it creates .venv-ls with label-studio=={LS_VERSION}), "
        "or point KDH_LS_BIN to a label-studio executable")


@dataclass(frozen=True)
class ServerOptions:
    """How to run the local server.

    Attributes:
        data_dir: Data directory (database, media, secrets); default :func:`default_data_dir`.
        port: TCP port.
        lan: Bind every interface (``0.0.0.0``) so other machines of the hub can connect.
        database: ``"sqlite"`` (in the data directory) or ``"postgresql"`` (``POSTGRE_*`` environment variables).
        postgres: The database to use when ``database="postgresql"`` (the hub gives each client its own); when
            ``None``, Label Studio reads the ``POSTGRE_*`` environment variables.
        start_timeout_s: How long to wait for the server to answer (the first start runs the database migrations).
        task_lock_ttl_s: How long a task opened by an annotator stays reserved for them (LS default: 24 h).
        admin_email: The admin account's e-mail (its password and token are random, in the secrets file).
    """

    data_dir: Path | None = None
    port: int = 8080
    lan: bool = False
    database: Literal["sqlite", "postgresql"] = "sqlite"
    postgres: PgDatabase | None = None
    start_timeout_s: float = 180.0
    task_lock_ttl_s: int = 3600
    admin_email: str = "admin@kdh.local"

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise InvalidInputError(f"port must lie in 1..65535, got {self.port}")
        if self.database not in ("sqlite", "postgresql"):
            raise InvalidInputError(f"database must be 'sqlite' or 'postgresql', got {self.database!r}")
        if self.start_timeout_s <= 0 or self.task_lock_ttl_s <= 0:
            raise InvalidInputError("start_timeout_s and task_lock_ttl_s must be > 0")

    @property
    def bind_host(self) -> str:
        return "0.0.0.0" if self.lan else "127.0.0.1"  # nosec B104: only on explicit request

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir).expanduser().resolve() if self.data_dir else default_data_dir()


@dataclass(frozen=True)
class ServerInfo:
    """A running local server.

    Attributes:
        url: URL for kdh on this machine (``http://127.0.0.1:PORT``).
        lan_url: URL for annotators on other machines (only when bound to the LAN).
        pid: Server process id.
        data_dir: Its data directory.
        files_root: Its local-files document root.
        already_running: True when the call found it running and started nothing.
        admin_email: The admin account.
        secrets_path: The file that holds the admin password and API token (mode 0600).
        startup_s: Seconds until it answered (0 when it was already running).
    """

    url: str
    lan_url: str | None
    pid: int
    data_dir: Path
    files_root: Path
    already_running: bool
    admin_email: str
    secrets_path: Path
    startup_s: float = 0.0


@dataclass(frozen=True)
class ServerStatus:
    """What ``kdh labelstudio status`` reports.

    Attributes:
        mode: ``"local"`` (kdh runs it), ``"remote"`` (``KDH_LS_URL``) or ``"none"``.
        url: The server URL (``None`` when there is none).
        running: Whether it answers ``/health``.
        token_ok: Whether the API token is accepted (``None`` when not checked).
        version: Label Studio version, when it answers.
        pid: Process id (local servers).
        data_dir: Data directory (local servers).
        lan_url: URL for other machines, when bound to the LAN.
        user: E-mail of the token's user.
        projects: Number of projects visible to the token.
        message: A hint when something is off.
    """

    mode: str
    url: str | None
    running: bool
    token_ok: bool | None = None
    version: str | None = None
    pid: int | None = None
    data_dir: Path | None = None
    lan_url: str | None = None
    user: str | None = None
    projects: int | None = None
    message: str | None = None


# ---- state files ------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServerError(f"cannot read {path}: {exc}; delete it if the server is stopped") from None


def _load_or_create_secrets(data_dir: Path, admin_email: str) -> dict[str, str]:
    path = data_dir / _SECRETS
    found = _read_json(path)
    if found:
        return found
    if (data_dir / "label_studio.sqlite3").exists():
        raise ServerError(
            f"{data_dir} holds a Label Studio database that kdh did not provision ({_SECRETS} is missing), so "
            "its admin token is unknown; use another data directory (--data-dir) or restore the file")
    data = {"admin_email": admin_email, "admin_password": secrets.token_urlsafe(18),
            "token": secrets.token_hex(20)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return data


def _process_alive(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a label-studio process serving ``data_dir`` (guards against a recycled pid)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "label-studio" in cmd and str(data_dir) in cmd


def _port_busy(host: str, port: int) -> bool:
    """Whether a program listens on ``port``, checked the way Label Studio will bind it.

    Django's server sets ``SO_REUSEADDR`` (as every ``socketserver.TCPServer`` subclass of ``http.server``
    does), so a socket left in TIME-WAIT by a killed server does not stop it; the test bind sets it too,
    or a restart after ``kill -9`` would be refused for a minute.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (empty when it listens on none yet, or is gone)."""
    import psutil

    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return set()
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def _lan_address() -> str:
    """This machine's address on the local network (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def _healthy(url: str) -> bool:
    try:
        r = httpx.get(f"{url}/health", timeout=3.0)
        return r.status_code == 200 and r.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


def _log_tail(path: Path, secrets_: list[str], lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no server log)"
    return redact("\n".join(text), *secrets_)


def _start_lock(data_dir: Path, timeout_s: float) -> contextlib.AbstractContextManager[None]:
    """Held while a server of ``data_dir`` starts, so two kdh runs never start two servers on one data dir."""
    return exclusive_lock(data_dir / ".kdh-start.lock", timeout_s=timeout_s,
                          error=ServerError(f"another kdh is starting the server in {data_dir}; wait and retry"))


# ---- start / stop / status --------------------------------------------------------------------------------
def _running_info(data_dir: Path) -> ServerInfo | None:
    state = _read_json(data_dir / _STATE)
    if not state:
        return None
    if not _process_alive(int(state["pid"]), data_dir):
        return None
    sec = _read_json(data_dir / _SECRETS) or {}
    return ServerInfo(url=state["url"], lan_url=state.get("lan_url"), pid=int(state["pid"]), data_dir=data_dir,
                      files_root=Path(state["files_root"]), already_running=True,
                      admin_email=sec.get("admin_email", ""), secrets_path=data_dir / _SECRETS)


def running_server(data_dir: Path | None = None) -> ServerInfo | None:
    """The local server kdh runs in ``data_dir`` (``None`` when none is running); no network call."""
    return _running_info(Path(data_dir).expanduser().resolve() if data_dir else default_data_dir())


def start_server(options: ServerOptions | None = None) -> ServerInfo:
    """Start the local server in the background, or find it running (then nothing is started).

    Args:
        options: Port, data directory, LAN binding...

    Returns:
        The running server (``already_running`` tells whether this call started it).

    Raises:
        PortBusyError: Another program uses the port.
        ServerError: Not installed, or it did not come up (the message holds the end of its log).
    """
    opts = options or ServerOptions()
    data_dir = opts.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    files_root = data_dir / "files"
    files_root.mkdir(exist_ok=True)
    with _start_lock(data_dir, opts.start_timeout_s):
        running = _running_info(data_dir)
        if running is not None:
            if _healthy(running.url):
                logger.info("Label Studio already running at %s (pid %d)", running.url, running.pid)
                return running
            raise ServerError(f"a Label Studio process (pid {running.pid}) for {data_dir} exists but does not "
                              f"answer at {running.url}; stop it with `kdh labelstudio stop` and start again")
        (data_dir / _STATE).unlink(missing_ok=True)
        exe = find_label_studio()
        if _port_busy(opts.bind_host, opts.port):
            raise PortBusyError(f"port {opts.port} is already in use by another program; choose another with "
                                "--port, or stop that program (Label Studio would silently move to another port)")
        sec = _load_or_create_secrets(data_dir, opts.admin_email)
        env = {k: v for k, v in os.environ.items()
               if k not in _DROP_ENV and not k.startswith(("LABEL_STUDIO_", "HEARTEX_", "POSTGRE_"))}
        env.update({
            "LABEL_STUDIO_USERNAME": sec["admin_email"], "LABEL_STUDIO_PASSWORD": sec["admin_password"],
            "LABEL_STUDIO_USER_TOKEN": sec["token"],
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
            "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false", "TASK_LOCK_TTL": str(opts.task_lock_ttl_s),
            "DJANGO_DB": "sqlite" if opts.database == "sqlite" else "default",
        })
        if opts.database == "postgresql" and opts.postgres is not None:
            env.update(opts.postgres.ls_env())
        elif opts.database == "postgresql":
            env.update({k: v for k, v in os.environ.items() if k.startswith("POSTGRE_")})
        cmd = [str(exe), "start", "--no-browser", "--internal-host", opts.bind_host, "--port", str(opts.port),
               "--data-dir", str(data_dir), "--log-level", "WARNING", "--enable-legacy-api-token"]
        if opts.lan:
            logger.warning("Label Studio will listen on every network interface (port %d): anyone on this "
                           "network can reach its login page. Use only on the hub's own network.", opts.port)
        log_path = data_dir / _LOG
        t0 = time.monotonic()
        with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=devnull,
                                    cwd=data_dir, start_new_session=True)
        url = f"http://127.0.0.1:{opts.port}"
        lan_url = f"http://{_lan_address()}:{opts.port}" if opts.lan else None
        write_json_atomic(data_dir / _STATE, {
            "pid": proc.pid, "url": url, "lan_url": lan_url, "port": opts.port, "host": opts.bind_host,
            "files_root": str(files_root), "started_at": utc_now(), "database": opts.database})
        deadline = t0 + opts.start_timeout_s
        while True:
            ports = _listening_ports(proc.pid)
            if ports and opts.port not in ports:  # another program took the port meanwhile; LS moved on
                _terminate(proc.pid)
                (data_dir / _STATE).unlink(missing_ok=True)
                raise PortBusyError(f"port {opts.port} was taken by another program while Label Studio started "
                                    "(it moved to another port, so it was stopped); start again, with --port if "
                                    "needed")
            if opts.port in ports and _healthy(url):  # our process answers, not another server on the port
                break
            if proc.poll() is not None:
                (data_dir / _STATE).unlink(missing_ok=True)
                raise ServerError(f"Label Studio exited during start-up (code {proc.returncode}); end of "
                                  f"{log_path}:\n{_log_tail(log_path, [sec['token'], sec['admin_password']])}")
            if time.monotonic() > deadline:
                _terminate(proc.pid)
                (data_dir / _STATE).unlink(missing_ok=True)
                raise ServerError(f"Label Studio did not answer within {opts.start_timeout_s:.0f} s; end of "
                                  f"{log_path}:\n{_log_tail(log_path, [sec['token'], sec['admin_password']])}")
            time.sleep(0.5)
        startup = time.monotonic() - t0
        _check_token(Connection(url=url, token=sec["token"], local=True, files_root=files_root), sec)
        logger.info("Label Studio started at %s in %.1f s (pid %d)", url, startup, proc.pid)
        return ServerInfo(url=url, lan_url=lan_url, pid=proc.pid, data_dir=data_dir, files_root=files_root,
                          already_running=False, admin_email=sec["admin_email"],
                          secrets_path=data_dir / _SECRETS, startup_s=startup)


def _check_token(conn: Connection, sec: dict[str, str]) -> None:
    """Make sure the provisioned token works; enable legacy tokens with a PAT when the org has them off."""
    client = LabelStudioClient(conn)
    try:
        client.whoami()
        return
    except LabelStudioAuthError:
        pass
    pat = login_token(conn.url, sec["admin_email"], sec["admin_password"], kind="pat")
    admin = LabelStudioClient(Connection(url=conn.url, token=pat))
    admin.call(lambda: admin.sdk.jwt_settings.update(api_tokens_enabled=True, legacy_api_tokens_enabled=True,
                                                     api_token_ttl_days=73000),
               what="enable legacy API tokens")
    client.whoami()


def _terminate(pid: int, timeout_s: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    import psutil

    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop_server(data_dir: Path | None = None) -> bool:
    """Stop the local server kdh started in ``data_dir``.

    Returns:
        True when a server was stopped, False when none was running.
    """
    data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
    state = _read_json(data_dir / _STATE)
    if not state:
        return False
    pid = int(state["pid"])
    stopped = False
    if _process_alive(pid, data_dir):
        _terminate(pid)
        stopped = True
        logger.info("Label Studio (pid %d) stopped", pid)
    (data_dir / _STATE).unlink(missing_ok=True)
    return stopped


def local_connection(data_dir: Path | None = None) -> Connection | None:
    """A connection to the local server kdh runs in ``data_dir`` (``None`` when it is not running)."""
    data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
    info = _running_info(data_dir)
    if info is None:
        return None
    sec = _read_json(data_dir / _SECRETS) or {}
    if not sec.get("token"):
        return None
    return Connection(url=info.url, token=sec["token"], local=True, files_root=info.files_root)


def env_connection(data_dir: Path | None = None) -> Connection | None:
    """The server named by ``KDH_LS_URL`` + ``KDH_LS_TOKEN``, or ``None`` when neither is set.

    A URL that is in fact a local server kdh runs from ``data_dir`` (same port on this machine) keeps
    local-files audio; any other is treated as remote (audio by upload).

    Raises:
        ServerError: Only one of the two variables is set.
    """
    url, token = os.environ.get("KDH_LS_URL"), os.environ.get("KDH_LS_TOKEN")
    if url and not token or token and not url:
        raise ServerError("set both KDH_LS_URL and KDH_LS_TOKEN to use a central Label Studio server "
                          "(or neither, to use the local one)")
    if not url or not token:
        return None
    local = local_connection(data_dir)
    if local is not None and _same_server(url, local.url):
        return Connection(url=url, token=token, local=True, files_root=local.files_root)
    return Connection(url=url, token=token, local=False)


def _same_server(a: str, b: str) -> bool:
    pa, pb = httpx.URL(a), httpx.URL(b)
    loop = {"127.0.0.1", "localhost", "::1"}
    return pa.port == pb.port and (pa.host == pb.host or (pa.host in loop and pb.host in loop))


def ensure_server(options: ServerOptions | None = None) -> tuple[Connection, bool]:
    """A connection to a usable server, starting the local one if needed (for notebooks and scripts).

    Returns:
        The connection, and whether this call started a server (so the caller may stop it).
    """
    remote = env_connection(options.resolved_data_dir if options else None)
    if remote is not None:
        return remote, False
    info = start_server(options)
    conn = local_connection(info.data_dir)
    if conn is None:  # pragma: no cover - just started
        raise ServerError("the server started but its connection details are missing")
    return conn, not info.already_running


def server_status(data_dir: Path | None = None) -> ServerStatus:
    """Check the server that commands would use (never raises for a down server)."""
    data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
    remote = bool(os.environ.get("KDH_LS_URL") and os.environ.get("KDH_LS_TOKEN"))
    state = _read_json(data_dir / _STATE)
    if remote:
        conn = Connection(url=os.environ["KDH_LS_URL"], token=os.environ["KDH_LS_TOKEN"])
        mode, pid, lan_url = "remote", None, None
    else:
        conn = local_connection(data_dir)
        if conn is None:
            msg = ("not running; start it with `kdh labelstudio start`" if not state
                   else "the recorded process is gone; start it again with `kdh labelstudio start`")
            return ServerStatus(mode="none", url=state.get("url") if state else None, running=False,
                                data_dir=data_dir, message=msg)
        mode, pid, lan_url = "local", int(state["pid"]) if state else None, state.get("lan_url") if state else None
    client = LabelStudioClient(conn)
    if not client.health():
        return ServerStatus(mode=mode, url=conn.url, running=False, pid=pid,
                            data_dir=data_dir if mode == "local" else None,
                            message="does not answer /health; is it up and reachable?")
    try:
        user = client.whoami().get("email")
        body = client.get_json("api/projects/", what="count projects", params={"page_size": 1})
        projects = body.get("count") if isinstance(body, dict) else len(body)
        version = client.version()
        return ServerStatus(mode=mode, url=conn.url, running=True, token_ok=True, version=version, pid=pid,
                            data_dir=data_dir if mode == "local" else None, lan_url=lan_url, user=user,
                            projects=projects)
    except LabelStudioAuthError as exc:
        return ServerStatus(mode=mode, url=conn.url, running=True, token_ok=False, pid=pid, message=str(exc))
    except LabelStudioUnavailable as exc:
        return ServerStatus(mode=mode, url=conn.url, running=False, pid=pid, message=str(exc))
