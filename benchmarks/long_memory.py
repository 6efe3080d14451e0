"""Peak memory of one long recording: does it stay flat from 10 minutes to 2 hours?

Issue 15 asks that a 2-hour file be pre-labeled with no more peak memory than a 10-minute file's + 200 MB.
Each run below is the real job (:func:`kdh_ai.prelabel.prelabel_transcription`, default options: a long
file is read and decoded chunk by chunk, :mod:`kdh_ai.engines.streaming`) on a batch of one file, in a fresh
subprocess, whose peak RSS (``ru_maxrss``), wall and CPU time are printed side by side with

* the **baseline**: the same job with the file loaded whole (the path before issue 15: ``Transcriber.
  stream_chunk_s`` set above the file's length), on the 10-minute file and optionally a longer one, so the
  growth the streaming removes is measured in the same script;
* the transcript's WER against the recording's exact reference (:func:`kdh_ai.samples.long_recording`: real
  LJ Speech clips joined by natural pauses), the worst work segment's WER (each segment against the clips
  whose middle lies in it) and the word-level differences between the chunked and the loaded-whole text,
  with the time they occur at (do they sit at chunk boundaries?).

Usage::

    nice -n 10 .venv/bin/python benchmarks/long_memory.py                       # 10 min and 2 h (slow)
    nice -n 10 .venv/bin/python benchmarks/long_memory.py --minutes 10,60 --baseline 10,30

The long files are written under ``--cache`` (default ``benchmarks/.cache/long_memory``; a 2-hour WAV is
230 MB). Each file is decoded once per path listed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, resource, sys, time, logging
from pathlib import Path
from kdh_ai.engines import TranscribeOptions
from kdh_ai.engines.faster_whisper import Transcriber
from kdh_ai.job import Job
from kdh_ai.prelabel import prelabel_transcription
wav, job_dir, whole = sys.argv[1], sys.argv[2], sys.argv[3] == "whole"
if whole:
    Transcriber.stream_chunk_s = 1e9  # the path before issue 15: the file is loaded and decoded whole
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0, c0 = time.perf_counter(), time.process_time()
summary = prelabel_transcription(str(Path(wav).parent), job_dir, options=TranscribeOptions())
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
pred = next(iter(Job(Path(job_dir)).current_predictions().values()))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": rss0 / 1024, "wall_s": wall, "cpu_s": cpu, "setup_s": summary.setup_s,
                  "status": pred.status, "text": pred.text, "confidence": pred.confidence,
                  "duration_s": pred.payload.get("duration_s"), "check": pred.payload.get("check"),
                  "words": [w for s in pred.payload.get("segments", []) for w in s["words"]],
                  "work_segments": pred.payload.get("work_segments", [])}))
"""


def _recording(cache: Path, minutes: float) -> tuple[Path, dict]:
    from kdh_ai.samples import long_recording

    folder = cache / f"{minutes:g}min"
    wav, meta = folder / "talk.wav", folder / "reference.json"
    if not (wav.exists() and meta.exists()):
        rec = long_recording(wav, minutes=minutes, seed=0)
        meta.write_text(json.dumps({"reference": rec.reference, "clips": rec.clips, "duration_s": rec.duration_s}))
    return wav, json.loads(meta.read_text())


def _run(wav: Path, path: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="kdh-longmem-") as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, str(wav), str(Path(tmp) / "job"), path],
                             capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"run failed ({path}, {wav}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wer(ref: str, hyp: str) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    r = norm(ref)
    return jiwer.wer(r, norm(hyp)) if r.strip() else float(bool(norm(hyp).strip()))


def _worst_segment(result: dict, meta: dict) -> tuple[float, dict | None]:
    worst, at = -1.0, None
    for seg in result["work_segments"]:
        ref = " ".join(c[3] for c in meta["clips"] if seg["start"] <= (c[1] + c[2]) / 2 < seg["end"])
        if not ref and not seg["text"]:
            continue
        w = _wer(ref, seg["text"])
        if w > worst:
            worst, at = w, {"index": seg["index"], "start": seg["start"], "end": seg["end"], "wer": round(w, 4),
                            "confidence": round(seg["confidence"], 3), "check": seg.get("check")}
    return worst, at


def _differences(a: list[dict], b: list[dict]) -> list[str]:
    import difflib

    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    aw, bw = [norm(w["word"]) for w in a], [norm(w["word"]) for w in b]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=aw, b=bw, autojunk=False).get_opcodes():
        if op != "equal":
            t = a[min(i1, len(a) - 1)]["start"] if a else 0.0
            out.append(f"{t:7.1f} s {op}: {' '.join(aw[i1:i2])!r} -> {' '.join(bw[j1:j2])!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="10,120", help="lengths decoded chunk by chunk (the default path)")
    ap.add_argument("--baseline", default="10", help="lengths also decoded loaded whole (the path before)")
    ap.add_argument("--cache", type=Path, default=REPO / "benchmarks" / ".cache" / "long_memory")
    ap.add_argument("--json", type=Path, help="write every run's numbers (without texts) here")
    args = ap.parse_args()
    chunked = [float(m) for m in args.minutes.split(",") if m]
    baseline = [float(m) for m in args.baseline.split(",") if m]
    runs: list[tuple[float, str, dict, dict]] = []
    for minutes in sorted(set(chunked) | set(baseline)):
        wav, meta = _recording(args.cache, minutes)
        for path in (["chunked"] if minutes in chunked else []) + (["whole"] if minutes in baseline else []):
            t = time.time()
            res = _run(wav, path)
            print(f"  ran {minutes:g} min {path} in {time.time() - t:.0f} s", flush=True)
            runs.append((minutes, path, res, meta))

    print(f"\n{'file':>8} {'path':>8} {'peak RSS':>9} {'RTF':>7} {'audio s/CPU s':>13} {'WER':>6} "
          f"{'worst seg WER':>13} {'segs':>5} {'flagged segs':>12}  file check")
    for minutes, path, res, meta in runs:
        wer = _wer(meta["reference"], res["text"])
        worst, _ = _worst_segment(res, meta)
        flagged = sum(bool(s.get("check")) for s in res["work_segments"])
        print(f"{minutes:>6g} m {path:>8} {res['peak_rss_mb']:>6.0f} MB {res['duration_s'] / res['wall_s']:>6.1f}x "
              f"{res['duration_s'] / res['cpu_s']:>13.1f} {wer:>6.2%} {worst:>13.2%} {len(res['work_segments']):>5} "
              f"{flagged:>12}  {'failed' if res['check'] else 'passed'}")
    by = {(m, p): r for m, p, r, _ in runs}
    if chunked:
        lo, hi = min(chunked), max(chunked)
        if lo != hi:
            a, b = by[(lo, "chunked")]["peak_rss_mb"], by[(hi, "chunked")]["peak_rss_mb"]
            print(f"\nchunked: {hi:g} min peak {b:.0f} MB vs {lo:g} min {a:.0f} MB: difference {b - a:+.0f} MB, "
                  f"ratio {b / a:.2f} (issue 15: at most +200 MB)")
    for minutes in baseline:
        if (minutes, "chunked") in by:
            c, w = by[(minutes, "chunked")], by[(minutes, "whole")]
            print(f"{minutes:g} min: chunked {c['peak_rss_mb']:.0f} MB vs loaded whole {w['peak_rss_mb']:.0f} MB "
                  f"(ratio {c['peak_rss_mb'] / w['peak_rss_mb']:.2f}); wall ratio chunked/whole "
                  f"{c['wall_s'] / w['wall_s']:.2f}")
            meta = next(m for mm, p, r, m in runs if mm == minutes)
            for path, res in (("chunked", c), ("whole", w)):
                worst, at = _worst_segment(res, meta)
                print(f"  {path}: WER {_wer(meta['reference'], res['text']):.2%}, worst segment {at}")
            diffs = _differences(w["words"], c["words"])
            print(f"  word differences loaded whole -> chunked ({len(diffs)}; chunks are cut near every "
                  f"{240:g} s):")
            for d in diffs:
                print("   ", d)
    if args.json:
        args.json.write_text(json.dumps([{"minutes": m, "path": p, **{k: v for k, v in r.items()
                                                                        if k not in ("text", "words", "work_segments")}}
                                         for m, p, r, _ in runs], indent=1))


if __name__ == "__main__":
    main()
