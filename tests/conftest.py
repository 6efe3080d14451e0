"""Fixtures shared by the test suite.

``labelstudio_server`` starts one real Label Studio (from ``.venv-ls``) per test session, in a temporary data
directory on a free 127.0.0.1 port; the first start runs the database migrations (30 s to 2 min on 2 busy
cores). ``labelstudio_env`` points the ``kdh`` commands (and notebooks run from the tests) at it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kdh_ai.labelstudio.client import Connection, LabelStudioClient


@dataclass
class LabelStudioTestServer:
    """The session's Label Studio server.

    Attributes:
        connection: URL and admin token (local server: audio through local files).
        data_dir: Its data directory.
        pid: Its process id.
        annotators: ``[(email, password, user_id, client)]`` created by ``ls_annotators``.
    """

    connection: Connection
    data_dir: Path
    pid: int
    annotators: list[tuple[str, str, int, LabelStudioClient]] = field(default_factory=list)

    @property
    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.connection)


@pytest.fixture(scope="session", autouse=True)
def _own_hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests never read or write the machine's hub folder (its trainee ledger decides whose answers a pull
    keeps: see :mod:`kdh_ai.qualify`); a test that needs a hub sets ``KDH_HUB_DIR`` itself."""
    before = {k: os.environ.get(k) for k in ("KDH_HUB_DIR", "KDH_QUALIFICATION")}
    os.environ["KDH_HUB_DIR"] = str(tmp_path_factory.mktemp("hub"))
    os.environ.pop("KDH_QUALIFICATION", None)
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def free_port() -> int:
    """A TCP port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioTestServer]:
    """A real Label Studio server for the whole session (stopped at the end)."""
    from kdh_ai.labelstudio.server import ServerError, ServerOptions, find_label_studio, local_connection, \
        start_server, stop_server

    try:
        find_label_studio()
    except ServerError as exc:
        pytest.fail(f"{exc} (`make test` installs it)")
    data_dir = tmp_path_factory.mktemp("labelstudio-data")
    info = start_server(ServerOptions(data_dir=data_dir, port=free_port(), start_timeout_s=420.0))
    conn = local_connection(data_dir)
    assert conn is not None
    try:
        yield LabelStudioTestServer(connection=conn, data_dir=data_dir, pid=info.pid)
    finally:
        stop_server(data_dir)


@pytest.fixture(scope="session")
def ls_annotators(labelstudio_server: LabelStudioTestServer) -> list[tuple[str, str, int, LabelStudioClient]]:
    """Two annotators who signed up through the invite link, each with their own API token."""
    from kdh_ai.labelstudio.server import add_annotator, login_token

    if not labelstudio_server.annotators:
        for email in ("amina@hub.example", "brian@hub.example"):
            ann = add_annotator(labelstudio_server.connection, email, password="kakuma-2026!")
            token = login_token(labelstudio_server.connection.url, email, "kakuma-2026!")
            client = LabelStudioClient(Connection(url=labelstudio_server.connection.url, token=token))
            labelstudio_server.annotators.append((email, "kakuma-2026!", ann.user_id, client))
    return labelstudio_server.annotators


@pytest.fixture
def labelstudio_env(labelstudio_server: LabelStudioTestServer, monkeypatch: pytest.MonkeyPatch
                    ) -> LabelStudioTestServer:
    """Point ``kdh`` commands and child processes (notebooks) at the session's server."""
    monkeypatch.setenv("KDH_LS_DATA_DIR", str(labelstudio_server.data_dir))
    monkeypatch.setenv("KDH_LS_URL", labelstudio_server.connection.url)
    monkeypatch.setenv("KDH_LS_TOKEN", labelstudio_server.connection.token)
    return labelstudio_server
