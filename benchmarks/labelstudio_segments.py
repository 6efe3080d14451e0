"""What segment review costs in Label Studio for a 1-hour recording: tasks, push and pull, vs one whole-file task.

    .venv/bin/python benchmarks/labelstudio_segments.py               # a 60-minute recording, a temporary server
    .venv/bin/python benchmarks/labelstudio_segments.py --minutes 10  # quicker
    .venv/bin/python benchmarks/labelstudio_segments.py --keep        # leave the server up to look at a task

The recording is real speech (:func:`kdh_ai.samples.long_recording`: bundled LJ Speech clips joined by natural
pauses). It is not transcribed: its work segments are cut (:func:`kdh_ai.segments.cut_segments`) from word
times laid over the clips' known timeline, which is all push and pull need. Every segment is pushed (the worst
case: routing sends only the uncertain ones, so a real push costs the per-task figure times their number).

Compared side by side on the same server in the same run:

* push: ``kdh push`` of the recording as segment tasks (cutting each segment's clip with 3 s of context,
  linking it, importing the tasks with the region and the model's text) vs ``kdh push`` of the same recording
  as one whole-file task (the design before segments);
* pull: ``kdh pull`` of the annotated segment project vs of the annotated whole-file project (each task
  answered through the API by the admin account, not timed).

Without ``KDH_LS_URL`` a temporary server is started (its first start is not timed) and stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdh_ai.items import sha256_file  # noqa: E402
from kdh_ai.job import Job  # noqa: E402
from kdh_ai.labelstudio.client import LabelStudioClient  # noqa: E402
from kdh_ai.labelstudio.pull import pull  # noqa: E402
from kdh_ai.labelstudio.push import PushOptions, push  # noqa: E402
from kdh_ai.labelstudio.server import ServerOptions, ensure_server, stop_server  # noqa: E402
from kdh_ai.records import Prediction  # noqa: E402
from kdh_ai.samples import long_recording  # noqa: E402
from kdh_ai.segments import cut_segments  # noqa: E402
from kdh_ai.tasks import get_task  # noqa: E402

TASK = get_task("transcription")


def timeline_words(clips: list[tuple[str, float, float, str]]) -> list[dict]:
    """Word records laid evenly over each clip's span (its reference words), every third clip uncertain."""
    out = []
    for n, (_, lo, hi, ref) in enumerate(clips):
        words = ref.split()
        step = (hi - lo) / max(1, len(words))
        out += [{"word": f" {w}", "start": round(lo + i * step, 3), "end": round(lo + (i + 0.8) * step, 3),
                 "probability": 0.4 if n % 3 == 1 else 0.97} for i, w in enumerate(words)]
    return out


def make_job(root: Path, wav: Path, duration_s: float, words: list[dict], *, segmented: bool) -> Job:
    segments = cut_segments(words, duration_s=duration_s) if segmented else []
    payload = {"duration_s": duration_s}
    if segmented:
        payload["work_segments"] = [s.to_dict() for s in segments]
    job = Job(root)
    job.items.append([{"item_id": "hour", "path": str(wav), "reference": None, "error": None}])
    text = "".join(w["word"] for w in words).strip()
    job.predictions.append([Prediction(item_id="hour", task="transcription", text=text, confidence=0.8, status="ok",
                                       model={"name": "bench", "version": "1"}, config_hash="bench1",
                                       source=str(wav), sha256=sha256_file(wav), payload=payload).to_dict()])
    job.update_manifest(task="transcription", config_hash="bench1", model={"name": "bench", "version": "1"})
    return job


def annotate_all(client: LabelStudioClient, pid: int) -> int:
    n = 0
    for t in client.iter_tasks(pid):
        client.request("POST", f"api/tasks/{t['id']}/annotations/", what="annotate",
                       json_body={"result": TASK.answer_to_result("a reviewed transcript"), "lead_time": 20.0})
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the recording (default 60)")
    ap.add_argument("--keep", action="store_true", help="leave the server and job up (prints where)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kdh-seg-bench-"))
    started = False
    try:
        t0 = time.perf_counter()
        rec = long_recording(work / "hour.wav", minutes=args.minutes, seed=7)
        print(f"recording: {rec.duration_s / 60:.1f} min, {len(rec.clips)} clips, built in "
              f"{time.perf_counter() - t0:.1f} s")
        words = timeline_words(rec.clips)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        t0 = time.perf_counter()
        conn, started = ensure_server(ServerOptions(data_dir=work / "ls", port=port, start_timeout_s=600))
        print(f"server: {conn.url} (started in {time.perf_counter() - t0:.0f} s, not timed)")
        client = LabelStudioClient(conn)
        opts = PushOptions(control_share=0.0, overlap_fraction=0.0, gold_rate=0.0)
        rows = []
        seg_job = make_job(work / "segments-job", rec.path, rec.duration_s, words, segmented=True)
        whole_job = make_job(work / "whole-job", rec.path, rec.duration_s, words, segmented=False)
        n_seg = len(seg_job.units())
        t0 = time.perf_counter()
        seg = push(seg_job.root, opts, connection=conn)
        t_seg = time.perf_counter() - t0
        t0 = time.perf_counter()
        whole = push(whole_job.root, opts, connection=conn)
        t_whole = time.perf_counter() - t0
        assert seg.total_created == n_seg and whole.total_created == 1, (seg, whole)
        clips_mb = sum(p.stat().st_size for p in (seg_job.root / "clips").glob("*.wav")) / 1e6
        rows.append(("push", t_seg, t_whole))
        annotate_all(client, seg.project_id)
        annotate_all(client, whole.project_id)
        t0 = time.perf_counter()
        p_seg = pull(seg_job.root, connection=conn)
        t_pseg = time.perf_counter() - t0
        t0 = time.perf_counter()
        p_whole = pull(whole_job.root, connection=conn)
        t_pwhole = time.perf_counter() - t0
        assert p_seg.new == n_seg and p_whole.new == 1
        assert {a.segment for a in seg_job.annotations()} == set(range(n_seg))
        rows.append(("pull", t_pseg, t_pwhole))
        print(f"\n{rec.duration_s / 60:.0f}-minute recording: {n_seg} segment tasks (clips with 3 s context: "
              f"{clips_mb:.0f} MB in the job's clips/) vs 1 whole-file task")
        print(f"{'':8s} {'segments':>10s} {'whole file':>11s} {'ratio':>7s} {'per segment':>12s}")
        for name, a, b in rows:
            print(f"{name:8s} {a:9.2f}s {b:10.2f}s {a / b:7.1f} {a / n_seg * 1000:10.0f}ms")
        if args.keep:
            print(f"\nkept: server {conn.url} (data {work / 'ls'}), segment project {seg.project_url}")
    finally:
        if started and not args.keep:
            stop_server(work / "ls")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
