"""The Label Studio server: start/stop/status, annotators, errors and secrets (against a real server)."""

from __future__ import annotations

import json
import logging
import socket
import time

import psutil
import pytest
from typer.testing import CliRunner

from kdh_ai.cli import app
from kdh_ai.labelstudio.client import (
    Connection,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioError,
    LabelStudioUnavailable,
    RetryPolicy,
)
from kdh_ai.labelstudio.server import (
    LS_VERSION,
    PortBusyError,
    ServerOptions,
    add_annotator,
    login_token,
    server_status,
    start_server,
)
from conftest import LabelStudioTestServer, free_port

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def squash(text: str) -> str:
    """Output without any whitespace, so that a secret wrapped by rich across lines is still found."""
    return "".join(text.split())


def _servers_for(data_dir) -> list[int]:
    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "label-studio" in cmd and str(data_dir) in cmd:
            pids.append(p.info["pid"])
    return pids


def test_starting_twice_does_not_start_a_second_server(labelstudio_server: LabelStudioTestServer) -> None:
    port = int(labelstudio_server.connection.url.rsplit(":", 1)[1])
    again = start_server(ServerOptions(data_dir=labelstudio_server.data_dir, port=port))
    assert again.already_running
    assert again.pid == labelstudio_server.pid
    assert _servers_for(labelstudio_server.data_dir) == [labelstudio_server.pid]


def test_busy_port_is_a_clear_error(tmp_path) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        with pytest.raises(PortBusyError, match=f"port {port} is already in use"):
            start_server(ServerOptions(data_dir=tmp_path / "ls", port=port))
    assert _servers_for(tmp_path / "ls") == []
    assert not (tmp_path / "ls" / "kdh-secrets.json").exists()
    # the command says so too (exit code 2), after warning about --lan
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", port))
        blocker.listen(1)
        res = CliRunner().invoke(app, ["labelstudio", "start", "--lan", "--port", str(port), "--data-dir",
                                       str(tmp_path / "ls")], env={"KDH_LS_URL": None, "KDH_LS_TOKEN": None})
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and f"port {port} is already in use" in out
    assert "reachable from every machine on this network" in out


def test_status_of_the_local_server(labelstudio_server: LabelStudioTestServer) -> None:
    st = server_status(labelstudio_server.data_dir)
    assert (st.mode, st.running, st.token_ok, st.version) == ("local", True, True, LS_VERSION)
    assert st.pid == labelstudio_server.pid
    assert st.user == "admin@kdh.local"
    secrets = json.loads((labelstudio_server.data_dir / "kdh-secrets.json").read_text())
    log = (labelstudio_server.data_dir / "server.log").read_text(errors="replace")
    assert secrets["token"] not in log and secrets["admin_password"] not in log
    assert oct((labelstudio_server.data_dir / "kdh-secrets.json").stat().st_mode & 0o777) == "0o600"


def test_server_down_fails_clearly_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    token = "0123456789abcdef-secret-token"
    url = f"http://127.0.0.1:{free_port()}"
    client = LabelStudioClient(Connection(url=url, token=token), retry=RetryPolicy(attempts=3, backoff_s=0.2))
    caplog.set_level(logging.DEBUG)
    t0 = time.monotonic()
    with pytest.raises(LabelStudioUnavailable) as err:
        client.whoami()
    assert time.monotonic() - t0 >= 0.2 + 0.4 * 0.8  # two backoffs (with jitter) before giving up
    msg = str(err.value)
    assert url in msg and "kdh labelstudio status" in msg and "cannot connect" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert token not in msg and token not in caplog.text
    # the first retry of an outage is a warning; the next ones are details (kdh_ai.labelstudio.client)
    assert sum("retrying" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == 1


def test_a_wrong_token_is_refused_without_showing_it(labelstudio_server: LabelStudioTestServer,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    wrong = "ffffffffffffffffffffffffffffffffffffffff"
    client = LabelStudioClient(Connection(url=labelstudio_server.connection.url, token=wrong))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LabelStudioAuthError) as err:
        client.whoami()
    assert "HTTP 401" in str(err.value)
    assert wrong not in str(err.value) and wrong not in caplog.text
    assert labelstudio_server.connection.token not in repr(labelstudio_server.connection)


def test_annotators_sign_up_and_log_in_with_a_password(labelstudio_server: LabelStudioTestServer,
                                                       ls_annotators) -> None:
    for email, password, user_id, client in ls_annotators:
        me = client.whoami()
        assert (me["email"], me["id"]) == (email, user_id)
        pat = login_token(labelstudio_server.connection.url, email, password, kind="pat")
        assert LabelStudioClient(Connection(url=labelstudio_server.connection.url, token=pat)).whoami()["id"] == user_id
    with pytest.raises(LabelStudioError, match="already exists"):
        add_annotator(labelstudio_server.connection, ls_annotators[0][0])
    with pytest.raises(LabelStudioAuthError, match="failed"):
        login_token(labelstudio_server.connection.url, ls_annotators[0][0], "not-the-password")
    with pytest.raises(ValueError, match="not an e-mail"):
        add_annotator(labelstudio_server.connection, "amina")


def test_cli_add_annotator_and_status(labelstudio_env: LabelStudioTestServer, tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["labelstudio", "add-annotator", "cheptoo@hub.example", "--password", "pw-cheptoo-1"])
    assert res.exit_code == 0, res.output
    out = squash(res.output)
    assert "cheptoo@hub.example" in out and "/user/login/" in out and "pw-cheptoo-1" in out
    token = login_token(labelstudio_env.connection.url, "cheptoo@hub.example", "pw-cheptoo-1")
    assert LabelStudioClient(Connection(url=labelstudio_env.connection.url, token=token)).whoami()["email"] == \
        "cheptoo@hub.example"

    res = runner.invoke(app, ["labelstudio", "status"])
    assert res.exit_code == 0, res.output
    assert "remote" in res.output and LS_VERSION in res.output  # KDH_LS_URL is set: the central-server path
    assert labelstudio_env.connection.token not in squash(res.output)

    res = runner.invoke(app, ["labelstudio", "start"])
    assert res.exit_code == 0 and "nothing started" in res.output
    assert _servers_for(labelstudio_env.data_dir) == [labelstudio_env.pid]
    res = runner.invoke(app, ["labelstudio", "stop", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0 and "No local Label Studio server was running" in res.output
    assert _servers_for(labelstudio_env.data_dir) == [labelstudio_env.pid]

    wrong = "0000000000000000000000000000000000000000"
    res = runner.invoke(app, ["labelstudio", "status"], env={"KDH_LS_TOKEN": wrong})
    assert res.exit_code == 4
    assert wrong not in squash(res.output) and "401" in res.output


def test_annotators_cannot_serve_files_outside_the_narrow_root(labelstudio_server: LabelStudioTestServer,
                                                               ls_annotators) -> None:
    """Any annotator may create a local-files storage (Community has no roles); the narrow document root is
    what keeps the rest of the disk out of reach."""
    _, _, _, annotator = ls_annotators[0]
    project = annotator.request("POST", "api/projects/", what="create a project",
                                json_body={"title": "snoop"}).json()
    inside = labelstudio_server.data_dir / "files" / "annotator-made"
    inside.mkdir()
    storage = annotator.request("POST", "api/storages/localfiles/", what="create a storage",
                                json_body={"project": project["id"], "path": str(inside), "title": "x"}).json()
    assert storage["path"] == str(inside)  # allowed: any account may create storages, hence the narrow root
    for path in ("/etc", str(labelstudio_server.data_dir)):
        with pytest.raises(LabelStudioError, match="LOCAL_FILES_DOCUMENT_ROOT"):
            annotator.request("POST", "api/storages/localfiles/", what="create a storage",
                              json_body={"project": project["id"], "path": path, "title": "x"})
    once = LabelStudioClient(annotator.connection, retry=RetryPolicy(attempts=1))
    for escape in ("../../etc/hostname", "/etc/hostname", "project-1/../../kdh-secrets.json"):
        with pytest.raises(LabelStudioError, match="HTTP (404|500)"):  # 500: Django's SuspiciousFileOperation
            once.request("GET", "data/local-files/", what="read a file", params={"d": escape})
    annotator.request("DELETE", f"api/projects/{project['id']}/", what="delete the project")


def test_a_port_left_in_time_wait_is_free_to_start_on() -> None:
    """After kill -9 of Label Studio only TIME-WAIT sockets remain on its port; Django binds with SO_REUSEADDR,
    so the check must too (else `kdh labelstudio start` refused for a minute: issue 12 §4)."""
    from kdh_ai.labelstudio.server import _port_busy

    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    assert _port_busy("127.0.0.1", port)  # listening: busy
    conn.close()  # the server side closes first: its end of the connection goes to TIME-WAIT
    time.sleep(0.1)
    client.close()
    listener.close()
    time.sleep(0.1)
    with socket.socket() as plain:  # the setup is real: a bind without SO_REUSEADDR is refused now
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert not _port_busy("127.0.0.1", port)
    assert not _port_busy("0.0.0.0", port)
