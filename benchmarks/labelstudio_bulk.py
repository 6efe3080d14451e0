"""Push and pull of 10,000 items vs Label Studio's own bulk import and export, in the same run.

    .venv/bin/python benchmarks/labelstudio_bulk.py            # 10,000 items, a temporary server
    .venv/bin/python benchmarks/labelstudio_bulk.py --n 2000   # quicker

What is compared (each pair on the same data, same server, same run; the ratio is what matters):

* push: ``kdh push`` of a job of N transcription items (pre-annotations, a 10 % control share, no overlap:
  a "plain bulk import") vs one ``POST /api/projects/{id}/import`` of the same task JSON (what Label Studio
  offers). kdh adds the symlinks for local-files audio, the bookkeeping in ``tasks.jsonl`` and the
  idempotency check.
* pull: ``kdh pull`` of N annotated tasks vs Label Studio's synchronous JSON export of the same project. kdh
  adds the users call, the diff against ``annotations.jsonl`` and writing it. A second pull (nothing changed)
  is timed too.
* ``--overlap 0.1`` also times the per-task overlap PATCHes (Label Studio ignores overlap at bulk import).

With ``KDH_LS_URL``/``KDH_LS_TOKEN`` that server is used (audio by local files when ``KDH_LS_DATA_DIR`` names
its kdh data directory, else by upload, which is much slower). Without them a temporary server is started in
a temporary directory (its first start, about 30 s to 2 min, is not timed) and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdh_ai.job import Job  # noqa: E402
from kdh_ai.labelstudio.client import LabelStudioClient  # noqa: E402
from kdh_ai.labelstudio.project import create_project  # noqa: E402
from kdh_ai.labelstudio.pull import export_project, pull  # noqa: E402
from kdh_ai.labelstudio.push import PushOptions, push  # noqa: E402
from kdh_ai.labelstudio.connection import resolve_connection  # noqa: E402
from kdh_ai.labelstudio.server import ServerOptions, ensure_server, stop_server  # noqa: E402
from kdh_ai.records import Prediction  # noqa: E402
from kdh_ai.samples import ljspeech_dir  # noqa: E402
from kdh_ai.tasks import get_task  # noqa: E402

TASK = get_task("transcription")


def make_job(root: Path, n: int) -> Job:
    wavs = sorted((ljspeech_dir() / "wavs").glob("*.wav"))
    job = Job(root)
    items, preds = [], []
    for i in range(n):
        item_id = f"bench-{i:06d}"
        items.append({"item_id": item_id, "path": str(wavs[i % len(wavs)]), "text": None, "reference": None,
                      "metadata": {}, "error": None})
        preds.append(Prediction(item_id=item_id, task="transcription", text=f"the model heard sentence {i}",
                                confidence=(i % 97) / 97, status="ok", model={"name": "bench", "version": "1"},
                                config_hash="bench1", source=None, sha256=None).to_dict())
    job.items.append(items)
    job.predictions.append(preds)
    job.update_manifest(task="transcription", config_hash="bench1", model={"name": "bench", "version": "1"})
    return job


def task_json(n: int, *, annotated_by: list[int] | None = None) -> list[dict]:
    """The same tasks kdh sends (data with item_id, one prediction), optionally with one annotation each."""
    out = []
    for i in range(n):
        t = {"data": {"audio": f"/data/local-files/?d=baseline/bench-{i:06d}.wav", "item_id": f"bench-{i:06d}"},
             "predictions": [{"model_version": "bench@1/bench1", "score": (i % 97) / 97,
                              "result": TASK.answer_to_result(f"the model heard sentence {i}")}]}
        if annotated_by:
            t["annotations"] = [{"result": TASK.answer_to_result(f"a human heard sentence {i}"),
                                 "completed_by": annotated_by[i % len(annotated_by)], "lead_time": 10.0 + i % 30}]
        out.append(t)
    return out


def ls_import(client: LabelStudioClient, pid: int, tasks: list[dict]) -> float:
    t0 = time.perf_counter()
    client.request("POST", f"api/projects/{pid}/import", what="bulk import", idempotent=False,
                   content=json.dumps(tasks).encode(), headers={"Content-Type": "application/json"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="items (default 10000)")
    ap.add_argument("--overlap", type=float, default=0.0, help="also time per-task overlap on this share")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best of each is kept")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kdh-ls-bench-"))
    started_dir = None
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        t0 = time.perf_counter()
        if os.environ.get("KDH_LS_URL") and os.environ.get("KDH_LS_TOKEN"):
            conn, started = resolve_connection(), False  # local files if it is kdh's server (KDH_LS_DATA_DIR)
        else:
            conn, started = ensure_server(ServerOptions(data_dir=work / "ls", port=port, start_timeout_s=600))
        started_dir = work / "ls" if started else None
        print(f"server: {conn.url} ({'started' if started else 'given'} in {time.perf_counter() - t0:.0f} s, "
              "not timed)")
        client = LabelStudioClient(conn)
        me = client.whoami()["id"]
        stamp = int(time.time())
        rows = []

        # ---- push ----
        t_base = t_push = float("inf")
        for r in range(args.repeat):  # interleaved, best of N each, fresh projects every time
            base = create_project(client, TASK, title=f"bench baseline import {stamp}-{r}")
            t_base = min(t_base, ls_import(client, base["id"], task_json(args.n)))
            job = make_job(work / f"push-job-{r}", args.n)
            t0 = time.perf_counter()
            res = push(job.root, PushOptions(project=f"bench kdh push {stamp}-{r}", control_share=0.1,
                                             overlap_fraction=0, gold_rate=0), connection=conn)
            t_push = min(t_push, time.perf_counter() - t0)
            assert res.total_created == args.n, res
        rows.append(("push (kdh push vs LS bulk import)", t_push, t_base))
        t0 = time.perf_counter()
        again = push(job.root, PushOptions(), connection=conn)
        t_again = time.perf_counter() - t0
        assert again.total_created == 0
        print(f"re-push of {args.n} already pushed items (idempotency check): {t_again:.2f} s")

        if args.overlap > 0:
            job2 = make_job(work / "overlap-job", args.n)
            t0 = time.perf_counter()
            r2 = push(job2.root, PushOptions(project=f"bench overlap {stamp}", overlap_fraction=args.overlap,
                                             gold_rate=0), connection=conn)
            t_ov = time.perf_counter() - t0
            print(f"push with overlap on {r2.overlap_set} tasks: {t_ov:.1f} s ({r2.import_s:.1f} s import, "
                  f"{(t_ov - r2.import_s) / max(1, r2.overlap_set) * 1000:.0f} ms per overlap task)")

        # ---- pull ----
        annotated = create_project(client, TASK, title=f"bench annotated {stamp}")
        t_load = ls_import(client, annotated["id"], task_json(args.n, annotated_by=[me]))
        pull_job = make_job(work / "pull-job", args.n)
        t0 = time.perf_counter()
        adopt = push(pull_job.root, PushOptions(project_id=annotated["id"], gold_rate=0, overlap_fraction=0,
                                                control_share=0), connection=conn)
        t_adopt = time.perf_counter() - t0
        assert adopt.adopted == args.n and adopt.total_created == 0, adopt
        print(f"(set-up: {args.n} annotated tasks imported in {t_load:.1f} s; kdh attached the job to them by "
              f"item_id in {t_adopt:.1f} s)")
        # interleaved, best of N each: on a busy machine the two would otherwise see different loads
        t_export = t_pull = t_pull2 = float("inf")
        for r in range(args.repeat):
            t0 = time.perf_counter()
            exported = export_project(client, annotated["id"])
            t_export = min(t_export, time.perf_counter() - t0)
            assert len(exported) == args.n
            if r:  # forget the pulled annotations so that this pull writes them all again
                (pull_job.root / "annotations.jsonl").unlink()
            t0 = time.perf_counter()
            first = pull(pull_job.root, connection=conn)
            t_pull = min(t_pull, time.perf_counter() - t0)
            assert first.new == args.n, first
            t0 = time.perf_counter()
            second = pull(pull_job.root, connection=conn)
            t_pull2 = min(t_pull2, time.perf_counter() - t0)
            assert second.written == 0
        rows.append(("pull, first (kdh pull vs LS JSON export)", t_pull, t_export))
        rows.append(("pull, nothing changed (vs LS JSON export)", t_pull2, t_export))

        print(f"\n{args.n} items\n{'':44s} {'kdh':>8s} {'LS':>8s} {'ratio':>6s}")
        for name, kdh, ls in rows:
            print(f"{name:44s} {kdh:7.2f}s {ls:7.2f}s {kdh / ls:6.2f}")
    finally:
        if started_dir is not None:
            stop_server(started_dir)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
