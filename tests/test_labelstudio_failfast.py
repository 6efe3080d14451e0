"""When Label Studio dies, ``kdh push``, ``kdh pull`` and ``kdh status`` say so once and exit 4 within about a
minute; after a crash, pushing again recovers without a duplicate. Against a real server of this module's own
(it is stopped, then killed, then restarted: never the session's shared one); the tests run in file order.

Before the circuit breaker and the /health watchdog: a pull against a stopped (SIGSTOP) server took 5 x 120 s,
and a push whose server was killed during the per-task overlap step retried each of hundreds of updates on its
own (16 minutes for 2,000 items). The time bounds here are generous correctness checks, not speed claims.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port
from kdh_ai.job import Job
from kdh_ai.labelstudio.client import Connection, LabelStudioClient
from kdh_ai.records import Prediction

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

BOUND_S = 90.0  # "within about a minute", with room for a busy 2-core CI machine
N_ITEMS = 600
LABELS = ("complaint", "question", "praise")


@dataclass
class OwnServer:
    """A Label Studio server this module starts, kills, stops and restarts."""

    data_dir: Path
    pid: int = 0
    connection: Connection | None = None

    def start(self) -> None:
        from kdh_ai.labelstudio.server import ServerOptions, local_connection, start_server

        info = start_server(ServerOptions(data_dir=self.data_dir, port=free_port(), start_timeout_s=420.0))
        self.pid, self.connection = info.pid, local_connection(self.data_dir)
        assert self.connection is not None

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.pid, sig)  # the server runs in its own session (start_new_session): its whole group

    @property
    def secrets(self) -> list[str]:
        sec = json.loads((self.data_dir / "kdh-secrets.json").read_text())
        return [sec["token"], sec["admin_password"]]


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServer]:
    from kdh_ai.labelstudio.server import stop_server

    srv = OwnServer(data_dir=tmp_path_factory.mktemp("ls-failfast"))
    srv.start()
    try:
        yield srv
    finally:
        try:
            srv.signal(signal.SIGCONT)
        except ProcessLookupError:
            pass
        stop_server(srv.data_dir)


def text_job(root: Path, n: int, prefix: str) -> Job:
    """A classification job as `kdh prelabel classify` leaves it (n texts, a label set in job.json)."""
    job = Job(root)
    labels = root.parent / f"{prefix}-labels.yaml"
    labels.write_text("".join(f"- {x}\n" for x in LABELS), encoding="utf-8")
    items, preds = [], []
    for i in range(n):
        item_id = f"{prefix}-{i:05d}"
        items.append({"item_id": item_id, "path": None, "text": f"customer message {i}", "reference": None,
                      "metadata": {}, "error": None})
        preds.append(Prediction(item_id=item_id, task="classification", text=LABELS[i % 3],
                                confidence=round(0.4 + 0.5 * i / n, 4), status="ok",
                                model={"name": "test-model", "version": "1"}, config_hash="cfg1", source=None,
                                sha256=None).to_dict())
    job.items.append(items)
    job.predictions.append(preds)
    job.update_manifest(task="classification", config_hash="cfg1", model={"name": "test-model", "version": "1"},
                        config={"labels": str(labels)})
    return job


def kdh_env(srv: OwnServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KDH_LS_URL", "KDH_LS_TOKEN")}
    env.update(KDH_LS_DATA_DIR=str(srv.data_dir), COLUMNS="250")
    return env


def kdh(srv: OwnServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kdh_ai.cli", *args], env=kdh_env(srv), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[str], t0: float, limit: float = 600) -> tuple[int, str, float]:
    """Exit code, output (stdout + stderr) and wall seconds of a kdh run."""
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"kdh still running after {limit:.0f} s:\n{(out + err)[-3000:]}")
    return proc.returncode, out + err, time.monotonic() - t0


def assert_no_secret(srv: OwnServer, *texts: str, job_dir: Path | None = None) -> None:
    blob = "".join("".join(t.split()) for t in texts)  # rich may wrap a long value across lines
    if job_dir is not None:
        blob += "".join(p.read_text(errors="replace") for p in job_dir.rglob("*") if p.is_file()
                        and p.suffix != ".parquet")
    for secret in srv.secrets:
        assert secret not in blob


def ls_item_ids(client: LabelStudioClient, project_id: int) -> list[str]:
    return [t["data"]["item_id"] for t in client.iter_tasks(project_id, fields="all")]


def test_stopped_server_push_pull_status_exit_4_within_a_minute(own_server: OwnServer, tmp_path: Path) -> None:
    pushed = {}
    for name in ("pull", "status"):
        pushed[name] = text_job(tmp_path / name, 6, name)
        rc, out, _ = finish(kdh(own_server, "push", str(pushed[name].root), "--project", f"stopped {name}",
                                "--gold-rate", "0", "--no-progress"), time.monotonic())
        assert rc == 0, out[-3000:]
    fresh = text_job(tmp_path / "fresh", 5, "new")

    own_server.signal(signal.SIGSTOP)  # hung: it accepts connections (the kernel does) but never answers
    try:
        t0 = time.monotonic()
        procs = {"pull": kdh(own_server, "pull", str(pushed["pull"].root)),
                 "status": kdh(own_server, "status", str(pushed["status"].root)),
                 "push": kdh(own_server, "push", str(fresh.root), "--project", "never made", "--no-progress")}
        results = {name: finish(proc, t0, limit=2 * BOUND_S) for name, proc in procs.items()}
    finally:
        own_server.signal(signal.SIGCONT)
    for name, (rc, out, wall) in results.items():
        assert rc == 4, f"{name}: {out[-3000:]}"
        assert wall < BOUND_S, f"{name} took {wall:.0f} s against a stopped server"
        assert "stopped answering" in out and "Traceback" not in out, f"{name}: {out[-3000:]}"
        assert_no_secret(own_server, out)
    assert "Showing the state of the last pull" in " ".join(results["status"][1].split())
    assert not (fresh.root / "labelstudio.json").exists()

    # the server answers again: the same commands work (the breaker lives in one run, not on disk)
    rc, out, _ = finish(kdh(own_server, "pull", str(pushed["pull"].root)), time.monotonic())
    assert rc == 0, out[-3000:]
    rc, out, _ = finish(kdh(own_server, "status", str(pushed["status"].root)), time.monotonic())
    assert rc == 0 and "per annotator" in out, out[-3000:]
    assert_no_secret(own_server, out, job_dir=pushed["status"].root)


def test_server_killed_during_push_fails_fast_and_the_next_push_recovers(own_server: OwnServer,
                                                                         tmp_path: Path) -> None:
    job = text_job(tmp_path / "big", N_ITEMS, "msg")
    tasks_log = job.root / "tasks.jsonl"
    proc = kdh(own_server, "push", str(job.root), "--project", "killed mid-push", "--overlap", "0.8",
               "--control-share", "0", "--gold-rate", "0", "--no-progress")
    deadline = time.monotonic() + 300
    # every task imported, then the first 200 overlap updates confirmed: the kill lands inside the overlap step
    while time.monotonic() < deadline and proc.poll() is None:
        if tasks_log.exists() and tasks_log.read_bytes().count(b"\n") >= N_ITEMS + 200:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "push ended before the overlap step: " + proc.communicate()[1][-2000:]
    own_server.signal(signal.SIGKILL)
    t0 = time.monotonic()
    rc, out, wall = finish(proc, t0, limit=2 * BOUND_S)
    assert rc == 4, out[-3000:]
    assert wall < BOUND_S, f"push took {wall:.0f} s after the server died"
    assert "did not complete" in out and "kdh labelstudio status" in out
    assert out.count("retrying") <= 10, out[-3000:]  # one breaker for the run, not one retry loop per task
    assert "Traceback" not in out
    recorded = job.log("tasks").latest_by("item_id")
    pending = [r for r in recorded.values() if int(r.get("overlap_applied") or 1) < int(r.get("overlap") or 1)]
    assert len(recorded) == N_ITEMS and pending, "the kill should land in the overlap step"
    assert_no_secret(own_server, out, job_dir=job.root)

    # the local server's process is gone: 'no Label Studio server', exit code 4 (was 2), at once
    for args in (["push", str(job.root), "--no-progress"], ["pull", str(job.root)], ["status", str(job.root)]):
        rc, out, wall = finish(kdh(own_server, *args), time.monotonic(), limit=120)
        assert rc == 4 and "no Label Studio server" in out, (args, out[-3000:])
        assert "Traceback" not in out and wall < BOUND_S
        assert_no_secret(own_server, out)
    assert "Showing the state of the last pull" in " ".join(out.split())

    # the server comes back (a new port, same data): the same command finishes the work, nothing twice
    own_server.start()
    rc, out, wall = finish(kdh(own_server, "push", str(job.root), "--project", "killed mid-push", "--overlap", "0.8",
                               "--control-share", "0", "--gold-rate", "0", "--no-progress"), time.monotonic())
    assert rc == 0, out[-3000:]
    pid = json.loads((job.root / "labelstudio.json").read_text())["project_id"]
    client = LabelStudioClient(own_server.connection)
    ids = ls_item_ids(client, pid)
    assert len(ids) == len(set(ids)) == N_ITEMS
    recorded = job.log("tasks").latest_by("item_id")
    assert all(int(r.get("overlap_applied") or 1) == int(r.get("overlap") or 1) for r in recorded.values())
    overlap_ids = {k for k, r in recorded.items() if r["role"] == "overlap"}
    assert {t["data"]["item_id"] for t in client.iter_tasks(pid, fields="all") if t["overlap"] == 2} == overlap_ids
    assert_no_secret(own_server, out, job_dir=job.root)
