"""The hub server: one Label Studio instance per client, on PostgreSQL, with backups.

Label Studio Community cannot keep two clients apart inside one instance (any account reads every project
through the API, and a second organization leaks too), so the hub runs **one instance per client**, each with
its own port, data directory, database (and database role), admin account and secrets file::

    HUB_DIR/                   (KDH_HUB_DIR; default /var/lib/kdh/hub for root, else ~/.kdh/hub; mode 0711)
      hub.json                 clients: port, database kind; the PostgreSQL port (mode 0600)
      hub-secrets.json         PostgreSQL superuser and per-client role passwords (mode 0600)
      postgres/                the private PostgreSQL cluster (owned by the postgres user under root)
      clients/NAME/            that client's Label Studio data directory (kdh-secrets.json: its admin token)
      backups/NAME/NAME-TIME/  backups (mode 0700)

PostgreSQL is the default for a client's instance (``database="postgresql"``): kdh starts its own cluster
(:class:`~kdh_ai.labelstudio.postgres.LocalPostgres`) or uses ``KDH_HUB_PG_URL``. SQLite stays available
(``database="sqlite"``) and stays the default of the single, client-less server of a laptop and the demo.

A job records its client in ``job.json`` (``"client"``), so push, pull and status find the right instance
(:func:`kdh_ai.labelstudio.connection.resolve_connection`).

Example:
    >>> check_client_name("acme-health")
    'acme-health'
    >>> database_name("acme-health")
    'kdh_acme_health'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job, write_json_atomic
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, LabelStudioError
from kdh_ai.labelstudio.locks import exclusive_lock
from kdh_ai.labelstudio.postgres import LocalPostgres, PgAdmin, PgDatabase, PostgresError, new_password
from kdh_ai.labelstudio.server import (
    LS_VERSION,
    PortBusyError,
    ServerError,
    ServerInfo,
    ServerOptions,
    _port_busy,
    local_connection,
    running_server,
    start_server,
    stop_server,
)
from kdh_ai.records import utc_now

__all__ = [
    "ClientInstance",
    "Hub",
    "check_client_name",
    "database_name",
    "default_hub_dir",
    "job_client",
    "set_job_client",
]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_REGISTRY = "hub.json"
_SECRETS = "hub-secrets.json"
_FIRST_CLIENT_PORT = 8101
_FIRST_PG_PORT = 5433
# what a backup's archive leaves out of the data directory (the database is backed up on its own)
_NOT_ARCHIVED = {"label_studio.sqlite3", "label_studio.sqlite3-journal", "label_studio.sqlite3-wal",
                 "label_studio.sqlite3-shm", "server.log", "kdh-server.json", ".kdh-start.lock"}


def check_client_name(name: str) -> str:
    """Validate a client name (lowercase letters, digits, ``-``; starts with a letter; at most 31 characters).

    Raises:
        ValueError: Not such a name.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(f"{name!r} is not a valid client name: use lowercase letters, digits and '-', starting "
                         "with a letter, at most 31 characters (e.g. acme-health)")
    return name


def database_name(client: str) -> str:
    """The PostgreSQL database (and role) of a client: ``kdh_<name>`` with ``-`` as ``_``."""
    return "kdh_" + check_client_name(client).replace("-", "_")


def default_hub_dir() -> Path:
    """``KDH_HUB_DIR``; else ``/var/lib/kdh/hub`` for root (the postgres user must reach it), else ``~/.kdh/hub``."""
    env = os.environ.get("KDH_HUB_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path("/var/lib/kdh/hub") if os.geteuid() == 0 else Path.home() / ".kdh" / "hub"


def job_client(job_dir: str | Path) -> str | None:
    """The client a job belongs to (``job.json``'s ``client``), or ``None``."""
    job = Job(Path(job_dir))
    if not job.manifest_path.exists():
        return None
    name = job.read_manifest().get("client")
    return check_client_name(name) if name else None


def set_job_client(job_dir: str | Path, client: str) -> None:
    """Record the job's client in ``job.json`` (once: a job's project lives in one client's instance).

    Raises:
        ValueError: Not a job directory, or the job already belongs to another client.
    """
    check_client_name(client)
    job = Job(Path(job_dir))
    if not job.manifest_path.exists():
        raise InvalidInputError(f"{job.root} is not a job directory (no job.json); run `kdh prelabel` first")
    current = job.read_manifest().get("client")
    if current == client:
        return
    if current:
        raise InvalidInputError(f"{job.root} belongs to client {current!r}, not {client!r}: its Label Studio project lives "
                         f"in {current}'s instance. Drop --client, or make a new job for {client}")
    with job:
        job.update_manifest(client=client)


@dataclass(frozen=True)
class ClientInstance:
    """One client's instance, as ``kdh labelstudio list`` shows it.

    Attributes:
        name: Client name.
        port: Its port.
        database: ``"postgresql"`` or ``"sqlite"``.
        url: URL on this machine.
        running: Whether kdh's process for it runs and answers.
        lan_url: URL for other machines, when it listens on the LAN.
        annotators: Accounts other than the admin (``None`` when it is not running).
        data_dir: Its data directory.
    """

    name: str
    port: int
    database: str
    url: str
    running: bool
    lan_url: str | None
    annotators: int | None
    data_dir: Path


class Hub:
    """The hub's instances (one Label Studio per client) and their PostgreSQL.

    Args:
        root: The hub folder (default :func:`default_hub_dir`).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root else default_hub_dir()

    def __repr__(self) -> str:
        return f"Hub({str(self.root)!r})"

    # ---- files ---------------------------------------------------------------------------------------------
    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # others may traverse (the postgres user), never list
        (self.root / "clients").mkdir(mode=0o700, exist_ok=True)

    def _read(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.root / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ServerError(f"cannot read {self.root / name}: {exc}") from None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        """Write a hub file atomically, readable only by this user from its first byte."""
        self._ensure_root()
        path = self.root / name
        tmp = path.with_name(f".{name}.tmp{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, timeout_s: float = 600.0) -> Iterator[None]:
        self._ensure_root()
        with exclusive_lock(self.root / ".hub.lock", timeout_s=timeout_s,
                            error=ServerError(f"another kdh holds the hub lock in {self.root}; wait and retry")):
            yield

    def clients(self) -> dict[str, dict[str, Any]]:
        """The registered clients: ``{name: {port, database, created_at}}``."""
        return dict(self._read(_REGISTRY).get("clients") or {})

    def data_dir(self, client: str) -> Path:
        """A client's Label Studio data directory."""
        return self.root / "clients" / check_client_name(client)

    # ---- PostgreSQL ------------------------------------------------------------------------------------------
    def local_postgres(self) -> LocalPostgres | None:
        """kdh's own cluster for this hub (``None`` when ``KDH_HUB_PG_URL`` gives a server)."""
        if os.environ.get("KDH_HUB_PG_URL"):
            return None
        reg, sec = self._read(_REGISTRY), self._read(_SECRETS)
        port = (reg.get("postgres") or {}).get("port")
        password = sec.get("postgres_password")
        if not port or not password:
            port = port or next(p for p in range(_FIRST_PG_PORT, _FIRST_PG_PORT + 200)
                                if not _port_busy("127.0.0.1", p))
            password = password or new_password()
            reg["postgres"] = {"port": port, "created_at": utc_now()}
            sec["postgres_password"] = password
            self._write(_SECRETS, sec)
            self._write(_REGISTRY, reg)
        return LocalPostgres(self.root / "postgres", int(port), password)

    def postgres(self) -> PgAdmin:
        """An admin account on the hub's PostgreSQL, starting kdh's own cluster when needed."""
        url = os.environ.get("KDH_HUB_PG_URL")
        if url:
            admin = PgAdmin.from_url(url)
            if not admin.ready():
                raise PostgresError(f"the PostgreSQL server of KDH_HUB_PG_URL ({admin.host}:{admin.port}) does not "
                                    "accept its login; check the URL and that the server runs")
            return admin
        pg = self.local_postgres()
        assert pg is not None
        self._ensure_root()
        pg.start()
        return pg.admin

    def database(self, client: str) -> PgDatabase:
        """The client's database and role, created on first use (the role password goes to hub-secrets.json)."""
        admin = self.postgres()
        sec = self._read(_SECRETS)
        roles = sec.setdefault("roles", {})
        if client not in roles:
            roles[client] = new_password()
            self._write(_SECRETS, sec)
        return admin.ensure_database(database_name(client), roles[client])

    # ---- instances ---------------------------------------------------------------------------------------------
    def _register(self, client: str, *, port: int | None, database: str | None) -> dict[str, Any]:
        reg = self._read(_REGISTRY)
        clients = reg.setdefault("clients", {})
        rec = dict(clients.get(client) or {})
        if database and rec.get("database") and database != rec["database"]:
            raise InvalidInputError(f"client {client!r} runs on {rec['database']}, not {database}; its data lives there. "
                             "Back it up and restore it under a new name to move it")
        used = {c["port"] for n, c in clients.items() if n != client}
        if port is not None:
            if port in used:
                other = next(n for n, c in clients.items() if c["port"] == port)
                raise InvalidInputError(f"port {port} belongs to client {other!r}; choose another --port")
            rec["port"] = port
        elif "port" not in rec:
            rec["port"] = next(p for p in range(_FIRST_CLIENT_PORT, _FIRST_CLIENT_PORT + 1000)
                               if p not in used and not _port_busy("127.0.0.1", p))
        rec.setdefault("database", database or "postgresql")
        rec.setdefault("created_at", utc_now())
        clients[client] = rec
        self._write(_REGISTRY, reg)
        return rec

    def start(self, client: str, *, port: int | None = None, database: Literal["sqlite", "postgresql"] | None = None,
              lan: bool = False, start_timeout_s: float = 300.0) -> ServerInfo:
        """Start the client's instance, or find it running (then nothing is started).

        Args:
            client: Client name (see :func:`check_client_name`).
            port: Its port (default: the one it had, else the first free one from 8101).
            database: ``"postgresql"`` (default for a new client) or ``"sqlite"``; fixed after the first start.
            lan: Listen on every interface (the hub's LAN) instead of 127.0.0.1.
            start_timeout_s: How long to wait for it (a first start on PostgreSQL runs the database migrations).

        Raises:
            ValueError: Bad name, a port of another client, or a different database than before.
            PostgresError: PostgreSQL is missing or does not start.
            ServerError: Label Studio does not start (the message holds the end of its log).
        """
        check_client_name(client)
        with self._locked():
            running = running_server(self.data_dir(client))
            if running is not None:
                return start_server(ServerOptions(data_dir=self.data_dir(client), start_timeout_s=start_timeout_s,
                                                  port=int(running.url.rsplit(":", 1)[1])))
            new = client not in self.clients()
            rec = self._register(client, port=port, database=database)
            pg = self.database(client) if rec["database"] == "postgresql" else None
        for attempt in range(3):
            try:
                return start_server(ServerOptions(data_dir=self.data_dir(client), port=int(rec["port"]), lan=lan,
                                                  database=rec["database"], postgres=pg,
                                                  start_timeout_s=start_timeout_s))
            except PortBusyError:
                if not new or port is not None or attempt == 2:
                    raise
                with self._locked():  # a new client whose free port was taken meanwhile: the next free one
                    reg = self._read(_REGISTRY)
                    reg["clients"][client].pop("port", None)
                    self._write(_REGISTRY, reg)
                    rec = self._register(client, port=None, database=database)
                logger.warning("port taken meanwhile; client %s gets port %s", client, rec["port"])
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, client: str) -> bool:
        """Stop the client's instance (True when one was running)."""
        return stop_server(self.data_dir(client))

    def stop_all(self) -> list[str]:
        """Stop every client's instance, then kdh's PostgreSQL; returns what was stopped."""
        stopped = [c for c in self.clients() if self.stop(c)]
        pg = self.local_postgres() if self.clients() or (self.root / "postgres").exists() else None
        if pg is not None and pg.stop():
            stopped.append("postgresql")
        return stopped

    def connection(self, client: str) -> Connection:
        """An admin connection to the client's running instance.

        Raises:
            ServerError: Unknown client, or its instance is not running (the message says how to start it).
        """
        if client not in self.clients():
            known = ", ".join(sorted(self.clients())) or "none yet"
            raise ServerError(f"no instance for client {client!r} in {self.root} (clients: {known}); start one with "
                              f"`kdh labelstudio start --client {client}`")
        conn = local_connection(self.data_dir(client))
        if conn is None:
            raise ServerError(f"client {client!r}'s Label Studio is not running; start it with "
                              f"`kdh labelstudio start --client {client}`")
        return conn

    def instances(self) -> list[ClientInstance]:
        """Every client's instance with its status and number of annotator accounts."""
        out = []
        for name, rec in sorted(self.clients().items()):
            info = running_server(self.data_dir(name))
            annotators = None
            running = False
            if info is not None:
                conn = local_connection(self.data_dir(name))
                client = LabelStudioClient(conn) if conn else None
                running = bool(client and client.health())
                if running and client is not None:
                    with contextlib.suppress(LabelStudioError):
                        annotators = sum(1 for u in client.users() if u.get("email") != info.admin_email)
            out.append(ClientInstance(name=name, port=int(rec["port"]), database=rec.get("database", "postgresql"),
                                      url=f"http://127.0.0.1:{rec['port']}", running=running,
                                      lan_url=info.lan_url if info else None, annotators=annotators,
                                      data_dir=self.data_dir(name)))
        return out

    # ---- backups -------------------------------------------------------------------------------------------------
    def backup(self, client: str, out_dir: str | Path | None = None) -> Path:
        """Back up a client's instance: its database (``pg_dump``, or SQLite's online backup API) and its data
        directory (secrets, media, local-files links), consistent while it runs.

        Returns:
            The backup folder (mode 0700: it holds the admin token).
        """
        if client not in self.clients():
            raise ServerError(f"no instance for client {client!r} in {self.root}")
        rec = self.clients()[client]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        parent = Path(out_dir) if out_dir else self.root / "backups" / client
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = parent / f"{client}-{stamp}"
        work = parent / f".{client}-{stamp}.part"
        work.mkdir(mode=0o700)
        try:
            data_dir = self.data_dir(client)
            if rec.get("database") == "postgresql":
                self.postgres().dump(self.database(client), work / "database.dump")
            else:
                src = sqlite3.connect(f"file:{data_dir / 'label_studio.sqlite3'}?mode=ro", uri=True)
                dst = sqlite3.connect(work / "label_studio.sqlite3")
                try:
                    src.backup(dst)
                finally:
                    dst.close()
                    src.close()
            with tarfile.open(work / "data.tar", "w") as tar:
                tar.add(data_dir, arcname=".", filter=lambda ti: None if Path(ti.name).name in _NOT_ARCHIVED
                        and Path(ti.name).parent == Path(".") else ti)
            write_json_atomic(work / "backup.json", {"client": client, "database": rec.get("database"),
                                                     "label_studio": LS_VERSION, "created_at": utc_now()})
            for p in work.iterdir():
                os.chmod(p, 0o600)
            os.replace(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        logger.info("Backed up client %s into %s", client, final)
        return final

    def restore(self, client: str, backup: str | Path, *, replace: bool = False) -> None:
        """Restore a backup into the client's instance (a new client, or a stopped one with ``replace``).

        Start it afterwards with :meth:`start`. The backup's admin account and token come back with it.

        Raises:
            ServerError: Not a backup, the instance runs, or it exists and ``replace`` is False.
        """
        check_client_name(client)
        backup = Path(backup)
        meta_path = backup / "backup.json"
        if not meta_path.is_file():
            raise ServerError(f"{backup} is not a kdh backup (no backup.json); give the folder "
                              "`kdh labelstudio backup` printed")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with self._locked():
            if running_server(self.data_dir(client)) is not None:
                raise ServerError(f"client {client!r}'s instance is running; stop it first "
                                  f"(`kdh labelstudio stop --client {client}`)")
            data_dir = self.data_dir(client)
            if client in self.clients() or (data_dir.exists() and any(data_dir.iterdir())):
                if not replace:
                    raise ServerError(f"client {client!r} already has an instance; restore under a new name, or "
                                      "pass --replace to overwrite it (stop it first)")
                if self.clients().get(client, {}).get("database", meta["database"]) != meta["database"]:
                    raise ServerError(f"client {client!r} runs on another database kind than the backup")
            rec = self._register(client, port=None, database=meta["database"])
            if data_dir.exists():
                shutil.rmtree(data_dir)
            data_dir.mkdir(mode=0o700, parents=True)
            with tarfile.open(backup / "data.tar") as tar:
                tar.extractall(data_dir, filter="tar")  # nosec B202: our own backup; keeps absolute audio links
            os.chmod(data_dir, 0o700)
            if rec["database"] == "postgresql":
                admin = self.postgres()
                db = self.database(client)
                admin.drop_database(db.name)
                db = self.database(client)
                admin.restore(db, backup / "database.dump")
            else:
                shutil.copyfile(backup / "label_studio.sqlite3", data_dir / "label_studio.sqlite3")
        logger.info("Restored client %s from %s", client, backup)
