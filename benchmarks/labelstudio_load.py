"""Load on one client's Label Studio instance: N simulated annotators submitting at once, SQLite vs PostgreSQL.

Each simulated annotator (labelled as such: ``sim-annotator-K@load.invalid``) has their own account and token,
takes the next task from the label stream (``GET /api/projects/ID/next/``, what **Label All Tasks** does) and
submits an answer, with no pause, for a bounded time. Then ``kdh pull`` brings the annotations into the job
directory and the script checks that every acknowledged submission was pulled exactly once.

Printed per database and N: submissions per second, p50/p95 latency of the submission and of the whole
take-and-submit cycle, errors by kind (for example "database is locked"), and the exactly-once check; the
PostgreSQL/SQLite throughput ratio is the side-by-side baseline. Real annotators pause 10-60 s per item, so
this is a stress test: 50 people at one item per 20 s is 2.5 submissions/s.

All traffic goes to 127.0.0.1; every loop is bounded in count and in time. Run it under ``nice`` on a shared
machine::

    nice -n 10 .venv/bin/python benchmarks/labelstudio_load.py --n 10 30 50 --seconds 20
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdh_ai.job import Job  # noqa: E402
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, LabelStudioError, RetryPolicy  # noqa: E402
from kdh_ai.labelstudio.hub import Hub  # noqa: E402
from kdh_ai.labelstudio.pull import pull  # noqa: E402
from kdh_ai.labelstudio.push import PushOptions, push  # noqa: E402
from kdh_ai.labelstudio.server import add_annotator, login_token  # noqa: E402
from kdh_ai.records import Prediction  # noqa: E402

LABELS = ("complaint", "question", "praise")
PASSWORD = "simulated-annotator-1"
MAX_SUBMISSIONS_PER_ANNOTATOR = 2000


def make_job(root: Path, n: int) -> Job:
    job = Job(root)
    items = [{"item_id": f"t-{i:05d}", "path": None, "text": f"customer message {i}", "reference": None,
              "metadata": {}, "error": None} for i in range(n)]
    preds = [Prediction(item_id=it["item_id"], task="classification", text=LABELS[i % 3], confidence=0.5,
                        status="ok", model={"name": "m", "version": "1"}, config_hash="c", source=None,
                        sha256=None).to_dict() for i, it in enumerate(items)]
    job.items.append(items)
    job.predictions.append(preds)
    (root / "labels.yaml").write_text("".join(f"- {x}\n" for x in LABELS), encoding="utf-8")
    job.update_manifest(task="classification", config_hash="c", model={"name": "m", "version": "1"},
                        config={"labels": str(root / "labels.yaml")})
    return job


def accounts(conn: Connection, n: int) -> list[LabelStudioClient]:
    """n simulated annotators with their own accounts and tokens (created once, reused across runs)."""
    admin = LabelStudioClient(conn)
    existing = {u["email"] for u in admin.users()}
    emails = [f"sim-annotator-{k:02d}@load.invalid" for k in range(n)]
    for e in emails:
        if e not in existing:
            add_annotator(conn, e, password=PASSWORD, first_name="Simulated")
    retry = RetryPolicy(attempts=1, timeout_s=60)
    return [LabelStudioClient(Connection(url=conn.url, token=login_token(conn.url, e, PASSWORD)), retry=retry)
            for e in emails]


def error_kind(exc: Exception) -> str:
    text = str(exc)
    for kind in ("database is locked", "HTTP 500", "HTTP 502", "HTTP 503", "HTTP 404", "HTTP 400",
                 "no answer within", "cannot connect", "connection broken"):
        if kind in text:
            return kind
    return type(exc).__name__


def run_once(conn: Connection, people: list[LabelStudioClient], work: Path, seconds: float, tasks: int
             ) -> dict[str, Any]:
    job = make_job(work, tasks)
    res = push(job.root, PushOptions(project=f"load {len(people)} annotators", control_share=0, overlap_fraction=0,
                                     gold_rate=0), connection=conn, log_progress=False)
    pid = res.project_id
    acked: list[int] = []
    submit_ms: list[float] = []
    cycle_ms: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def annotate(client: LabelStudioClient, k: int) -> None:
        for n in range(MAX_SUBMISSIONS_PER_ANNOTATOR):
            if time.monotonic() >= deadline:
                return
            t0 = time.perf_counter()
            try:
                task = client.get_json(f"api/projects/{pid}/next/", what="next task")
                t1 = time.perf_counter()
                body = {"result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                    "value": {"choices": [LABELS[(k + n) % 3]]}}], "lead_time": 1.0}
                ann = client.request("POST", f"api/tasks/{task['id']}/annotations/", what="submit",
                                     json_body=body).json()
            except LabelStudioError as exc:
                with lock:
                    errors[error_kind(exc)] += 1
                if "HTTP 404" in str(exc):  # the stream is empty
                    return
                continue
            t2 = time.perf_counter()
            with lock:
                acked.append(int(ann["id"]))
                submit_ms.append((t2 - t1) * 1000)
                cycle_ms.append((t2 - t0) * 1000)

    t_start = time.monotonic()
    with ThreadPoolExecutor(len(people)) as pool:
        list(pool.map(annotate, people, range(len(people))))
    wall = time.monotonic() - t_start
    pull(job.root, connection=conn)
    records = [r for r in job.log("annotations") if not r["deleted"]]
    pulled = collections.Counter(r["annotation_id"] for r in records)
    exactly_once = (set(pulled) >= set(acked) and all(pulled[a] == 1 for a in acked)
                    and len(set(acked)) == len(acked))
    extra_ids = set(pulled) - set(acked)  # committed, but no answer reached the annotator
    extra = len(extra_ids)
    acked_pairs = {(r["ls_task_id"], r["annotator_id"]) for r in records if r["annotation_id"] in set(acked)}
    extra_detail = [{"annotation_id": r["annotation_id"], "task": r["ls_task_id"], "annotator": r["annotator_email"],
                     "created_at": r["created_at"],
                     "same_task_and_annotator_acked": (r["ls_task_id"], r["annotator_id"]) in acked_pairs}
                    for r in records if r["annotation_id"] in extra_ids]

    def q(xs: list[float], p: float) -> float:
        return statistics.quantiles(xs, n=100)[p - 1] if len(xs) >= 2 else (xs[0] if xs else float("nan"))

    return {"n": len(people), "seconds": wall, "submissions": len(acked), "per_s": len(acked) / wall,
            "submit_p50": q(submit_ms, 50), "submit_p95": q(submit_ms, 95), "cycle_p50": q(cycle_ms, 50),
            "cycle_p95": q(cycle_ms, 95), "errors": dict(errors), "exactly_once": exactly_once, "extra": extra,
            "extra_detail": extra_detail}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 30, 50], help="simulated annotators per run")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each run (bounded)")
    ap.add_argument("--tasks", type=int, default=3000, help="tasks per run (more than the run can finish)")
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if max(args.n) > 200 or args.seconds > 600:
        ap.error("bounded: at most 200 annotators and 600 s per run")
    root = Path(tempfile.mkdtemp(prefix="kdh-load-", dir="/tmp"))
    os.chmod(root, 0o711)  # the postgres user must traverse it (never list it)
    hub = Hub(root / "hub")
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for db in args.databases:
            name = f"load-{db[:2]}"
            t0 = time.monotonic()
            hub.start(name, database=db, start_timeout_s=900)
            conn = hub.connection(name)
            print(f"[{db}] instance ready in {time.monotonic() - t0:.0f} s; creating {max(args.n)} simulated "
                  "annotator accounts", flush=True)
            people = accounts(conn, max(args.n))
            results[db] = []
            for n in args.n:
                r = run_once(conn, people[:n], root / f"job-{db}-{n}", args.seconds, args.tasks)
                results[db].append(r)
                print(f"[{db}] N={n}: {json.dumps(r)}", flush=True)
            hub.stop(name)
    finally:
        hub.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    print("\nsimulated annotators, no pause between items; 127.0.0.1; one Label Studio process per database")
    print(f"{'database':<11}{'N':>4}{'subs':>7}{'subs/s':>8}{'submit p50/p95 ms':>20}{'cycle p50/p95 ms':>19}"
          f"{'errors':>8}  {'pulled exactly once':<20}{'PG/SQLite':>9}")
    base = {r["n"]: r["per_s"] for r in results.get("sqlite", [])}
    for db, rows in results.items():
        for r in rows:
            ratio = f"{r['per_s'] / base[r['n']]:.2f}" if db == "postgresql" and base.get(r["n"]) else ""
            errs = sum(r["errors"].values())
            once = "yes" if r["exactly_once"] else "NO"
            if r["extra"]:
                once += f" (+{r['extra']} unacked)"
            print(f"{db:<11}{r['n']:>4}{r['submissions']:>7}{r['per_s']:>8.1f}"
                  f"{r['submit_p50']:>11.0f}/{r['submit_p95']:<8.0f}{r['cycle_p50']:>10.0f}/{r['cycle_p95']:<8.0f}"
                  f"{errs:>8}  {once:<20}{ratio:>9}")
            if r["errors"]:
                print(f"{'':<15}errors: {r['errors']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
