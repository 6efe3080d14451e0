"""Speed, accuracy and memory of ``kdh prelabel transcribe`` against the plain faster-whisper loop.

On the same clips, one after the other, each in its own subprocess (so neither pollutes the other's memory
or caches), this script runs

  (a) the loop a user would write: ``WhisperModel(model_dir, compute_type="int8")``, then
      ``model.transcribe(path, beam_size=5)`` per file;
  (b) the real kdh job: :func:`kdh_ai.prelabel.run_prelabel` with :class:`~kdh_ai.tasks.transcription.
      Transcriber` and default options (hashing, decoding, VAD, packing, batching, writing the job directory
      and its Parquet snapshot all included),

and prints, for short clips and for long files: audio seconds per wall second (RTF), audio seconds per CPU
second, WER on the clips with a reference, peak RSS, and the ratio (b)/(a). It then runs (b) on 100 and on
1,000 items (clips reused through symlinks) and prints the peak RSS of each: it must stay flat.

Data (generated on first use, cached under ``benchmarks/.cache/``, never committed): the 12 LJ Speech clips
bundled with kdh_ai plus ~22 minutes of realistic synthetic speech from Debian's flite/festival voices
(clean, noisy at 20/10/5/0 dB, telephone band; tempo 0.8-1.25x) and six no-speech clips; long files of
2-3 minutes. See ``benchmarks/make_speech.py`` and ``benchmarks/README.md``.

Timings on a shared machine are noisy: the script reports CPU time as well as wall time, and runs (a) and
(b) alternately (``--repeats 2`` runs a, b, b, a and keeps each side's best).

Usage::

    .venv/bin/python benchmarks/transcription_speed.py              # everything (about 20-40 min on 2 cores)
    .venv/bin/python benchmarks/transcription_speed.py --quick      # a quarter of the clips, no 1,000 items
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------------------------------------
# Data


def _rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str((manifest.parent / r["path"]).resolve())
    return rows


def build_sets(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    """Write the manifests of the short and long sets; return {set name: manifest}."""
    from make_speech import make_speech

    from kdh_ai.samples import ljspeech_manifest

    root = make_speech(minutes=args.minutes, long_files=args.long_files)
    lj = _rows(ljspeech_manifest())
    for r in lj:
        r.update(kind="speech", condition="real", voice="ljspeech")
    short = lj + _rows(root / "short" / "manifest.csv")
    long_ = _rows(root / "long" / "manifest.csv")
    if args.quick:
        short = short[::4]
        long_ = [r for r in long_ if r["item_id"] in ("long0", "long1", "long_mixed")]
    all_lj: list[dict[str, str]] = []
    lj_manifest = args.lj_dir / "manifest.csv"
    if lj_manifest.exists():  # the LJ Speech clips of shared/data (utterance_id, audio_path, ...)
        with open(lj_manifest, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                all_lj.append({"item_id": r["utterance_id"], "path": str((args.lj_dir / r["audio_path"]).resolve()),
                               "reference": r["normalized_text"], "kind": "speech", "condition": "real"})
    sets = {}
    for name, rows in (("demo", lj), ("lj", all_lj), ("short", short), ("long", long_)):
        if not rows:
            print(f"# set {name}: no clips found, skipped")
            continue
        path = work / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["item_id", "path", "reference", "kind", "condition"],
                               extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        sets[name] = path
    return sets


def memory_set(short_manifest: Path, n: int, work: Path) -> Path:
    """A manifest of ``n`` items: the short clips cycled, each under its own name (a symlink)."""
    rows = [r for r in _rows(short_manifest) if r["kind"] == "speech"]
    folder = work / f"mem{n}"
    folder.mkdir(parents=True, exist_ok=True)
    path = work / f"mem{n}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "path"])
        for i in range(n):
            src = Path(rows[i % len(rows)]["path"])
            link = folder / f"m{i:05d}{src.suffix}"
            if not link.exists():
                link.symlink_to(src)
            w.writerow([link.stem, str(link)])
    return path


# --------------------------------------------------------------------------------------------------------
# Workers (run in a subprocess: ``transcription_speed.py --worker plain|kdh MANIFEST OUT_JSON [options]``)


def worker_plain(manifest: Path, out: Path, model_dir: str) -> None:
    from faster_whisper import WhisperModel

    rows = _rows(manifest)
    t0 = time.perf_counter()
    model = WhisperModel(model_dir, compute_type="int8")
    hyps, conf, audio_s = {}, {}, 0.0
    for r in rows:
        segments, info = model.transcribe(r["path"], beam_size=5)
        segs = list(segments)
        hyps[r["item_id"]] = "".join(s.text for s in segs).strip()
        # The plain loop's confidence: exp of the token-weighted mean log-probability (what a user of
        # faster-whisper would take; no word timestamps, which would slow the baseline down).
        n = sum(len(s.tokens) for s in segs)
        conf[r["item_id"]] = math.exp(sum(s.avg_logprob * len(s.tokens) for s in segs) / n) if n else 1.0
        audio_s += info.duration
    wall = time.perf_counter() - t0
    out.write_text(json.dumps({"wall_s": wall, "audio_s": audio_s, "hyps": hyps, "confidence": conf}))


def worker_kdh(manifest: Path, out: Path, options: dict[str, Any]) -> None:
    from kdh_ai.job import Job
    from kdh_ai.prelabel import run_prelabel
    from kdh_ai.engines import TranscribeOptions
    from kdh_ai.engines.faster_whisper import Transcriber

    opts = TranscribeOptions(**options)
    made: list[Transcriber] = []

    def make() -> Transcriber:
        made.append(Transcriber(opts))
        return made[-1]

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run_prelabel(Path(tmp) / "job", manifest, make_prelabeler=make, task="transcription",
                               item_kind="audio", options=dataclasses.asdict(opts),
                               allow_roots=[REPO])  # the manifests name clips of the repository's data and cache
        wall = time.perf_counter() - t0
        preds = Job(Path(tmp) / "job").current_predictions(summary.config_hash)
        result = {"wall_s": wall, "audio_s": summary.audio_s, "model_wall_s": summary.wall_s,
                  "counts": summary.counts, "engine": made[0].stats,
                  "hyps": {k: p.text for k, p in preds.items()},
                  "status": {k: p.status for k, p in preds.items()},
                  "flagged": {k: bool((p.payload or {}).get("check")) for k, p in preds.items()},
                  "confidence": {k: p.confidence for k, p in preds.items()}}
    out.write_text(json.dumps(result))


def run_worker(kind: str, manifest: Path, work: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Run a worker in a subprocess; add its CPU time and peak RSS (from ``wait4``) to its result."""
    out = work / f"result-{kind}-{manifest.stem}-{time.time_ns()}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(manifest), str(out),
           json.dumps(extra)]
    proc = subprocess.Popen(cmd, cwd=str(REPO))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} on {manifest.name} failed with exit code {proc.returncode}")
    result = json.loads(out.read_text())
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


# --------------------------------------------------------------------------------------------------------
# Scoring


CONFIDENT_WER = 0.5
CONFIDENT_CONF = 0.8
"""A **confident error** is an item whose WER is at least ``CONFIDENT_WER`` (half its words or more wrong,
missing or invented) at a confidence of at least ``CONFIDENT_CONF``: what routing would auto-accept and a
client would receive as finished work."""
CONF_BINS = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001]


def _spoken(reference: str) -> str:
    """A reference with its brackets dropped but their words kept: Whisper's English normalizer deletes text
    in brackets (non-speech tags in transcripts), but in LJ Speech's references those words are read aloud
    (LJ001-0024: "(which also was printed at Maintz ... fourteen sixty-two)" would count as 13 insertions)."""
    return reference.replace("(", " ").replace(")", " ").replace("[", " ").replace("]", " ")


def item_wers(rows: list[dict[str, str]], hyps: dict[str, str]) -> dict[str, float]:
    """Each speech item's WER (an empty hypothesis of a non-empty reference: 1.0)."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    out = {}
    for r in rows:
        if r.get("kind", "speech") != "speech" or not r.get("reference"):
            continue
        ref, hyp = norm(_spoken(r["reference"])), norm(hyps.get(r["item_id"], ""))
        out[r["item_id"]] = jiwer.wer(ref, hyp) if hyp.strip() else 1.0
    return out


def confident_errors(wers: dict[str, float], conf: dict[str, float | None]) -> list[str]:
    return sorted(k for k, w in wers.items()
                  if w >= CONFIDENT_WER and (conf.get(k) or 0.0) >= CONFIDENT_CONF)


def conf_bins(wers: dict[str, float], conf: dict[str, float | None]) -> list[dict[str, Any]]:
    """Confidence bins against item WER: items, mean item WER, share of items with WER >= 0.5."""
    out = []
    for lo, hi in zip(CONF_BINS, CONF_BINS[1:]):
        ws = [w for k, w in wers.items() if lo <= (conf.get(k) or 0.0) < hi]
        out.append({"bin": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": len(ws),
                    "mean_wer": statistics.fmean(ws) if ws else float("nan"),
                    "share_wer_ge_0.5": sum(w >= CONFIDENT_WER for w in ws) / len(ws) if ws else float("nan")})
    return out


def score(rows: list[dict[str, str]], result: dict[str, Any]) -> dict[str, Any]:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    hyps = result["hyps"]
    speech = [r for r in rows if r.get("kind", "speech") == "speech" and r.get("reference")]
    refs = [norm(_spoken(r["reference"])) for r in speech]
    outs = [norm(hyps.get(r["item_id"], "")) for r in speech]
    scored: dict[str, Any] = {"wer": jiwer.wer(refs, outs), "n_ref": len(speech)}
    by: dict[str, list[int]] = {}
    for i, r in enumerate(speech):
        cond = r.get("condition", "")
        group = ("real" if cond == "real" else "clean" if cond == "clean" else "telephone"
                 if cond == "telephone" else "noisy")
        by.setdefault(group, []).append(i)
    scored["wer_by"] = {g: jiwer.wer([refs[i] for i in ix], [outs[i] for i in ix]) for g, ix in by.items()}
    nospeech = [r["item_id"] for r in rows if r.get("kind") == "nospeech"]
    scored["nospeech_empty"] = f"{sum(not hyps.get(k, '').strip() for k in nospeech)}/{len(nospeech)}"
    conf = result.get("confidence")
    if conf:
        item_wer = [jiwer.wer(ref, out) if ref else 0.0 for ref, out in zip(refs, outs)]
        pairs = [(conf[r["item_id"]], w) for r, w in zip(speech, item_wer) if conf.get(r["item_id"]) is not None]
        if len(pairs) > 3:
            from scipy.stats import spearmanr

            scored["conf_spearman_vs_wer"] = float(spearmanr([c for c, _ in pairs], [w for _, w in pairs])[0])
            groups = {"clean/real": [], "noisy": []}
            for r, (c, _) in zip(speech, pairs):
                groups["noisy" if r.get("condition") not in ("clean", "real", "telephone") else "clean/real"
                       ].append(c)
            scored["mean_conf"] = {g: statistics.fmean(v) for g, v in groups.items() if v}
    return scored


# --------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": dt.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0], "python": platform.python_version(),
            "faster_whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2")}


def fmt_row(label: str, r: dict[str, Any]) -> str:
    return (f"{label:<24} {r['audio_s']:8.0f} {r['wall_s']:8.1f} {r['audio_s'] / r['wall_s']:7.1f}x "
            f"{r['audio_s'] / r['cpu_s']:7.1f}x {100 * r['wer']:6.2f}% {r['peak_rss_mb']:8.0f}")


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", nargs=4, metavar=("KIND", "MANIFEST", "OUT", "JSON"), help=argparse.SUPPRESS)
    ap.add_argument("--model", default="whisper-tiny.en", help="registry name or CTranslate2 Whisper dir")
    ap.add_argument("--minutes", type=float, default=22.0, help="minutes of synthetic short clips")
    ap.add_argument("--long-files", type=int, default=4, help="synthetic long files (2-3 min each)")
    ap.add_argument("--quick", action="store_true", help="a quarter of the short clips, 2 long files, "
                    "100 items only for memory")
    ap.add_argument("--repeats", type=int, default=1, help="runs per side (alternating a, b, b, a...)")
    ap.add_argument("--sets", default="demo,lj,short,long",
                    help="which sets to time: demo (the 12 bundled clips as a batch of their own), lj (every "
                         "LJ Speech clip in --lj-dir), short (bundled + synthetic pool), long")
    ap.add_argument("--lj-dir", type=Path, default=REPO.parent / "shared" / "data" / "speech_ljspeech_samples",
                    help="folder of LJ Speech clips with a manifest.csv (utterance_id, audio_path, "
                         "normalized_text) for the lj set")
    ap.add_argument("--damage-check", action="store_true",
                    help="also decode every file of the sets with kdh_ai.audio.load_audio and count the files "
                         "it refuses as damaged (must be 0: the pool is undamaged)")
    ap.add_argument("--memory", default="100,1000", help="item counts for the memory check ('' = skip)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a TranscribeOptions value for (b), e.g. --option beam_size=3 (JSON values)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                    help="also run (b) with these options changed, e.g. --variant beam3:beam_size=3")
    ap.add_argument("--out", type=Path, default=None, help="write all results as JSON here")
    args = ap.parse_args(argv)

    if args.worker:
        kind, manifest, out, extra = args.worker
        extra_d = json.loads(extra)
        if kind == "plain":
            worker_plain(Path(manifest), Path(out), extra_d["model_dir"])
        else:
            worker_kdh(Path(manifest), Path(out), extra_d)
        return 0

    import logging

    from kdh_ai.registry import resolve_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model_dir = str(resolve_model(args.model).path)
    options: dict[str, Any] = {"model": args.model, **_parse_options(args.option)}
    variants: dict[str, dict[str, Any]] = {"kdh": options}
    for v in args.variant:
        name, _, spec = v.partition(":")
        variants[name] = {**options, **_parse_options([x for x in spec.split(",") if x])}
    info = machine()
    print(f"# {info['date']}  {info['cpu']}, {info['cores']} cores, load {info['load_avg_1m']:.1f}; "
          f"faster-whisper {info['faster_whisper']}, ctranslate2 {info['ctranslate2']}; model {args.model}")
    for name, opts in variants.items():
        print(f"# ({'b' if name == 'kdh' else name}) options: {opts}")
    report: dict[str, Any] = {"machine": info, "options": options, "sets": {}, "memory": {}}
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        work = Path(tmp)
        sets = build_sets(args, work)
        header = (f"{'':<24} {'audio s':>8} {'wall s':>8} {'RTF':>8} {'RTF/cpu':>8} {'WER':>7} "
                  f"{'peak MB':>8}")
        if args.damage_check:
            from kdh_ai.audio import AudioError, load_audio

            files = sorted({r["path"] for m in sets.values() for r in _rows(m)})
            refused = []
            for f in files:
                try:
                    load_audio(f)
                except AudioError as exc:
                    refused.append(f"{Path(f).name}: {exc}")
            print(f"# damaged-file check: {len(files)} files decoded, {len(refused)} refused {refused[:5]}")
            report["damage_check"] = {"files": len(files), "refused": refused}
        for name in [s for s in args.sets.split(",") if s and s in sets]:
            rows = _rows(sets[name])
            best: dict[str, dict[str, Any]] = {}
            order: list[str] = []
            for i in range(args.repeats):  # a, b, b, a, ...
                one = ["plain", *variants]
                order += one if i % 2 == 0 else one[::-1]
            for kind in order:
                print(f"... {name}: running {'(a) plain loop' if kind == 'plain' else kind}", flush=True)
                extra = {"model_dir": model_dir} if kind == "plain" else variants[kind]
                r = run_worker("plain" if kind == "plain" else "kdh", sets[name], work, extra)
                if kind not in best or r["wall_s"] < best[kind]["wall_s"]:
                    best[kind] = r
            for r in best.values():
                r.update(score(rows, r))
            a = best["plain"]
            print(f"\n## {name}: {len(rows)} files, {a['audio_s'] / 60:.1f} min of audio, "
                  f"{a['n_ref']} with a reference")
            print(header)
            print(fmt_row("(a) faster-whisper loop", a))
            for kind in variants:
                b = best[kind]
                label = "(b) kdh prelabel" if kind == "kdh" else f"(b) {kind}"
                print(fmt_row(label, b))
                print(f"{'  ratio to (a)':<24} {'':>8} {'':>8} {a['wall_s'] / b['wall_s']:7.2f}x "
                      f"{a['cpu_s'] / b['cpu_s']:7.2f}x {100 * (b['wer'] - a['wer']):+6.2f}  "
                      f"{b['peak_rss_mb'] / a['peak_rss_mb']:7.2f}x")
            b = best["kdh"]
            a = best["plain"]
            print("WER by condition: " + "; ".join(
                f"{g}: (a) {100 * a['wer_by'][g]:.1f}% (b) {100 * b['wer_by'].get(g, float('nan')):.1f}%"
                for g in sorted(a["wer_by"])))
            if a["nospeech_empty"] != "0/0":
                print(f"no-speech clips left empty: (a) {a['nospeech_empty']}, (b) {b['nospeech_empty']}")
            if "conf_spearman_vs_wer" in b:
                print(f"(b) confidence vs item WER: Spearman {b['conf_spearman_vs_wer']:.2f}; mean confidence "
                      + ", ".join(f"{g} {v:.2f}" for g, v in b["mean_conf"].items()))
            wers = {k: item_wers(rows, r["hyps"]) for k, r in best.items()}
            print(f"confident errors (item WER >= {CONFIDENT_WER} at confidence >= {CONFIDENT_CONF}): "
                  + "; ".join(f"{'(a)' if k == 'plain' else '(b) ' + k} {len(ce)} {ce[:8]}"
                              for k, ce in ((k, confident_errors(wers[k], best[k]["confidence"]))
                                            for k in best)))
            for k in best:
                best[k]["confident_errors"] = confident_errors(wers[k], best[k]["confidence"])
                best[k]["conf_bins"] = conf_bins(wers[k], best[k]["confidence"])
            flagged = [k for k, f in b.get("flagged", {}).items() if f]
            print(f"(b) items flagged by the plausibility check: {len(flagged)} {flagged[:8]}")
            print("worst ten items of (b) (item WER, confidence; (a) alongside):")
            worst = sorted(wers["kdh"], key=lambda k: (-wers["kdh"][k], -(b["confidence"].get(k) or 0)))[:10]
            for k in worst:
                print(f"  {k:<14} (b) WER {wers['kdh'][k]:.2f} conf {b['confidence'].get(k) or 0:.3f} "
                      f"{b['hyps'].get(k, '')[:60]!r:<64} (a) WER {wers['plain'].get(k, float('nan')):.2f} "
                      f"conf {a['confidence'].get(k) or 0:.3f}")
            b["worst_ten"] = [{"item_id": k, "wer": wers["kdh"][k], "confidence": b["confidence"].get(k),
                               "text": b["hyps"].get(k), "plain_wer": wers["plain"].get(k),
                               "plain_text": a["hyps"].get(k)} for k in worst]
            print("confidence bins vs item WER:  bin        (a) n  mean WER  WER>=0.5 | (b) n  mean WER  WER>=0.5")
            for x, y in zip(a["conf_bins"], b["conf_bins"]):
                print(f"  {x['bin']:>28} {x['n']:5d} {x['mean_wer']:8.3f} {x['share_wer_ge_0.5']:8.2f} | "
                      f"{y['n']:5d} {y['mean_wer']:8.3f} {y['share_wer_ge_0.5']:8.2f}")
            for r in best.values():
                for k in ("hyps", "confidence", "status", "flagged"):
                    r.pop(k, None)
            report["sets"][name] = {"files": len(rows), **best}
        counts = [int(x) for x in args.memory.split(",") if x.strip()]
        if args.quick:
            counts = [c for c in counts if c <= 100] or counts[:1]
        if counts:
            print("\n## memory: (b) on N items (short clips reused), beam_size=1")
            for n in counts:
                manifest = memory_set(sets["short"], n, work)
                r = run_worker("kdh", manifest, work, {**options, "beam_size": 1})
                print(f"{n:>6} items: peak RSS {r['peak_rss_mb']:.0f} MB, {r['audio_s'] / 60:.0f} min of audio, "
                      f"RTF {r['audio_s'] / r['wall_s']:.1f}x", flush=True)
                report["memory"][n] = {"peak_rss_mb": r["peak_rss_mb"], "audio_s": r["audio_s"],
                                       "wall_s": r["wall_s"], "cpu_s": r["cpu_s"]}
    report["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
