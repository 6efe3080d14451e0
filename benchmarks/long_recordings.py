"""Long recordings: routing work segments against routing whole files, at the same delivered-WER target.

A long recording (an interview, a meeting, a lecture) used to be one item with one confidence: routing could
only accept all of it or send all of it to people, who then re-listened to the whole file. With work segments
(:func:`kdh_ai.segments.cut_segments`, written by the engine as ``payload["work_segments"]``) only the
uncertain stretches cost human time. This script measures how much, on long recordings with exact references.

Recordings (built on first use, cached under ``benchmarks/.cache/long_recordings``, never committed):

* **LJ Speech, real speech:** :func:`kdh_ai.samples.long_recording` over the 32 LJ Speech clips of the shared
  data (``../shared/data/speech_ljspeech_samples``, or ``KDH_SHARED_DATA``; the 12 bundled clips when it is
  missing): clips joined by natural pauses (0.3-1.8 s, every ninth pause 4-9 s) over a faint noise floor.
  There are only 222 s of such speech, so a clip recurs in every LJ recording (each recording draws its own
  order and pauses; the engine hears each clip in another context, but its errors on a clip repeat).
* **Synthetic, noisy stretches:** the same function over the short clips of ``benchmarks/make_speech.py``
  (the flite/festival voices ``make bench`` installs; clean, white or pink noise at 20 to 0 dB SNR, telephone
  band, 0.8-1.25x tempo, and a few clips of pure noise, silence or clicks), split into disjoint sets so that no
  sentence rendition recurs across recordings. Without the voices these recordings are skipped, with a note.

Per recording, the real engine (Whisper tiny.en, ``kdh prelabel transcribe`` with default options, through
:func:`kdh_ai.prelabel.run_prelabel`) transcribes it once (cached job). The work segments are the engine's
``work_segments`` when it writes them; with an engine that does not yet, this script cuts them itself with
:func:`kdh_ai.segments.cut_segments` over the engine's words and Silero VAD's speech probabilities (it says
which). **Per-segment errors:** the normalized reference of the recording is aligned to its normalized
hypothesis words (``jiwer``); a reference word aligned to a hypothesis word belongs to that word's segment; an
inserted word is an error of its segment; a deleted reference word belongs to the segment at its time on the
clip timeline (interpolated inside its clip), among the segments between its aligned neighbours. The segments'
errors sum exactly to the file's, so both kinds of unit are scored on the same alignment.

Routing, with the project's own :func:`kdh_ai.routing.threshold.choose_threshold` as ``kdh route`` calls it,
for units = segments and units = whole files, on the same batch (every recording) and the same targets:

* **kdh route defaults** (``--seeds`` draws): a random calibration slice of 20% of the units, at least 30 (or
  all of them when there are fewer: ``kdh route calibrate``'s defaults), reviewed by trusted reviewers (counted
  as human time, delivered exact); the threshold from the slice at ``--delta``; 5% of the auto-accepted units
  audited by people. People are **assumed** (not measured) to leave ``--human-wer`` of the words wrong on
  what they touch (post-editors starting from the pre-label, as ``benchmarks/routing.py --residual``); a
  person's errors on a unit of ``n`` words are ``Binomial(n, human_wer)``. The delivered WER is computed on the
  references; "held" is the share of draws where it met the target.
* **with prior calibration** (``--prior-hours H``): a client's earlier recordings reviewed whole (``kdh route
  --calibration all``) serve later batches (``kdh route --prior-calibration``). Each draw also draws ``H`` hours
  of the *other* recordings (not those of the batch) as that earlier batch, whose every unit joins the slice;
  the batch's own slice is ``--own-slice`` units. The earlier listening is not counted (the earlier batch paid
  for it as delivered work); ``kdh route``'s drift check runs as it does there (a drifted draw routes on its
  own slice alone).
* **best threshold in hindsight** (no calibration, no audit, expected people errors): the threshold on
  confidence that meets the target with the least human time, knowing every unit's true errors. It is what a
  confidence threshold can reach at best, and it gives whole-file routing its best chance (no slice to pay for).

Human time is the audio people listen to: a whole file, or a segment plus ``--context-s`` seconds of context
on each side (3 s, as ``kdh push`` cuts a segment's review clip). It is printed as **human audio minutes per
delivered audio hour**, with the ratio whole files / segments.

**End to end** (``--end-to-end MINUTES``): one recording of that length (LJ Speech clips joined with pauses)
through the commands a lead runs, each timed: ``kdh prelabel transcribe``, ``kdh route --calibration 0.2``,
``kdh push``, SIMULATED annotators answering every task through Label Studio's API (each segment with its
aligned reference, a few words dropped; not timed: people's time is not the software's), ``kdh pull``,
``kdh route --target-wer``, ``kdh push``, answers, ``kdh pull``, ``kdh deliver``; on a real Label Studio
server started on a free port (its start-up is printed apart: once per hub, not per file). It prints each
step's seconds and seconds per audio minute, and the whole against the audio's length.

Usage::

    .venv/bin/python benchmarks/long_recordings.py [--lj 3] [--lj-minutes 5] [--synthetic 4] [--targets 0.05 0.08]
        [--human-wer 0.02] [--seeds 200] [--context-s 3] [--batch-hours 0 4]
    .venv/bin/python benchmarks/long_recordings.py --batch-hours 0.17 --prior-hours 1   # one 10-min recording
    .venv/bin/python benchmarks/long_recordings.py --end-to-end 60
"""

from __future__ import annotations

import argparse
import bisect
import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from kdh_ai.audio import load_audio  # noqa: E402
from kdh_ai.engines import TranscribeOptions, make_transcriber  # noqa: E402
from kdh_ai.engines.common import vad_probabilities  # noqa: E402
from kdh_ai.job import Job  # noqa: E402
from kdh_ai.prelabel import run_prelabel  # noqa: E402
from kdh_ai.quality import normalize_text  # noqa: E402
from kdh_ai.records import Prediction, Segment  # noqa: E402
from kdh_ai.routing import drift_check  # noqa: E402
from kdh_ai.routing.threshold import choose_threshold  # noqa: E402
from kdh_ai.samples import ljspeech_dir, long_recording  # noqa: E402
from kdh_ai.segments import FRAME_S, cut_segments  # noqa: E402
from kdh_ai.tasks.transcription import TranscriptionTask  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "long_recordings"
VERSION = 1  # bump when the recordings change (a new cache folder)


def _shared_lj() -> Path | None:
    """The shared data's 32 LJ Speech clips, if they sit beside the checkout (or under ``KDH_SHARED_DATA``)."""
    roots = [Path(os.environ["KDH_SHARED_DATA"])] if os.environ.get("KDH_SHARED_DATA") else []
    roots += [p / "shared" / "data" for p in REPO.parents[:3]]
    for root in roots:
        if (root / "speech_ljspeech_samples" / "manifest.csv").exists():
            return root / "speech_ljspeech_samples"
    return None


def lj_clips_dir() -> tuple[Path, str]:
    """A clips folder for :func:`long_recording` (``manifest.csv`` with ``item_id, path, reference``) and what
    it holds: the shared 32 clips converted to that format, or the 12 bundled ones."""
    shared = _shared_lj()
    if shared is None:
        return ljspeech_dir(), "the 12 bundled LJ Speech clips (shared data not found)"
    out = CACHE / "lj32"
    out.mkdir(parents=True, exist_ok=True)
    with open(shared / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "path", "reference"])
        for r in rows:
            w.writerow([r["utterance_id"], str(shared / r["audio_path"]), r["normalized_text"]])
    return out, f"the {len(rows)} LJ Speech clips of {shared}"


def synthetic_clip_sets(n_sets: int) -> tuple[list[Path], str]:
    """``n_sets`` disjoint clip folders from ``make_speech.py``'s short clips (empty without the voices)."""
    from make_speech import make_speech  # noqa: PLC0415

    try:
        root = make_speech(minutes=22, long_files=4, seed=0)
    except RuntimeError as exc:
        return [], f"no synthetic recordings: {exc}"
    with open(root / "short" / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(7)
    order = rng.permutation(len(rows))
    out = []
    for k in range(n_sets):
        folder = CACHE / f"syn-{root.name}-{k}of{n_sets}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "path", "reference", "condition"])
            for i in order[k::n_sets]:
                r = rows[int(i)]
                w.writerow([r["item_id"], str(root / "short" / r["path"]), r["reference"], r["condition"]])
        out.append(folder)
    return out, f"{len(rows)} synthetic clips of {root} in {n_sets} disjoint sets"


def _clip_minutes(folder: Path) -> float:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as fh:
        paths = [r["path"] for r in csv.DictReader(fh)]
    return sum(len(load_audio(folder / p)) for p in paths) / 16000 / 60


def add_noisy_stretches(path: Path, clips: list[list[Any]], *, per_minute: float, seed: int) -> list[list[Any]]:
    """Lay noise over a few stretches of a recording (a door, traffic, a fan switched on): white or pink noise
    at 0, 5 or 10 dB SNR against the recording's speech, each stretch 20-45 s, ``per_minute`` stretches a
    minute. Rewrites the WAV; returns the stretches as ``(start s, end s, "noise kind @ SNR")``."""
    from make_speech import _noise, _write_wav  # noqa: PLC0415  (the same noise and WAV as the synthetic clips)

    audio, sr = load_audio(path), 16000
    speech = np.concatenate([audio[int(a * sr):int(b * sr)] for _cid, a, b, _ref in clips])
    p_speech = float(np.mean(speech**2))
    rng = np.random.default_rng(seed)
    n = max(1, round(per_minute * len(audio) / sr / 60))
    stretches = []
    for k in range(n):
        length = rng.uniform(20, 45)
        start = rng.uniform(k, k + 1) * (len(audio) / sr - length) / n
        kind, snr = ("white" if rng.random() < 0.5 else "pink"), float(rng.choice([0.0, 5.0, 10.0]))
        a, b = int(start * sr), int((start + length) * sr)
        noise = _noise(kind, b - a, rng)
        audio[a:b] += noise * np.sqrt(p_speech / 10 ** (snr / 10) / (float(np.mean(noise**2)) + 1e-12))
        stretches.append([round(start, 2), round(start + length, 2), f"{kind} noise at {snr:.0f} dB SNR"])
    peak = float(np.max(np.abs(audio)))
    _write_wav(path, audio * (0.9 / peak) if peak > 0.95 else audio)
    return stretches


def build_recordings(*, n_lj: int, n_noisy: int, lj_minutes: float, n_syn: int) -> tuple[Path, list[str]]:
    """Write the recordings (each once: cached) and their manifest (``item_id, path, reference, group,
    duration_s``), with each recording's clip timeline (``<id>.clips.json``); return the manifest and notes on
    the sources."""
    folder = CACHE / f"recordings-v{VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    lj_dir, lj_note = lj_clips_dir()
    specs: list[tuple[str, Path, float, int, str]] = [(f"lj{k}-{lj_minutes:g}m", lj_dir, lj_minutes, k, "LJ Speech")
                                                     for k in range(n_lj)]
    specs += [(f"ljnoisy{k}-{lj_minutes:g}m", lj_dir, lj_minutes, 50 + k, "LJ + noisy stretches")
              for k in range(n_noisy)]
    syn_dirs, syn_note = synthetic_clip_sets(n_syn) if n_syn else ([], "no synthetic recordings asked for")
    for k, d in enumerate(syn_dirs):
        # Just under the set's own length: each clip once (pauses make up the rest).
        specs.append((f"syn{k}of{n_syn}", d, 0.97 * _clip_minutes(d), 100 + k, "synthetic"))
    rows = []
    for item_id, clips_dir, minutes, seed, group in specs:
        wav, meta = folder / f"{item_id}.wav", folder / f"{item_id}.clips.json"
        if not (wav.exists() and meta.exists()):
            rec = long_recording(wav, minutes=minutes, seed=seed, clips_dir=clips_dir)
            noisy = add_noisy_stretches(wav, rec.clips, per_minute=0.4, seed=seed) if "noisy" in group else []
            meta.write_text(json.dumps({"clips": rec.clips, "reference": rec.reference,
                                        "duration_s": rec.duration_s, "noisy_stretches": noisy}))
        info = json.loads(meta.read_text())
        rows.append({"item_id": item_id, "path": wav.name, "reference": info["reference"], "group": group,
                     "duration_s": info["duration_s"]})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, [lj_note, syn_note]


def transcribe(manifest: Path) -> tuple[Job, str]:
    """Pre-label the recordings with the default engine options (cached job; resumes if interrupted); the job
    and a line on how long the engine took."""
    opts = TranscribeOptions()
    job_dir = manifest.parent / "job"
    run = run_prelabel(job_dir, manifest, make_prelabeler=lambda: make_transcriber(opts), task="transcription",
                       item_kind="audio", options=dataclasses.asdict(opts), log_progress=sys.stderr.isatty())
    if not run.processed:
        return Job(job_dir), f"transcripts cached in {job_dir}"
    return Job(job_dir), (f"tiny.en transcribed {run.audio_s / 60:.1f} min in {run.wall_s:.0f} s "
                          f"({run.audio_s / max(run.wall_s, 1e-9):.0f}x real time, {os.cpu_count()} cores, shared)")


def work_segments(pred: Prediction, audio_path: Path) -> tuple[list[Segment], str]:
    """The recording's work segments: the engine's, or cut here from its words and VAD (and which)."""
    segs = pred.work_segments()
    if segs:
        return segs, "engine"
    words = pred.payload.get("words") or [w for s in pred.payload.get("segments", []) for w in s.get("words", [])]
    audio = load_audio(audio_path)
    probs = vad_probabilities(audio)
    return cut_segments(words, duration_s=len(audio) / 16000, speech_probs=probs, frame_s=FRAME_S), "benchmark"


def _ref_words(clips: list[list[Any]]) -> tuple[list[str], list[float]]:
    """Normalized reference words of a recording and each one's estimated time (spread over its clip)."""
    words, times = [], []
    for _cid, start, end, ref in clips:
        ws = normalize_text(str(ref)).split()
        for i, w in enumerate(ws):
            words.append(w)
            times.append(start + (end - start) * (i + 0.5) / len(ws))
    return words, times


def segment_errors(segments: list[Segment], clips: list[list[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Word errors and reference words of each segment (see the module docstring: one alignment per file)."""
    errors, words, _refs = segment_alignment(segments, clips)
    return errors, words


def segment_alignment(segments: list[Segment], clips: list[list[Any]]
                      ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """:func:`segment_errors`, and the (normalized) reference words that belong to each segment."""
    import jiwer

    ref, ref_t = _ref_words(clips)
    hyp, hyp_seg = [], []
    for s in segments:
        ws = normalize_text(s.text).split() if s.text else []
        hyp += ws
        hyp_seg += [s.index] * len(ws)
    starts = [s.start for s in segments]
    errors, words = np.zeros(len(segments)), np.zeros(len(segments))
    refs: list[list[str]] = [[] for _ in segments]

    def at_time(t: float, lo: int, hi: int) -> int:
        return min(max(bisect.bisect_right(starts, t) - 1, lo), hi)

    if not hyp or not ref:
        for w, t in zip(ref, ref_t):
            k = at_time(t, 0, len(segments) - 1)
            errors[k] += 1
            words[k] += 1
            refs[k].append(w)
        for k in hyp_seg:
            errors[k] += 1
        return errors, words, refs
    for c in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        if c.type in ("equal", "substitute"):
            for r, h in zip(range(c.ref_start_idx, c.ref_end_idx), range(c.hyp_start_idx, c.hyp_end_idx)):
                words[hyp_seg[h]] += 1
                errors[hyp_seg[h]] += c.type == "substitute"
                refs[hyp_seg[h]].append(ref[r])
        elif c.type == "insert":
            for h in range(c.hyp_start_idx, c.hyp_end_idx):
                errors[hyp_seg[h]] += 1
        else:  # delete: between the hypothesis words around it
            lo = hyp_seg[c.hyp_start_idx - 1] if c.hyp_start_idx > 0 else 0
            hi = hyp_seg[c.hyp_start_idx] if c.hyp_start_idx < len(hyp) else len(segments) - 1
            for r in range(c.ref_start_idx, c.ref_end_idx):
                k = at_time(ref_t[r], lo, hi)
                errors[k] += 1
                words[k] += 1
                refs[k].append(ref[r])
    return errors, words, refs


def unit_table(job: Job, manifest: Path, *, context_s: float, config_hash: str | None = None
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per unit (``kind`` = ``segment`` or ``file``): confidence, errors, reference words, audio
    seconds, and the seconds a person listens to it."""
    items = pd.read_csv(manifest, keep_default_na=False).set_index("item_id")
    preds = job.current_predictions(config_hash)
    rows, sources, check = [], set(), {"file_wer_project": [], "file_wer_aligned": []}
    for item_id, it in items.iterrows():
        pred = preds[item_id]
        clips = json.loads((manifest.parent / f"{item_id}.clips.json").read_text())["clips"]
        segs, source = work_segments(pred, manifest.parent / it["path"])
        sources.add(source)
        err, words = segment_errors(segs, clips)
        dur = float(pred.payload.get("duration_s") or it["duration_s"])
        for s, e, n in zip(segs, err, words):
            rows.append({"kind": "segment", "file": item_id, "group": it["group"], "key": f"{item_id}#{s.index:04d}",
                         "confidence": s.confidence, "errors": e, "words": n, "audio_s": s.end - s.start,
                         "listen_s": min(dur, s.end - s.start + 2 * context_s), "status": s.status})
        rows.append({"kind": "file", "file": item_id, "group": it["group"], "key": item_id,
                     "confidence": pred.confidence or 0.0, "errors": err.sum(), "words": words.sum(),
                     "audio_s": dur, "listen_s": dur, "status": pred.status})
        e_p, n_p = TranscriptionTask().item_errors([pred.text], [it["reference"]])[0]
        check["file_wer_project"].append(e_p / n_p)
        check["file_wer_aligned"].append(err.sum() / words.sum())
    return pd.DataFrame(rows), {"segments_from": sorted(sources), **check}


def route_once(units: pd.DataFrame, *, target: float, human_wer: float, rng: np.random.Generator,
               delta: float, cal_share: float = 0.2, cal_min: int = 30, audit_rate: float = 0.05,
               prior: pd.DataFrame | None = None, own_slice: int = 6) -> dict[str, float]:
    """One draw of ``kdh route`` with its defaults on these units (see the module docstring).

    With ``prior`` (earlier recordings of the client, reviewed whole: ``kdh route --calibration all``), this
    batch's own slice is ``own_slice`` units and the prior's units join it (``--prior-calibration``); the prior's
    listening was paid for by the earlier batch and is not counted here. As in ``kdh route``, the prior is
    dropped when this batch's confidences or its slice's errors say it is not like them
    (:func:`kdh_ai.routing.drift_check`)."""
    conf = units["confidence"].to_numpy(float)
    err, words = units["errors"].to_numpy(float), units["words"].to_numpy(int)
    listen = units["listen_s"].to_numpy(float)
    n = len(units)
    if prior is not None:
        k = min(n, own_slice)
    else:
        k = n if n <= cal_min else max(cal_min, math.ceil(cal_share * n))
    order = rng.permutation(n)
    cal, rest = order[:k], order[k:]
    c_conf, c_err, c_words = conf[cal], err[cal], words[cal]
    if prior is not None and drift_check(c_conf, np.c_[c_err, c_words], prior["confidence"].to_numpy(float),
                                         prior[["errors", "words"]].to_numpy(float), delta=delta,
                                         batch_confidence=conf)["drift"]:
        prior = None  # kdh route's drift check: this batch is not like the earlier ones
    if prior is not None:
        c_conf = np.concatenate([c_conf, prior["confidence"].to_numpy(float)])
        c_err = np.concatenate([c_err, prior["errors"].to_numpy(float)])
        c_words = np.concatenate([c_words, prior["words"].to_numpy(int)])
    people = np.zeros(len(rest), bool)
    if len(rest):
        choice = choose_threshold(c_conf, c_err, c_words, batch_confidence=conf[rest],
                                  human_error_rate=human_wer, target=target, fixed_human_share=k / n,
                                  fixed_error_share=0.0, delta=delta, curve_bounds=False)
        to_people = conf[rest] < choice.threshold
        people = to_people | (~to_people & (rng.random(len(rest)) < audit_rate))
    delivered = err[rest][~people].sum() + rng.binomial(words[rest][people], human_wer).sum()
    return {"human_s": float(listen[cal].sum() + listen[rest][people].sum()),
            "wer": float(delivered / words.sum()), "units_to_people": int(k + people.sum())}


def best_in_hindsight(units: pd.DataFrame, *, target: float, human_wer: float) -> dict[str, float]:
    """The confidence threshold that meets the target with the least listening, knowing the true errors."""
    u = units.sort_values("confidence")
    conf = u["confidence"].to_numpy(float)
    err, words, listen = (u[c].to_numpy(float) for c in ("errors", "words", "listen_s"))
    for t in [*np.unique(conf), np.inf]:  # more to people as t grows: the first that meets the target is cheapest
        low = conf < t
        wer = (err[~low].sum() + human_wer * words[low].sum()) / words.sum()
        if wer <= target:
            return {"human_s": float(listen[low].sum()), "wer": float(wer), "units_to_people": int(low.sum())}
    return {"human_s": np.nan, "wer": np.nan, "units_to_people": len(u)}  # not even people alone meet it


def draw_batch(table: pd.DataFrame, files: list[str], hours: float, rng: np.random.Generator) -> pd.DataFrame:
    """A client batch: the pool itself (``hours`` = 0), or recordings drawn with replacement until the batch
    holds ``hours`` of audio (the pool stands for the client's stream, as in ``benchmarks/routing.py``)."""
    if hours <= 0:
        return table
    by_file = dict(tuple(table.groupby("file")))
    length = {f: float(g.loc[g["kind"] == "file", "audio_s"].iloc[0]) for f, g in by_file.items()}
    picked, total = [], 0.0
    while total < hours * 3600:
        f = files[int(rng.integers(len(files)))]
        picked.append(by_file[f])
        total += length[f]
    return pd.concat(picked, ignore_index=True)


def compare(table: pd.DataFrame, *, targets: list[float], human_wer: float, seeds: int, delta: float,
            batch_hours: list[float], prior_hours: float = 0.0, own_slice: int = 6) -> pd.DataFrame:
    """The key table: human audio minutes per delivered audio hour, segments vs whole files, for each target
    and batch size (every draw routes the same batch both ways). With ``prior_hours``, each draw also draws
    that many hours of *other* recordings, reviewed whole, as prior calibration (:func:`route_once`)."""
    files = sorted(table.loc[table["kind"] == "file", "file"])
    rows = []
    for hours, target in ((h, t) for h in batch_hours for t in targets):
        rng = np.random.default_rng(int(target * 1e4) + int(hours * 100))
        draws: dict[str, list[dict[str, float]]] = {"file": [], "segment": []}
        sizes: dict[str, list[int]] = {"file": [], "segment": []}
        audio_h = []
        for _ in range(seeds):
            batch = draw_batch(table, files, hours, rng)
            prior = None
            if prior_hours > 0:
                others = [f for f in files if f not in set(batch["file"])]
                prior = draw_batch(table, others, prior_hours, rng) if others else None
            audio_h.append(batch.loc[batch["kind"] == "file", "audio_s"].sum() / 3600)
            for kind in draws:
                units = batch[batch["kind"] == kind].reset_index(drop=True)
                sizes[kind].append(len(units))
                d = route_once(units, target=target, human_wer=human_wer, rng=rng, delta=delta,
                               prior=None if prior is None else prior[prior["kind"] == kind], own_slice=own_slice)
                draws[kind].append({**d, "min_per_h": d["human_s"] / 60 / audio_h[-1]})
        for kind, ds in draws.items():
            units = table[table["kind"] == kind]
            wers = np.array([d["wer"] for d in ds])
            hind = best_in_hindsight(units, target=target, human_wer=human_wer)
            pool_h = table.loc[table["kind"] == "file", "audio_s"].sum() / 3600
            rows.append({"batch_h": float(np.mean(audio_h)), "target": target,
                         "units": "whole files" if kind == "file" else "segments",
                         "n_units": float(np.mean(sizes[kind])),
                         "route_min_per_h": float(np.mean([d["min_per_h"] for d in ds])),
                         "route_units_to_people": float(np.mean([d["units_to_people"] for d in ds])),
                         "route_wer": wers.mean(), "route_wer_p95": np.quantile(wers, 0.95),
                         "route_held": float(np.mean(wers <= target)),
                         "best_min_per_h": hind["human_s"] / 60 / pool_h, "best_wer": hind["wer"]})
    return pd.DataFrame(rows)


def print_table(res: pd.DataFrame, *, seeds: int) -> None:
    """The table as README.md shows it."""
    print(f"\n{'batch':>7} {'target':>6} {'units':>11} {'n':>6} | kdh route defaults, {seeds} draws: {'min/h':>6} "
          f"{'to ppl':>6} {'WER':>6} {'p95':>6} {'held':>5} | hindsight best: {'min/h':>6} {'WER':>6}")
    for r in res.itertuples():
        print(f"{r.batch_h:>5.1f} h {r.target:>6.1%} {r.units:>11} {r.n_units:>6.0f} | {'':>29}{r.route_min_per_h:>6.1f} "
              f"{r.route_units_to_people:>6.0f} {r.route_wer:>6.2%} {r.route_wer_p95:>6.2%} {r.route_held:>5.0%} | "
              f"{'':>15} {r.best_min_per_h:>6.1f} {r.best_wer:>6.2%}")
    print()
    for (hours, target), g in res.groupby(["batch_h", "target"], sort=False):
        f, s = g.set_index("units").loc["whole files"], g.set_index("units").loc["segments"]
        print(f"batch {hours:.1f} h, target {target:.1%}: human minutes, whole files / segments = "
              f"{_ratio(f.route_min_per_h, s.route_min_per_h)} (kdh route defaults), "
              f"{_ratio(f.best_min_per_h, s.best_min_per_h)} (hindsight best)")


def print_groups(table: pd.DataFrame, *, targets: list[float], human_wer: float) -> None:
    """Hindsight best per kind of recording (each group as its own batch): where segments pay off."""
    print("\nPer kind of recording (each as its own batch), hindsight best, human audio min per audio hour:")
    print(f"{'recordings':>22} {'min':>5} {'WER':>6} " + " ".join(f"{'files':>6} {'segs':>6} {'ratio':>6}"
                                                           for _ in targets) + "   (targets "
          + ", ".join(f"{t:.0%}" for t in targets) + ")")
    for group, g in table.groupby("group"):
        f = g[g["kind"] == "file"]
        line = f"{group:>22} {f['audio_s'].sum() / 60:>5.1f} {f['errors'].sum() / f['words'].sum():>6.1%} "
        hours = f["audio_s"].sum() / 3600
        for t in targets:
            m = {k: best_in_hindsight(g[g["kind"] == k], target=t, human_wer=human_wer)["human_s"] / 60 / hours
                 for k in ("file", "segment")}
            line += f"{m['file']:>6.1f} {m['segment']:>6.1f} {_ratio(m['file'], m['segment']):>6} "
        print(line)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else ("inf" if a > 0 else "-")


def describe(table: pd.DataFrame, check: dict[str, Any], notes: list[str], engine_note: str) -> None:
    """What the recordings are and how the engine did on them."""
    files = table[table["kind"] == "file"]
    segs = table[table["kind"] == "segment"]
    print("Recordings: " + "; ".join(notes))
    for g, f in files.groupby("group"):
        print(f"  {g}: {len(f)} recordings, {f['audio_s'].sum() / 60:.1f} min, WER {f['errors'].sum() / f['words'].sum():.2%}"
              f" (per file {', '.join(f'{e / n:.1%}' for e, n in zip(f['errors'], f['words']))})")
    print(f"  total {files['audio_s'].sum() / 60:.1f} min of audio, {int(files['words'].sum())} reference words; "
          f"{engine_note}")
    print(f"Work segments from: {', '.join(check['segments_from'])} ({len(segs)} segments, "
          f"{segs['audio_s'].median():.1f} s median, {segs['audio_s'].max():.1f} s longest, "
          f"{(segs['status'] != 'ok').sum()} without words)")
    gap = np.max(np.abs(np.array(check["file_wer_project"]) - np.array(check["file_wer_aligned"])))
    print(f"Per-segment errors sum to the file's aligned WER; against kdh's own file WER (whole-text "
          f"normalization) the largest difference is {gap:.2%} absolute")


# ------------------------------------------------------------------------------------------------------------
# End to end: one long file through prelabel, route, push, pull, deliver (--end-to-end MINUTES)

E2E_PASSWORD = "kakuma-bench-2026"
E2E_ANNOTATORS = ("simulated.bench1@kdh.demo", "simulated.bench2@kdh.demo")


def _timed_kdh(steps: list[tuple[str, float]], name: str, *args: str, env: dict[str, str],
               ok: tuple[int, ...] = (0,)) -> None:
    """Run ``kdh ARGS`` (the command a lead types) and record its wall time under ``name``."""
    import subprocess  # noqa: PLC0415

    t0 = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "kdh_ai.cli", *args], env=env, stdout=subprocess.DEVNULL)
    steps.append((name, time.perf_counter() - t0))
    print(f"  kdh {' '.join(args[:2])} ...: {steps[-1][1]:.1f} s (exit {rc})", flush=True)
    if rc not in ok:
        raise SystemExit(f"kdh {args[0]} failed with exit code {rc}")


def _unit_of(data: dict[str, Any]) -> str | None:
    """The unit key a Label Studio task stands for (a whole item, or one segment of it)."""
    from kdh_ai.records import unit_key  # noqa: PLC0415

    for key in ("unit_key", "kdh_unit", "key"):
        if data.get(key):
            return str(data[key])
    item = data.get("item_id") or data.get("kdh_item_id")
    if item is None:
        return None
    seg = data.get("segment", data.get("kdh_segment"))
    return unit_key(str(item), None if seg is None else int(seg))


def _answer_tasks(project_id: int, answers: dict[str, str], clients: list[Any], rng: np.random.Generator,
                  task_type: Any, error_rate: float = 0.02) -> int:
    """SIMULATED annotators: take every task the label stream serves and submit the unit's reference with
    ``error_rate`` of its words dropped (no timing: people's time is not the software's)."""
    from kdh_ai.labelstudio.client import LabelStudioError  # noqa: PLC0415

    done = 0
    for client in clients:
        while True:
            try:
                task = client.get_json(f"api/projects/{project_id}/next/", what="next task")
            except LabelStudioError:
                break
            unit = _unit_of(task.get("data") or {})
            if unit is None or unit not in answers:
                break
            text = " ".join(w for w in answers[unit].split() if rng.random() >= error_rate)
            client.request("POST", f"api/tasks/{task['id']}/annotations/", what="annotate",
                           json_body={"result": task_type.answer_to_result(text), "lead_time": 1.0})
            done += 1
    return done


def fresh_hub_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """Wipe ``root`` (stopping a Label Studio server an earlier run left in it) and make it again; return its
    ``labelstudio`` folder and an environment for ``kdh`` in which Label Studio, the hub and qualification are
    this folder's own (no outside server or token leaks in)."""
    import shutil  # noqa: PLC0415

    from kdh_ai.labelstudio.server import stop_server  # noqa: PLC0415

    ls_dir = root / "labelstudio"
    if ls_dir.exists():
        stop_server(ls_dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    env = {**os.environ, "KDH_LS_DATA_DIR": str(ls_dir), "KDH_HUB_DIR": str(root / "hub"),
           "KDH_QUALIFICATION": "off"}
    for k in ("KDH_LS_URL", "KDH_LS_TOKEN"):
        env.pop(k, None)
    return ls_dir, env


def start_with_simulated_annotators(ls_dir: Path) -> tuple[list[Any], float]:
    """Start Label Studio on a free port in ``ls_dir`` and log in the SIMULATED annotators
    (:data:`E2E_ANNOTATORS`); their API clients and the server's start-up seconds. The server is stopped again
    if an annotator cannot be made."""
    from kdh_ai.labelstudio.accounts import add_annotator, login_token  # noqa: PLC0415
    from kdh_ai.labelstudio.client import Connection, LabelStudioClient  # noqa: PLC0415
    from kdh_ai.labelstudio.server import ServerOptions, local_connection, start_server, stop_server  # noqa: PLC0415

    t0 = time.perf_counter()
    start_server(ServerOptions(data_dir=ls_dir, port=_free_port(), start_timeout_s=600.0))
    startup = time.perf_counter() - t0
    try:
        conn = local_connection(ls_dir)
        clients = []
        for email in E2E_ANNOTATORS:
            add_annotator(conn, email, password=E2E_PASSWORD, last_name=email.split("@")[0], simulated=True)
            clients.append(LabelStudioClient(Connection(url=conn.url,
                                                        token=login_token(conn.url, email, E2E_PASSWORD))))
    except BaseException:
        stop_server(ls_dir)
        raise
    return clients, startup


def end_to_end(minutes: float, *, target: float, human_wer: float, keep: bool = False) -> None:
    """One ``minutes``-long recording through the loop a lead runs; prints each step's time against the
    audio's length. Label Studio is a real server on a free port; the annotators are SIMULATED."""
    from kdh_ai.labelstudio.push import read_ls_state  # noqa: PLC0415
    from kdh_ai.labelstudio.server import stop_server  # noqa: PLC0415

    root = CACHE / f"e2e-{minutes:g}m"
    ls_dir, env = fresh_hub_folder(root)
    lj_dir, lj_note = lj_clips_dir()
    rec = long_recording(root / "recording.wav", minutes=minutes, seed=11, clips_dir=lj_dir)
    (root / "recording.clips.json").write_text(json.dumps(rec.clips))
    manifest = root / "manifest.csv"
    pd.DataFrame([{"item_id": "recording", "path": "recording.wav", "reference": ""}]).to_csv(manifest, index=False)
    print(f"End to end: one recording of {rec.duration_s / 60:.1f} min ({lj_note}); Label Studio on 127.0.0.1; "
          f"annotators SIMULATED", flush=True)
    job = root / "job"
    steps: list[tuple[str, float]] = []
    _timed_kdh(steps, "prelabel", "prelabel", "transcribe", "--input", str(manifest), "--out", str(job),
               "--no-progress", env=env)
    pred = Job(job).current_predictions()["recording"]
    segs = pred.work_segments()
    answers = {"recording": rec.reference}
    if segs:
        _e, _n, refs = segment_alignment(segs, rec.clips)
        answers = {f"recording#{s.index:04d}": " ".join(r) for s, r in zip(segs, refs)}
    print(f"  {len(segs) or 'no'} work segments", flush=True)
    _timed_kdh(steps, "route (calibration slice)", "route", str(job), "--calibration", "0.2",
               "--target-wer", str(target), env=env)
    clients, startup = start_with_simulated_annotators(ls_dir)
    try:
        rng = np.random.default_rng(0)
        task_type = TranscriptionTask()
        _timed_kdh(steps, "push (calibration)", "push", str(job), "--project", "bench: long recording",
                   "--no-progress", env=env)
        project_id = int(read_ls_state(Job(job))["project_id"])
        n1 = _answer_tasks(project_id, answers, clients, rng, task_type, human_wer)
        _timed_kdh(steps, "pull (calibration)", "pull", str(job), env=env)
        _timed_kdh(steps, "route (threshold)", "route", str(job), "--target-wer", str(target), "--human-wer",
                   str(human_wer), env=env, ok=(0, 1))
        roles = pd.Series([str(r.role) for r in Job(job).roles().values()]).value_counts().to_dict()
        units_s = {k: float(u.payload.get("duration_s") or 0.0) for k, u in Job(job).units().items()}
        heard = sum(units_s.get(k, 0.0) for k, r in Job(job).roles().items() if r.role.to_people)
        print(f"  roles after routing: {roles}; people hear {heard / 60:.1f} of {rec.duration_s / 60:.1f} min "
              f"(segments only, without the 3 s of context each side)", flush=True)
        _timed_kdh(steps, "push (routed)", "push", str(job), "--no-progress", env=env)
        n2 = _answer_tasks(project_id, answers, clients, rng, task_type, human_wer)
        _timed_kdh(steps, "pull (routed)", "pull", str(job), env=env)
        _timed_kdh(steps, "deliver", "deliver", str(job), "--out", str(root / "delivery"), env=env)
    finally:
        if not keep:
            stop_server(ls_dir)
    audio_min = rec.duration_s / 60
    total = sum(t for _n, t in steps)
    print(f"\nLabel Studio started in {startup:.0f} s (once per hub, not per file); SIMULATED annotators "
          f"answered {n1} + {n2} tasks (their time is not counted)")
    print(f"{'step':<28} {'seconds':>8} {'s per audio min':>16}")
    for name, t in steps:
        print(f"{name:<28} {t:>8.1f} {t / audio_min:>16.2f}")
    print(f"{'total (software)':<28} {total:>8.1f} {total / audio_min:>16.2f}")
    print(f"audio {rec.duration_s:.0f} s: end to end {total:.0f} s = {total / rec.duration_s:.2f}x the audio's "
          f"length ({rec.duration_s / total:.1f}x real time); per recording: "
          f"{', '.join(sorted(p.name for p in (root / 'delivery' / 'transcripts').glob('*')))}")
    print(check_subtitles(root / "delivery" / "transcripts", "recording", rec.clips))
    print(delivered_wer(root / "delivery" / "transcripts" / "recording.txt", Job(job), "recording", rec.reference))


def delivered_wer(transcript: Path, job: Job, item_id: str, reference: str) -> str:
    """The delivered transcript's WER against the recording's reference, beside the model's alone."""
    import jiwer

    ref = normalize_text(reference)
    delivered = jiwer.wer(ref, normalize_text(transcript.read_text(encoding="utf-8")))
    model = jiwer.wer(ref, normalize_text(job.current_predictions()[item_id].text))
    return (f"delivered WER {delivered:.2%} against the recording's reference ({len(ref.split())} words); "
            f"the model alone {model:.2%}")


def check_subtitles(transcripts: Path, item_id: str, clips: list[list[Any]]) -> str:
    """Read the delivered SRT and WebVTT back (``srt``, ``webvtt-py``) and hold the cues against the clip
    timeline (where speech really is): the share of cues that start while speech plays (at most 0.3 s before
    a clip's speech, or inside it), and the share of clips whose speech onset has a cue starting within 0.3 s
    (a clip that follows the previous one after a short pause may share its cue: that counts as a miss)."""
    import srt as srt_lib  # noqa: PLC0415
    import webvtt  # noqa: PLC0415

    cues = list(srt_lib.parse((transcripts / f"{item_id}.srt").read_text(encoding="utf-8")))
    vtt = webvtt.read(str(transcripts / f"{item_id}.vtt"))
    starts = np.array([c.start.total_seconds() for c in cues])
    spans = np.array([(c[1] - 0.3, c[2]) for c in clips])
    in_speech = np.array([bool(np.any((spans[:, 0] <= t) & (t <= spans[:, 1]))) for t in starts])
    onset = np.array([float(np.min(np.abs(starts - c[1]))) for c in clips]) if len(starts) else np.array([np.inf])
    return (f"subtitles: {len(cues)} SRT and {len(vtt.captions)} WebVTT cues read back; {in_speech.mean():.0%} of "
            f"the cues start while speech plays (or <= 0.3 s before it); {np.mean(onset <= 0.3):.0%} of the "
            f"{len(clips)} clips have a cue starting within 0.3 s of their speech ({np.mean(onset <= 1.0):.0%} "
            f"within 1 s)")


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lj", type=int, default=3, help="LJ Speech recordings (default 3)")
    p.add_argument("--noisy", type=int, default=2, help="LJ Speech recordings with noisy stretches (default 2)")
    p.add_argument("--lj-minutes", type=float, default=5.0, help="minutes per LJ recording (default 5)")
    p.add_argument("--synthetic", type=int, default=4, help="synthetic recordings from disjoint clip sets "
                   "(default 4, about 5.5 min each)")
    p.add_argument("--targets", type=float, nargs="+", default=[0.05, 0.08], help="delivered-WER targets")
    p.add_argument("--human-wer", type=float, default=0.02, help="assumed WER of the people's answers (0.02)")
    p.add_argument("--seeds", type=int, default=200, help="draws of the calibration slice, audit and people")
    p.add_argument("--delta", type=float, default=0.05, help="error level of the routing promise (0.05)")
    p.add_argument("--batch-hours", type=float, nargs="+", default=[0.0, 4.0], help="client batch sizes: 0 is "
                   "the recordings themselves; more draws recordings with replacement up to that many hours "
                   "(default: 0 and 4)")
    p.add_argument("--prior-hours", type=float, default=0.0, help="earlier recordings of the client, reviewed "
                   "whole (kdh route --calibration all), pooled as prior calibration: this many hours of the other "
                   "recordings per draw, with a batch's own slice of --own-slice units (default 0: off)")
    p.add_argument("--own-slice", type=int, default=6, help="with --prior-hours: the batch's own calibration "
                   "slice, in units (6; the drift check needs a few)")
    p.add_argument("--context-s", type=float, default=3.0, help="seconds of context a reviewer hears on each "
                   "side of a segment (3, as kdh push cuts a segment's clip)")
    p.add_argument("--config", metavar="HASH", help="score the predictions of another configuration kept in the "
                   "cached job (e.g. an earlier engine version; its config_hash in predictions.jsonl)")
    p.add_argument("--end-to-end", type=float, metavar="MINUTES", help="instead: time one recording of this "
                   "many minutes through prelabel, route, push, pull (SIMULATED annotators), route, push, pull, "
                   "deliver, against its length (a real Label Studio server on a free port)")
    p.add_argument("--keep-server", action="store_true", help="with --end-to-end: leave Label Studio running")
    args = p.parse_args(argv)
    if args.end_to_end:
        end_to_end(args.end_to_end, target=max(args.targets), human_wer=args.human_wer, keep=args.keep_server)
        return 0
    manifest, notes = build_recordings(n_lj=args.lj, n_noisy=args.noisy, lj_minutes=args.lj_minutes, n_syn=args.synthetic)
    job, engine_note = transcribe(manifest)
    table, check = unit_table(job, manifest, context_s=args.context_s, config_hash=args.config)
    if args.config:
        engine_note = f"predictions of configuration {args.config} (an earlier engine or options)"
    table.to_csv(manifest.parent / "units.csv", index=False)
    describe(table, check, notes, engine_note)
    print(f"People assumed to leave {args.human_wer:.0%} of the words wrong; a reviewer hears a segment with "
          f"{args.context_s:g} s of context on each side; promise level delta = {args.delta}")
    res = compare(table, targets=args.targets, human_wer=args.human_wer, seeds=args.seeds, delta=args.delta,
                  batch_hours=args.batch_hours, prior_hours=args.prior_hours, own_slice=args.own_slice)
    if args.prior_hours:
        print(f"\nWith {args.prior_hours:g} h of other recordings reviewed whole as prior calibration, and a "
              f"slice of {args.own_slice} units of the batch itself (prior listening not counted):")
    print_table(res, seeds=args.seeds)
    print_groups(table, targets=args.targets, human_wer=args.human_wer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
