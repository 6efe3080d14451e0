"""Verification run (issue 15, "Done when"): one 10-minute recording through the whole loop, routed with
``kdh route --prior-calibration EARLIER_JOB``: an earlier job of the same client (by default five 10-minute
recordings that people reviewed whole, ``kdh route --calibration all``, the way a new client's first batch is
done), answered and pulled. This recording's own slice is 6 segments (for the drift check). Label Studio is a
real server on 127.0.0.1; the annotators are SIMULATED (each unit answered with its aligned reference,
``--human-wer`` of its words dropped, calibration included: the slices measure the model against people who
err, as real ones do).

Caveat: the recordings are built from the 32 LJ Speech clips of the shared data (222 s of speech), so the
earlier recordings and this one repeat the same sentences in other orders, pauses and cuts: the earlier slices
describe this recording better than a real client's earlier work would describe a new recording.

Usage::

    .venv/bin/python benchmarks/verify_single_recording.py [--earlier-minutes 10 10 10 10 10] [--minutes 10] [--seed 907]
        [--target 0.08] [--human-wer 0.02] [--calibration 6] [--earlier-calibration all]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_recordings import (  # noqa: E402
    CACHE, _answer_tasks, check_subtitles, fresh_hub_folder, lj_clips_dir, segment_alignment,
    start_with_simulated_annotators)

from kdh_ai.job import Job  # noqa: E402
from kdh_ai.quality import normalize_text  # noqa: E402
from kdh_ai.samples import long_recording  # noqa: E402
from kdh_ai.tasks.transcription import TranscriptionTask  # noqa: E402


def kdh(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "kdh_ai.cli", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print(f"$ kdh {' '.join(args)}  -> exit {r.returncode} in {time.perf_counter() - t0:.0f} s", flush=True)
    if args[0] == "route" or r.returncode not in ok:
        print(r.stdout[-4000:], r.stderr[-3000:], sep="\n", flush=True)
    if r.returncode not in ok:
        raise SystemExit(f"kdh {' '.join(args)} failed with exit code {r.returncode}")
    return r.stdout


def make_job(root: Path, name: str, specs: list[tuple[str, float, int]], lj_dir: Path) -> dict:
    recs = {}
    rows = []
    for item, minutes, seed in specs:
        rec = long_recording(root / f"{item}.wav", minutes=minutes, seed=seed, clips_dir=lj_dir)
        recs[item] = rec
        rows.append({"item_id": item, "path": f"{item}.wav", "reference": ""})
        print(f"  {name}: {item} = {rec.duration_s / 60:.1f} min (seed {seed})", flush=True)
    pd.DataFrame(rows).to_csv(root / f"{name}.csv", index=False)
    return recs


def answers_of(job: Path, recs: dict) -> tuple[dict[str, str], dict]:
    preds = Job(job).current_predictions()
    answers, align = {}, {}
    for item, rec in recs.items():
        segs = preds[item].work_segments()
        if not segs:
            answers[item] = rec.reference
            continue
        err, words, refs = segment_alignment(segs, rec.clips)
        align[item] = (segs, err, words, refs)
        for s, r in zip(segs, refs):
            answers[f"{item}#{s.index:04d}"] = " ".join(r)
    return answers, align


def roles_count(job: Path) -> dict[str, int]:
    return pd.Series([str(r.role) for r in Job(job).roles().values()]).value_counts().to_dict()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--earlier-minutes", type=float, nargs="+", default=[10.0] * 5)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=907, help="seed of the new recording (its clips' order and pauses)")
    p.add_argument("--target", type=float, default=0.08)
    p.add_argument("--human-wer", type=float, default=0.02)
    p.add_argument("--calibration", default="6")
    p.add_argument("--earlier-calibration", default="all")
    p.add_argument("--name", default="verify10", help="folder under the benchmark cache")
    args = p.parse_args()
    from kdh_ai.labelstudio.push import read_ls_state
    from kdh_ai.labelstudio.server import stop_server

    root = CACHE / args.name
    ls_dir, env = fresh_hub_folder(root)
    lj_dir, lj_note = lj_clips_dir()
    print(f"clips: {lj_note}; annotators SIMULATED", flush=True)
    early = make_job(root, "earlier", [(f"earlier{k}", m, 101 + k) for k, m in enumerate(args.earlier_minutes)],
                     lj_dir)
    new = make_job(root, "new", [("talk", args.minutes, args.seed)], lj_dir)
    ej, nj = root / "job_earlier", root / "job_new"
    kdh("prelabel", "transcribe", "--input", str(root / "earlier.csv"), "--out", str(ej), "--no-progress", env=env)
    kdh("prelabel", "transcribe", "--input", str(root / "new.csv"), "--out", str(nj), "--no-progress", env=env)
    e_ans, _ = answers_of(ej, early)
    n_ans, n_align = answers_of(nj, new)
    print(f"earlier job: {len(e_ans)} units; new job: {len(n_ans)} units", flush=True)
    kdh("route", str(ej), "--calibration", args.earlier_calibration, env=env)
    print("earlier roles:", roles_count(ej), flush=True)
    kdh("route", str(nj), "--calibration", args.calibration, env=env)
    print("new roles after step 1:", roles_count(nj), flush=True)
    clients, startup = start_with_simulated_annotators(ls_dir)
    print(f"Label Studio started in {startup:.0f} s", flush=True)
    try:
        rng = np.random.default_rng(0)
        tt = TranscriptionTask()
        kdh("push", str(ej), "--project", "verify10: earlier", "--no-progress", env=env)
        pe = int(read_ls_state(Job(ej))["project_id"])
        print("earlier answered:", _answer_tasks(pe, e_ans, clients, rng, tt, args.human_wer), flush=True)
        kdh("pull", str(ej), env=env)
        kdh("push", str(nj), "--project", "verify10: new", "--no-progress", env=env)
        pn = int(read_ls_state(Job(nj))["project_id"])
        print("new calibration answered:", _answer_tasks(pn, n_ans, clients, rng, tt, args.human_wer), flush=True)
        kdh("pull", str(nj), env=env)
        kdh("route", str(nj), "--target-wer", str(args.target), "--prior-calibration", str(ej),
            "--human-wer", str(args.human_wer), env=env, ok=(0, 1))
        roles = Job(nj).roles()
        print("new roles after step 2:", roles_count(nj), flush=True)
        units = Job(nj).units()
        dur = {k: float(u.payload.get("duration_s") or 0.0) for k, u in units.items()}
        by_role: dict[str, list[str]] = {}
        for k, r in roles.items():
            by_role.setdefault(str(r.role), []).append(k)
        heard = sum(dur.get(k, 0.0) for k, r in roles.items() if r.role.to_people)
        print(f"people hear {heard / 60:.2f} min of segments (+3 s context each side); "
              f"audio {new['talk'].duration_s / 60:.2f} min", flush=True)
        for role, keys in sorted(by_role.items()):
            print(f"  {role}: {len(keys)} units, {sum(dur.get(k, 0) for k in keys) / 60:.2f} min", flush=True)
        kdh("push", str(nj), "--no-progress", env=env)
        print("new routed answered:", _answer_tasks(pn, n_ans, clients, rng, tt, args.human_wer), flush=True)
        kdh("pull", str(nj), env=env)
        print("final roles:", roles_count(nj), flush=True)
        kdh("deliver", str(nj), "--out", str(root / "delivery"), env=env)
    finally:
        stop_server(ls_dir)
        print("Label Studio stopped", flush=True)
    import jiwer
    tr = root / "delivery" / "transcripts"
    print("delivered files:", sorted(x.name for x in tr.glob("*")))
    rec = new["talk"]
    txt = (tr / "talk.txt").read_text(encoding="utf-8")
    ref = normalize_text(rec.reference)
    print(f"delivered WER of talk vs its reference: {jiwer.wer(ref, normalize_text(txt)):.4f} "
          f"({len(ref.split())} reference words)")
    segs, err, words, _refs = n_align["talk"]
    model_wer = err.sum() / max(words.sum(), 1)
    print(f"model-only WER of talk (pre-label, all segments): {model_wer:.4f}")
    final = Job(nj).roles()
    auto = [i for i, s in enumerate(segs) if str(final.get(f"talk#{s.index:04d}").role).endswith("auto_accept")]
    e_a, w_a = err[auto].sum(), words[auto].sum()
    print(f"auto-accepted segments: {len(auto)}; their WER vs aligned references: "
          f"{e_a / max(w_a, 1):.4f} ({int(e_a)} errors / {int(w_a)} words)")
    print("per auto-accepted segment (index, conf, errors/words):",
          [(segs[i].index, round(float(segs[i].confidence or 0), 3), int(err[i]), int(words[i])) for i in auto])
    print(check_subtitles(tr, "talk", rec.clips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
