"""PostgreSQL for the hub: a private cluster kdh runs, or a server given by URL; one database and role per client.

The hub runs one Label Studio instance per client (see :mod:`kdh_ai.labelstudio.hub`). On PostgreSQL each
instance gets its own database **and** its own role (``kdh_<client>``, random password), so one client's
instance cannot log in to another's database.

Two ways to have a server:

* :class:`LocalPostgres`: a cluster kdh creates and starts itself with Debian's ``postgresql`` package
  (``initdb`` / ``pg_ctl``; ``make system-deps`` installs it where missing). It listens on ``127.0.0.1`` only
  (password authentication, ``scram-sha-256``) and keeps its data in ``HUB_DIR/postgres``. PostgreSQL refuses
  to run as root: under root, kdh runs it as the ``postgres`` system user (``runuser``), which then owns that
  folder; otherwise it runs as the current user.
* :class:`PgAdmin` from a URL (``KDH_HUB_PG_URL=postgresql://admin:PASSWORD@host:5432/postgres``): a server
  someone else runs; the account needs ``CREATEDB`` and ``CREATEROLE``.

All calls go through Debian's ``psql``, ``pg_dump`` and ``pg_restore`` with the password in the child's
environment (``PGPASSWORD``), never on a command line (which ``ps`` shows) and never in a message.

Example:
    >>> PgAdmin.from_url("postgresql://boss:s3cret@127.0.0.1:5433/postgres").port
    5433
    >>> "s3cret" in repr(PgAdmin.from_url("postgresql://boss:s3cret@127.0.0.1:5433/postgres"))
    False
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kdh_ai.errors import InvalidInputError
from kdh_ai.labelstudio.client import LabelStudioError, redact

__all__ = [
    "LocalPostgres",
    "PgAdmin",
    "PgDatabase",
    "PostgresError",
    "find_pg_bin",
    "new_password",
]

logger = logging.getLogger(__name__)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(LabelStudioError):
    """PostgreSQL is missing, does not start, or refused a command (the message says what to do)."""


def find_pg_bin() -> Path:
    """The folder with ``initdb``, ``pg_ctl``, ``psql``, ``pg_dump`` (``KDH_PG_BIN``, else Debian's newest).

    Raises:
        PostgresError: PostgreSQL is not installed (the message says how to install it).
    """
    env = os.environ.get("KDH_PG_BIN")
    candidates = [Path(env)] if env else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    candidates += versions
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                                  check=True, timeout=10).stdout.strip()))
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise PostgresError("PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin or "
                        "KDH_PG_BIN). Install Debian's package: `make system-deps` (as root) or `apt-get install "
                        "postgresql`; or give a server with KDH_HUB_PG_URL; or use --database sqlite")


@dataclass(frozen=True)
class PgDatabase:
    """One client's database, as Label Studio connects to it.

    Attributes:
        name: Database name.
        user: Role that owns it (only this client's instance logs in with it).
        password: The role's password (kept in the hub's secrets file, never printed).
        host: Server address.
        port: Server port.
    """

    name: str
    user: str
    password: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 5432

    def ls_env(self) -> dict[str, str]:
        """The environment Label Studio reads (``DJANGO_DB=default`` selects PostgreSQL)."""
        return {"DJANGO_DB": "default", "POSTGRE_NAME": self.name, "POSTGRE_USER": self.user,
                "POSTGRE_PASSWORD": self.password, "POSTGRE_HOST": self.host, "POSTGRE_PORT": str(self.port)}


@dataclass(frozen=True)
class PgAdmin:
    """An account on a PostgreSQL server that may create databases and roles.

    Attributes:
        host: Server address.
        port: Server port.
        user: Admin account.
        password: Its password (never printed).
        bin_dir: Folder of ``psql``/``pg_dump``/``pg_restore`` (default: :func:`find_pg_bin`).
    """

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    bin_dir: Path | None = None

    @classmethod
    def from_url(cls, url: str) -> PgAdmin:
        """Parse ``postgresql://user:password@host:port/dbname`` (the database part is ignored).

        Raises:
            ValueError: Not such a URL (the message does not repeat it: it holds a password).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.username:
            raise InvalidInputError("KDH_HUB_PG_URL must look like postgresql://USER:PASSWORD@HOST:PORT/postgres")
        return cls(host=parts.hostname, port=parts.port or 5432, user=unquote(parts.username),
                   password=unquote(parts.password or ""))

    def _bin(self, name: str) -> str:
        return str((self.bin_dir or find_pg_bin()) / name)

    def _env(self, password: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGPASSWORD=password if password is not None else self.password, PGCONNECT_TIMEOUT="10")
        return env

    def _run(self, args: list[str], *, what: str, password: str | None = None, stdin: str | None = None,
             timeout_s: float = 600.0) -> str:
        try:
            done = subprocess.run(args, env=self._env(password), input=stdin, capture_output=True, text=True,
                                  timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"PostgreSQL at {self.host}:{self.port}: {what} failed ({type(exc).__name__})") \
                from None
        if done.returncode != 0:
            msg = redact((done.stderr or done.stdout).strip()[-800:], self.password, password)
            raise PostgresError(f"PostgreSQL at {self.host}:{self.port}: {what} failed: {msg}")
        return done.stdout

    def psql(self, sql: str, *, database: str = "postgres", what: str = "a query") -> str:
        """Run SQL (given on stdin, stopping at the first error); returns psql's unaligned output."""
        return self._run([self._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host,
                          "-p", str(self.port), "-U", self.user, "-d", database, "-f", "-"], what=what, stdin=sql)

    def ready(self) -> bool:
        """Whether the server accepts this account's login now."""
        try:
            return self.psql("select 1;", what="check the server").strip() == "1"
        except PostgresError:
            return False

    def ensure_database(self, name: str, password: str) -> PgDatabase:
        """Create the role ``name`` (password ``password``) and the database ``name`` it owns, if missing.

        The role may log in only to its own database (``CONNECT`` is revoked from ``PUBLIC``).

        Raises:
            ValueError: ``name`` is not a plain lowercase identifier, or the password is not hexadecimal.
        """
        if not _IDENT.match(name):
            raise ValueError(f"{name!r} is not a valid database name (lowercase letters, digits, _)")
        if not re.fullmatch(r"[0-9a-f]{16,128}", password):
            raise ValueError("the role password must be 16-128 hexadecimal characters")
        self.psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN "
            f"CREATE ROLE {name} LOGIN PASSWORD '{password}'; ELSE ALTER ROLE {name} LOGIN PASSWORD '{password}'; "
            "END IF; END $$;", what=f"create role {name}")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';", what="look up a database")
        if exists.strip() != "1":
            self.psql(f"CREATE DATABASE {name} OWNER {name};", what=f"create database {name}")
        self.psql(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC; GRANT ALL ON DATABASE {name} TO {name};",
                  what=f"restrict database {name}")
        return PgDatabase(name=name, user=name, password=password, host=self.host, port=self.port)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (ends its connections first); its role stays."""
        if not _IDENT.match(name):
            raise ValueError(f"{name!r} is not a valid database name")
        self.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';",
                  what=f"disconnect {name}")
        self.psql(f"DROP DATABASE IF EXISTS {name};", what=f"drop database {name}")

    def dump(self, db: PgDatabase, out: Path) -> None:
        """``pg_dump`` the database in custom format (consistent while Label Studio runs) into ``out``."""
        tmp = out.with_name(out.name + ".part")
        try:
            self._run([self._bin("pg_dump"), "-Fc", "--no-owner", "-h", db.host, "-p", str(db.port), "-U", db.user,
                       "-d", db.name, "-f", str(tmp)], what=f"dump database {db.name}", password=db.password)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)

    def restore(self, db: PgDatabase, dump: Path) -> None:
        """Load a :meth:`dump` into an empty database (objects become owned by ``db.user``)."""
        self._run([self._bin("pg_restore"), "--no-owner", "--exit-on-error", "-h", db.host, "-p", str(db.port),
                   "-U", db.user, "-d", db.name, str(dump)], what=f"restore database {db.name}",
                  password=db.password)


def _as_root() -> bool:
    return os.geteuid() == 0


class LocalPostgres:
    """A private PostgreSQL cluster in ``root`` that kdh creates, starts and stops (127.0.0.1 only).

    Args:
        root: Its folder (``HUB_DIR/postgres``): ``data/`` the cluster, ``server.log``, ``sock/`` its socket.
        port: TCP port on 127.0.0.1.
        superuser_password: Password of the cluster's ``postgres`` account (kept in the hub's secrets file).
    """

    def __init__(self, root: Path, port: int, superuser_password: str) -> None:
        self.root = Path(root)
        self.port = port
        self._password = superuser_password
        self.bin_dir = find_pg_bin()

    def __repr__(self) -> str:
        return f"LocalPostgres({str(self.root)!r}, port={self.port})"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin(self) -> PgAdmin:
        return PgAdmin(host="127.0.0.1", port=self.port, user="postgres", password=self._password,
                       bin_dir=self.bin_dir)

    def _as_owner(self, args: list[str], *, what: str, timeout_s: float = 120.0) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if _as_root() else []) + args
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, cwd="/")
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"PostgreSQL in {self.root}: {what} failed ({type(exc).__name__})") from None
        if done.returncode != 0:
            out = redact((done.stderr or done.stdout).strip()[-800:], self._password)
            raise PostgresError(f"PostgreSQL in {self.root}: {what} failed: {out}; see {self.root / 'server.log'}")

    def _check_reachable(self) -> None:
        """Under root the ``postgres`` user must be able to walk down to ``root``."""
        if not _as_root():
            return
        for parent in reversed(self.root.parents):
            st = parent.stat()
            if not st.st_mode & 0o001:
                raise PostgresError(
                    f"the postgres system user cannot enter {parent} (mode {oct(st.st_mode & 0o777)}), so it cannot "
                    f"run the hub's database in {self.root}. Put the hub in a folder others may traverse (the "
                    "default for root is /var/lib/kdh/hub; set KDH_HUB_DIR), or give a server with KDH_HUB_PG_URL")

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> None:
        """Create the cluster (``initdb``, password authentication) if it does not exist yet."""
        if self.initialized:
            return
        self._check_reachable()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "sock").mkdir(exist_ok=True)
        pwfile = self.root / ".pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._password + "\n")
        try:
            if _as_root():
                shutil.chown(self.root, "postgres", "postgres")
                for p in (self.root / "sock", pwfile):
                    shutil.chown(p, "postgres", "postgres")
            os.chmod(self.root, 0o700)
            self._as_owner([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                            "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                           what="initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        logger.info("PostgreSQL cluster created in %s", self.data_dir)

    def running(self) -> bool:
        """Whether the cluster's postmaster runs (``postmaster.pid`` names a live process)."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def start(self, timeout_s: float = 60.0) -> None:
        """Start it (``pg_ctl -w``) unless it runs; 127.0.0.1 only, socket in ``root/sock``."""
        self.init()
        if not self.running():
            opts = (f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=300 -c shared_buffers=64MB")
            self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                            str(self.root / "server.log"), "-w", "-t", str(int(timeout_s)), "-o", opts, "start"],
                           what="start", timeout_s=timeout_s + 10)
            logger.info("PostgreSQL started on 127.0.0.1:%d", self.port)
        deadline = time.monotonic() + timeout_s
        while not self.admin.ready():
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL in {self.root} does not accept logins on 127.0.0.1:{self.port}; "
                                    f"see {self.root / 'server.log'}")
            time.sleep(0.3)

    def stop(self, mode: str = "fast") -> bool:
        """Stop it (``pg_ctl stop -m fast``: connections are ended, nothing committed is lost)."""
        if not self.running():
            return False
        self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
                       what="stop")
        logger.info("PostgreSQL in %s stopped", self.root)
        return True


def new_password() -> str:
    """A random role password (hexadecimal: safe inside SQL literals)."""
    return secrets.token_hex(24)
