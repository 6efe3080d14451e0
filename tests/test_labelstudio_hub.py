"""The hub server: one Label Studio per client on a real PostgreSQL that kdh runs, isolation, backups, faults.

One hub (a private PostgreSQL cluster and two clients' instances, started side by side) serves the whole
module: a PostgreSQL-backed first start runs Label Studio's migrations (30-120 s on 2 cores).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from kdh_ai.cli import app
from kdh_ai.job import Job
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, LabelStudioError, RetryPolicy
from kdh_ai.labelstudio.hub import Hub, database_name, job_client
from kdh_ai.labelstudio.postgres import PgAdmin, PostgresError, find_pg_bin
from kdh_ai.labelstudio.pull import pull
from kdh_ai.labelstudio.push import PushOptions, push
from kdh_ai.labelstudio.server import add_annotator, login_token
from kdh_ai.records import Prediction

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

LABELS = ("complaint", "question", "praise")
PASSWORD = "kakuma-hub-2026!"


@dataclass
class HubForTests:
    hub: Hub
    conns: dict[str, Connection]
    annotators: dict[str, tuple[str, str, LabelStudioClient]]  # client -> (email, legacy token, client)


def squash(text: str) -> str:
    return "".join(text.split())


def make_text_job(root: Path, n: int, *, prefix: str = "msg") -> Job:
    """A classification job as `kdh prelabel` leaves it (n texts with model answers)."""
    job = Job(root)
    items, preds = [], []
    for i in range(n):
        item_id = f"{prefix}-{i:04d}"
        items.append({"item_id": item_id, "path": None, "text": f"customer message {i}", "reference": None,
                      "metadata": {}, "error": None})
        preds.append(Prediction(item_id=item_id, task="classification", text=LABELS[i % 3], confidence=0.5,
                                status="ok", model={"name": "m", "version": "1"}, config_hash="c1",
                                source=None, sha256=None).to_dict())
    job.items.append(items)
    job.predictions.append(preds)
    root.joinpath("labels.yaml").write_text("".join(f"- {x}\n" for x in LABELS), encoding="utf-8")
    job.update_manifest(task="classification", config_hash="c1", model={"name": "m", "version": "1"},
                        config={"labels": str(root / "labels.yaml")})
    return job


def submit(client: LabelStudioClient, project_id: int, label: str) -> dict[str, Any] | None:
    """Take the next task from the label stream and submit an answer; the created annotation, or None."""
    task = client.get_json(f"api/projects/{project_id}/next/", what="next task")
    body = {"result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            "lead_time": 3.0}
    return client.request("POST", f"api/tasks/{task['id']}/annotations/", what="annotate", json_body=body).json()


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pg_hub() -> Iterator[HubForTests]:
    """A hub with its own PostgreSQL and two clients' instances (acme, bolt), each with one annotator."""
    try:
        find_pg_bin()
    except PostgresError as exc:
        pytest.fail(f"{exc} (`make test` installs it)")
    root = Path(tempfile.mkdtemp(prefix="kdh-hub-", dir="/tmp"))
    os.chmod(root, 0o711)  # the postgres user must traverse it (never list it)
    hub = Hub(root / "hub")
    mp = pytest.MonkeyPatch()
    mp.setenv("KDH_HUB_DIR", str(hub.root))
    for var in ("KDH_LS_URL", "KDH_LS_TOKEN", "KDH_HUB_PG_URL"):
        mp.delenv(var, raising=False)
    try:
        with ThreadPoolExecutor(2) as pool:  # two first starts (migrations) side by side
            infos = list(pool.map(lambda c: hub.start(c, start_timeout_s=600), ["acme", "bolt"]))
        assert all(not i.already_running for i in infos)
        conns = {c: hub.connection(c) for c in ("acme", "bolt")}
        annotators = {}
        for c in ("acme", "bolt"):
            email = f"ann-{c}@hub.example"
            add_annotator(conns[c], email, password=PASSWORD)
            token = login_token(conns[c].url, email, PASSWORD)
            annotators[c] = (email, token, LabelStudioClient(Connection(url=conns[c].url, token=token)))
        yield HubForTests(hub=hub, conns=conns, annotators=annotators)
    finally:
        hub.stop_all()
        mp.undo()
        shutil.rmtree(root, ignore_errors=True)


def test_two_clients_side_by_side_on_postgresql(pg_hub: HubForTests) -> None:
    hub = pg_hub.hub
    rows = {r.name: r for r in hub.instances()}
    assert set(rows) == {"acme", "bolt"}
    assert all(r.running and r.database == "postgresql" and r.annotators == 1 for r in rows.values())
    assert rows["acme"].port != rows["bolt"].port
    for c in ("acme", "bolt"):
        secrets = hub.data_dir(c) / "kdh-secrets.json"
        assert oct(secrets.stat().st_mode & 0o777) == "0o600"
        assert not (hub.data_dir(c) / "label_studio.sqlite3").exists()  # the data is in PostgreSQL
        log = (hub.data_dir(c) / "server.log").read_text(errors="replace")
        assert json.loads(secrets.read_text())["token"] not in log
    assert oct((hub.root / "hub-secrets.json").stat().st_mode & 0o777) == "0o600"
    # each instance has its own database and role; a client's role cannot even connect to the other database
    pg = hub.local_postgres()
    assert pg is not None
    names = pg.admin.psql("SELECT datname FROM pg_database ORDER BY 1;").split()
    assert {"kdh_acme", "kdh_bolt"} <= set(names)
    acme_db = hub.database("acme")
    intruder = PgAdmin(host=acme_db.host, port=acme_db.port, user=acme_db.user, password=acme_db.password)
    assert intruder.psql("SELECT count(*) > 0 FROM pg_tables;", database="kdh_acme").strip() == "t"
    with pytest.raises(PostgresError, match="permission denied for database") as err:
        intruder.psql("SELECT 1;", database=database_name("bolt"))
    assert acme_db.password not in str(err.value)
    # starting again reuses the instance; the CLI lists both
    again = hub.start("acme")
    assert again.already_running and again.url == pg_hub.conns["acme"].url
    res = CliRunner().invoke(app, ["labelstudio", "list"])
    assert res.exit_code == 0, res.output
    assert "acme" in res.output and "bolt" in res.output and res.output.count("running") == 2
    assert pg_hub.conns["acme"].token not in squash(res.output)


def test_an_annotator_of_one_client_gets_nothing_from_another(pg_hub: HubForTests, tmp_path: Path) -> None:
    """Annotator of acme, with their own token and their own logged-in session, against bolt's instance."""
    bolt = pg_hub.conns["bolt"]
    job = make_text_job(tmp_path / "bolt-job", 4)
    res = push(job.root, PushOptions(project="bolt private", control_share=0, overlap_fraction=0, gold_rate=0),
               connection=bolt)
    _, _, bolt_ann = pg_hub.annotators["bolt"]
    ann = submit(bolt_ann, res.project_id, "praise")
    assert ann is not None
    pid, aid, tid = res.project_id, ann["id"], ann["task"]
    bolt_admin = LabelStudioClient(bolt)
    assert bolt_admin.get_json(f"api/annotations/{aid}/", what="read")["id"] == aid  # the ids are real

    email, acme_token, acme_ann = pg_hub.annotators["acme"]
    assert acme_ann.whoami()["email"] == email  # the token works on its own instance
    with httpx.Client(timeout=30) as s:  # a logged-in browser session on acme's instance
        s.get(f"{pg_hub.conns['acme'].url}/user/login/")
        csrf = s.cookies["csrftoken"]
        r = s.post(f"{pg_hub.conns['acme'].url}/user/login/", data={"email": email, "password": PASSWORD,
                   "csrfmiddlewaretoken": csrf}, headers={"Referer": pg_hub.conns["acme"].url}, follow_redirects=False)
        assert r.status_code == 302
        session = {"sessionid": s.cookies["sessionid"], "csrftoken": s.cookies["csrftoken"]}
        assert s.get(f"{pg_hub.conns['acme'].url}/api/current-user/whoami").json()["email"] == email

    endpoints = [
        ("GET", "api/current-user/whoami"), ("GET", "api/current-user/token"), ("GET", "api/projects/"),
        ("GET", f"api/projects/{pid}/"), ("GET", f"api/projects/{pid}/next/"), ("GET", f"api/tasks/?project={pid}"),
        ("GET", f"api/tasks/{tid}/"), ("GET", f"api/tasks/{tid}/annotations/"), ("GET", f"api/annotations/{aid}/"),
        ("GET", f"api/projects/{pid}/export?exportType=JSON"), ("GET", f"api/projects/{pid}/exports/"),
        ("GET", f"api/dm/views/?project={pid}"), ("GET", "api/users/"), ("GET", "api/invite"),
        ("GET", "api/storages/localfiles/"), ("GET", "api/predictions/"), ("GET", "api/webhooks/"),
        ("GET", "api/organizations/"), ("GET", "data/local-files/?d=project-1/x.wav"),
        ("GET", "data/upload/1/x.wav"),
        ("POST", f"api/tasks/{tid}/annotations/"), ("PATCH", f"api/annotations/{aid}/"),
        ("DELETE", f"api/annotations/{aid}/"), ("PATCH", f"api/projects/{pid}/"), ("DELETE", f"api/projects/{pid}/"),
        ("POST", f"api/projects/{pid}/import"), ("POST", "api/projects/"), ("POST", "api/storages/localfiles/"),
        ("POST", "api/token/"), ("POST", "api/dm/actions?id=next_task&project=" + str(pid)),
    ]
    seen = []
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        for method, path in endpoints:
            url = f"{bolt.url}/{path}"
            body = {"result": [], "title": "x"} if method in ("POST", "PATCH") else None
            by_token = http.request(method, url, json=body, headers={"Authorization": f"Token {acme_token}"})
            by_session = http.request(method, url, json=body, headers={
                "Cookie": "; ".join(f"{k}={v}" for k, v in session.items()), "X-CSRFToken": session["csrftoken"],
                "Referer": bolt.url + "/"})
            seen.append((method, path, by_token.status_code, by_session.status_code))
    wrong = [s for s in seen if s[2] not in (401, 403) or s[3] not in (401, 403)]
    assert not wrong, f"not refused (method, path, token status, session status): {wrong}"
    # nothing changed on bolt's instance
    assert bolt_admin.get_json(f"api/annotations/{aid}/", what="read")["result"] == ann["result"]
    assert bolt_admin.get_json(f"api/projects/{pid}/", what="read")["title"] == "bolt private"


def test_a_job_records_its_client_and_finds_its_instance(pg_hub: HubForTests, tmp_path: Path) -> None:
    runner = CliRunner()
    job = make_text_job(tmp_path / "job", 5)
    res = runner.invoke(app, ["push", str(job.root), "--client", "acme", "--control-share", "0", "--overlap", "0",
                              "--gold-rate", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert job_client(job.root) == "acme" and job.read_manifest()["client"] == "acme"
    state = json.loads((job.root / "labelstudio.json").read_text())
    assert state["url"] == pg_hub.conns["acme"].url
    _, _, acme_ann = pg_hub.annotators["acme"]
    for label in ("question", "praise"):
        submit(acme_ann, state["project_id"], label)
    res = runner.invoke(app, ["pull", str(job.root)])  # no flag: the job knows its client
    assert res.exit_code == 0, res.output
    assert "2 new" in res.output
    res = runner.invoke(app, ["status", str(job.root), "--json"])
    assert res.exit_code == 0, res.output
    # another client for the same job is refused: its project lives in acme's instance
    res = runner.invoke(app, ["push", str(job.root), "--client", "bolt", "--no-progress"])
    assert res.exit_code == 2 and "belongs to client 'acme'" in " ".join(res.output.split())
    # an explicit KDH_LS_URL wins, and kdh says so
    bolt = pg_hub.conns["bolt"]
    res = runner.invoke(app, ["status", str(job.root), "--no-pull"],
                        env={"KDH_LS_URL": bolt.url, "KDH_LS_TOKEN": bolt.token})
    assert res.exit_code == 0, res.output
    assert f"KDH_LS_URL is set, so kdh uses {bolt.url} and not client acme's instance" in " ".join(res.output.split())
    # admin tokens never reach the job directory or the output
    text = "\n".join(p.read_text(errors="replace") for p in job.root.rglob("*") if p.is_file()
                     and p.suffix != ".parquet")
    for conn in pg_hub.conns.values():
        assert conn.token not in text and conn.token not in squash(res.output)
    # add-annotator --client makes the account on that client's instance only
    res = runner.invoke(app, ["labelstudio", "add-annotator", "zawadi@hub.example", "--client", "acme",
                              "--password", "pw-zawadi-1"])
    assert res.exit_code == 0, res.output
    acme_users = {u["email"] for u in LabelStudioClient(pg_hub.conns["acme"]).users()}
    bolt_users = {u["email"] for u in LabelStudioClient(bolt).users()}
    assert "zawadi@hub.example" in acme_users and "zawadi@hub.example" not in bolt_users


def test_kill_9_during_submissions_loses_no_acknowledged_annotation(pg_hub: HubForTests, tmp_path: Path) -> None:
    hub, conn = pg_hub.hub, pg_hub.conns["acme"]
    job = make_text_job(tmp_path / "job", 80)
    res = push(job.root, PushOptions(project="kill test", control_share=0, overlap_fraction=0, gold_rate=0),
               connection=conn)
    annotators = [LabelStudioClient(pg_hub.annotators["acme"][2].connection, retry=RetryPolicy(attempts=1))]
    for i in range(2):  # two more people submitting at the same time
        email = f"kill-{i}@hub.example"
        add_annotator(conn, email, password=PASSWORD)
        annotators.append(LabelStudioClient(Connection(url=conn.url, token=login_token(conn.url, email, PASSWORD)),
                                            retry=RetryPolicy(attempts=1)))
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def work(client: LabelStudioClient) -> None:
        for n in range(40):  # bounded
            if stop.is_set():
                return
            try:
                ann = submit(client, res.project_id, LABELS[n % 3])
            except LabelStudioError:
                return  # the server died under us: that submission was not acknowledged
            if ann is not None:
                with lock:
                    acked.append(ann["id"])

    pid = json.loads((hub.data_dir("acme") / "kdh-server.json").read_text())["pid"]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(work, c) for c in annotators]
        deadline = time.monotonic() + 60
        while len(acked) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(pid, signal.SIGKILL)
        for f in futures:
            f.result(timeout=120)
        stop.set()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # reap it (kdh started it from this process)
    assert len(acked) >= 10
    t0 = time.monotonic()
    info = hub.start("acme")  # right away: the port's TIME-WAIT sockets must not block it
    assert not info.already_running and time.monotonic() - t0 < 120
    result = pull(job.root, connection=hub.connection("acme"))
    pulled = {r["annotation_id"] for r in job.log("annotations") if not r["deleted"]}
    assert set(acked) <= pulled, f"acknowledged but lost: {sorted(set(acked) - pulled)}"
    assert result.new == len(pulled) >= len(acked)
    assert len(list(job.log("annotations"))) == len(pulled)  # each pulled once


def test_postgresql_restarted_during_a_pull(pg_hub: HubForTests, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pull_module = sys.modules["kdh_ai.labelstudio.pull"]  # the package exports a function of the same name
    hub, conn = pg_hub.hub, pg_hub.conns["acme"]
    job = make_text_job(tmp_path / "job", 6)
    res = push(job.root, PushOptions(project="pg restart", control_share=0, overlap_fraction=0, gold_rate=0),
               connection=conn)
    for label in LABELS:
        submit(pg_hub.annotators["acme"][2], res.project_id, label)
    before = tree_digest(job.root)
    pg = hub.local_postgres()
    assert pg is not None
    real_export = pull_module.export_project

    def export_while_the_database_restarts(client: LabelStudioClient, project_id: int) -> Any:
        pg.stop()  # the database goes away in the middle of the pull
        return real_export(client, project_id)

    monkeypatch.setattr(pull_module, "export_project", export_while_the_database_restarts)
    try:
        with pytest.raises(LabelStudioError) as err:
            pull(job.root, connection=conn, retry=RetryPolicy(attempts=2, backoff_s=0.2))
    finally:
        pg.start()
    msg = str(err.value)
    assert "export" in msg and conn.url in msg and "run the same command again" in msg
    assert conn.token not in msg
    assert tree_digest(job.root) == before  # nothing written
    monkeypatch.setattr(pull_module, "export_project", real_export)
    result = pull(job.root, connection=conn)
    assert result.new == 3
    assert {r["answer"] for r in job.log("annotations")} == set(LABELS)


def _mount_tmpfs(path: Path, size_kb: int) -> bool:
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def test_a_full_disk_in_the_job_directory(pg_hub: HubForTests, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """On a small tmpfs when this machine may mount one (root), else with injected ENOSPC errors."""
    conn = pg_hub.conns["acme"]
    mnt = tmp_path / "small-disk"
    real = _mount_tmpfs(mnt, 512)
    try:
        job = make_text_job(mnt / "job", 30)
        res = push(job.root, PushOptions(project="full disk", control_share=0, overlap_fraction=0, gold_rate=0),
                   connection=conn)
        for n in range(30):
            submit(pg_hub.annotators["acme"][2], res.project_id, LABELS[n % 3])
        before = tree_digest(job.root)
        filler = mnt / "filler"
        if real:  # fill the disk, then give back two pages (a pull writes ~15 KB: it fails part-way)
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - 8192))
            os.close(fd)
        else:
            real_write = os.write

            def full(fd: int, data: Any) -> int:
                if os.fstat(fd).st_dev == os.stat(job.root).st_dev and len(data) > 64:
                    real_write(fd, bytes(data)[:len(data) // 2])  # a partial write, then the disk is full
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(fd, data)

            monkeypatch.setattr(os, "write", full)
        result = CliRunner().invoke(app, ["pull", str(job.root)], env={"KDH_LS_URL": conn.url,
                                                                        "KDH_LS_TOKEN": conn.token})
        monkeypatch.undo()
        out = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert "no space left on the device of" in out and "run the same command again" in out
        assert str(job.root / "annotations.jsonl") in squash(result.output)
        assert tree_digest(job.root) == before  # no torn file, no half-written record, no temporary file
        filler.unlink(missing_ok=True)
        result = pull(job.root, connection=conn)
        assert result.new == 30
        assert all(json.loads(line) for line in (job.root / "annotations.jsonl").read_text().splitlines())
    finally:
        if real:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_backup_and_restore_into_a_fresh_instance(pg_hub: HubForTests, tmp_path: Path) -> None:
    hub, conn = pg_hub.hub, pg_hub.conns["bolt"]
    job = make_text_job(tmp_path / "job", 12)
    res = push(job.root, PushOptions(project="to back up", control_share=0, overlap_fraction=0, gold_rate=0),
               connection=conn)
    for n in range(7):
        submit(pg_hub.annotators["bolt"][2], res.project_id, LABELS[n % 3])
    pull(job.root, connection=conn)
    want = {(r["annotation_id"], r["item_id"], r["answer"], r["annotator_email"]) for r in job.log("annotations")}
    assert len(want) >= 7
    result = CliRunner().invoke(app, ["labelstudio", "backup", "--client", "bolt", "--out", str(tmp_path / "bk")])
    assert result.exit_code == 0, result.output
    backup = next((tmp_path / "bk").iterdir())
    assert oct(backup.stat().st_mode & 0o777) == "0o700"
    assert (backup / "database.dump").stat().st_size > 10_000
    assert conn.token not in squash(result.output)

    result = CliRunner().invoke(app, ["labelstudio", "restore", str(backup), "--client", "bolt"])
    assert result.exit_code == 2 and "is running; stop it first" in result.output  # never over a live client
    result = CliRunner().invoke(app, ["labelstudio", "restore", str(backup), "--client", "bolt-copy"])
    assert result.exit_code == 0, result.output
    try:
        info = hub.start("bolt-copy")
        restored = hub.connection("bolt-copy")
        assert restored.url != conn.url and restored.token == conn.token  # the backup's admin came back with it
        copy = Job(tmp_path / "copy")
        shutil.copytree(job.root, copy.root)
        (copy.root / "annotations.jsonl").unlink()
        pull(copy.root, connection=restored)
        got = {(r["annotation_id"], r["item_id"], r["answer"], r["annotator_email"]) for r in copy.log("annotations")}
        assert got == want
        assert info.pid != json.loads((hub.data_dir("bolt") / "kdh-server.json").read_text())["pid"]
    finally:
        hub.stop("bolt-copy")
