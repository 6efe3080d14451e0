"""Does a second opinion help routing? Disagreement between two Whisper models as a routing signal.

Where two models disagree on an item, the item is more likely wrong, even when the first model is confident.
This script measures it on a pool of real and synthetic speech with exact references:

* the 32 LJ Speech clips of the project's shared data (or the 12 bundled ones) and ``--minutes`` of synthetic
  speech from ``make_speech.py`` (flite/festival voices, noise, telephone band, tempo changes);
* the first model: ``kdh prelabel transcribe`` with default options (whisper-tiny.en); the second opinion:
  the same job with ``--second`` (default whisper-base, multilingual, int8), run side by side;
* per item: the first model's confidence and word errors, and the disagreement (word edits between the two
  transcripts over the second's words, after Whisper's English normalization:
  :func:`kdh_ai.second_opinion.disagreement`, the function ``kdh prelabel transcribe --second-opinion`` uses).

It prints: how many *confident errors* (item WER >= 0.5 at confidence >= 0.8) there are and how many of
them disagreement flags; the Spearman correlation of each signal with item WER; the human share that
``kdh_ai.routing.choose_threshold`` needs for a delivered-WER target with confidence alone and with the
combined signal ``confidence * (1 - min(1, disagreement))`` (:func:`kdh_ai.second_opinion.routing_score`, the
score ``kdh route`` thresholds on a job with a second opinion); and the compute cost of the second model.
Calibration uses the whole pool (in-sample, the same for both signals): this compares signals, it does not
promise a delivered WER.

Usage::

    .venv/bin/python benchmarks/second_opinion.py [--minutes 12] [--second whisper-base]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from kdh_ai.job import Job  # noqa: E402
from kdh_ai.prelabel import run_prelabel  # noqa: E402
from kdh_ai.routing.threshold import choose_threshold  # noqa: E402
from kdh_ai.samples import ljspeech_manifest  # noqa: E402
from kdh_ai.second_opinion import disagreement, routing_score  # noqa: E402
from kdh_ai.engines import TranscribeOptions, make_transcriber  # noqa: E402
from kdh_ai.tasks.transcription import TranscriptionTask  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "second_opinion"
# The LJ Speech manifest names the shared data's audio files, outside its own folder: allowed explicitly.
# shared/ sits beside the repository (as on the developers' machines and CI); KDH_SHARED_DATA overrides it.
SHARED_DATA = (Path(os.environ.get("KDH_SHARED_DATA") or REPO.parent / "shared" / "data"),)


def sources(minutes: float) -> list[Path]:
    from make_speech import make_speech  # noqa: PLC0415

    out = []
    shared_lj = SHARED_DATA[0] / "speech_ljspeech_samples" / "manifest.csv"
    if shared_lj.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        lj = CACHE / "lj32.csv"
        with open(shared_lj, newline="", encoding="utf-8") as src, open(lj, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "path", "reference"])
            for r in csv.DictReader(src):
                w.writerow([r["utterance_id"], str(shared_lj.parent / r["audio_path"]), r["normalized_text"]])
        out.append(lj)
    else:
        out.append(ljspeech_manifest())
    if minutes > 0:
        out.append(make_speech(minutes=minutes, long_files=0, seed=1) / "short" / "manifest.csv")
    return out


def run_model(src: Path, name: str, opts: TranscribeOptions) -> tuple[dict, dict, float]:
    job_dir = CACHE / f"{src.parent.parent.name}-{src.stem}-{name}"
    t0 = time.perf_counter()
    summary = run_prelabel(job_dir, src, make_prelabeler=lambda: make_transcriber(opts), task="transcription",
                           item_kind="audio", options=dataclasses.asdict(opts), log_progress=sys.stderr.isatty(),
                           allow_roots=[p for p in SHARED_DATA if p.is_dir()])
    wall = time.perf_counter() - t0 if summary.processed else float("nan")  # cached: no time measured
    job = Job(job_dir)
    return job.current_predictions(), job.current_items(), wall


def report(pool: pd.DataFrame, args: argparse.Namespace) -> None:
    """Print the comparison of confidence alone and confidence with the second opinion on one pool."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    n_words = pool["words"].sum()
    print(f"pool: {len(pool)} items, {int(n_words)} words; WER first model {pool['errors'].sum() / n_words:.1%}, "
          f"second ({args.second}) {pool['errors_second'].sum() / n_words:.1%}")
    confident_errors = pool[(pool["wer"] >= 0.5) & (pool["confidence"] >= 0.8)]
    print(f"confident errors (item WER >= 0.5 at confidence >= 0.8): {len(confident_errors)}")
    for thr in (0.1, 0.2, 0.3):
        flagged = (confident_errors["disagreement"] >= thr).sum()
        false_flags = ((pool["wer"] == 0) & (pool["disagreement"] >= thr)).sum()
        print(f"  disagreement >= {thr:.1f} flags {flagged} of them; it also flags {false_flags} of "
              f"{(pool['wer'] == 0).sum()} exactly right items")
    wrong = pool["wer"] > 0.1
    for col in ("confidence", "combined"):
        rho = pool[col].rank().corr(pool["wer"].rank())
        scores = pool[col].to_numpy()
        order = np.argsort(scores)
        caught = {s: pool["errors"].to_numpy()[order[:int(s * len(pool))]].sum() / pool["errors"].sum()
                  for s in (0.1, 0.2, 0.3)}
        auc = roc_auc_score(wrong, -scores) if wrong.any() and (~wrong).any() else float("nan")
        print(f"{col:10}: Spearman with item WER {rho:+.2f}; AUROC for item "
              f"WER > 10% {auc:.2f}; word errors caught routing the lowest 10/20/30%: "
              + " / ".join(f"{v:.0%}" for v in caught.values()))
    print(f"human share for the target (people's WER {args.human_wer:.0%}, taken as exact; choose_threshold, "
          "delta 0.05, calibration = whole pool):")
    for target in (float(t) for t in args.targets.split(",")):
        shares = {}
        for col in ("confidence", "combined"):
            c = pool[col].to_numpy()
            choice = choose_threshold(c, pool["errors"].to_numpy(), pool["words"].to_numpy(), batch_confidence=c,
                                      human_error_rate=args.human_wer, human_error_se=0.0, target=target)
            shares[col] = (choice.human_share, choice.risk, choice.reachable)
        print(f"  target WER {target:.0%}: confidence alone {shares['confidence'][0]:.0%} to people "
              f"(risk {shares['confidence'][1]:.1%}); with the second opinion {shares['combined'][0]:.0%} "
              f"(risk {shares['combined'][1]:.1%})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12.0, help="minutes of synthetic speech (0: LJ only)")
    ap.add_argument("--second", default="whisper-base", help="the second opinion's model")
    ap.add_argument("--targets", default="0.08,0.05,0.03", help="delivered-WER targets")
    ap.add_argument("--human-wer", type=float, default=0.03, help="people's WER (taken as exact)")
    args = ap.parse_args()
    task = TranscriptionTask()
    rows = []
    walls = {"first": 0.0, "second": 0.0}
    for i, src in enumerate(sources(args.minutes)):
        first, items, w1 = run_model(src, "tiny", TranscribeOptions())
        second, _, w2 = run_model(src, "second", TranscribeOptions(model=args.second))
        walls["first"] += w1
        walls["second"] += w2
        ids = [k for k in first if items[k].get("reference") and first[k].status != "error"
               and second.get(k) is not None and second[k].status != "error"]
        refs = [items[k]["reference"] for k in ids]
        e1 = task.item_errors([first[k].text for k in ids], refs)
        e2 = task.item_errors([second[k].text for k in ids], refs)
        for j, k in enumerate(ids):
            rows.append({"item_id": f"{i}:{k}", "confidence": first[k].confidence or 0.0, "errors": e1[j, 0],
                         "words": e1[j, 1], "errors_second": e2[j, 0],
                         "disagreement": disagreement(first[k].text, second[k].text)})
    pool = pd.DataFrame(rows)
    pool = pool[pool["words"] > 0].reset_index(drop=True)
    pool["wer"] = pool["errors"] / pool["words"]
    # The product's rule (kdh prelabel transcribe --second-opinion; kdh route thresholds this score).
    pool["combined"] = [routing_score(c, d) for c, d in zip(pool["confidence"], pool["disagreement"])]
    report(pool, args)
    worst = pool["errors"].idxmax()
    print(f"\nthe same without the item with the most word errors ({pool.at[worst, 'item_id']}: "
          f"{pool.at[worst, 'errors']:.0f} errors on {pool.at[worst, 'words']:.0f} words at confidence "
          f"{pool.at[worst, 'confidence']:.2f}):")
    report(pool.drop(index=worst).reset_index(drop=True), args)
    if walls["first"] == walls["first"] and walls["second"] == walls["second"]:
        print(f"compute: first model {walls['first']:.0f} s, second opinion {walls['second']:.0f} s "
              f"(+{walls['second'] / walls['first']:.0%} of the first model's time)")
    else:
        print("compute: jobs were cached (run with an empty benchmarks/.cache/second_opinion to time them)")
    pool.to_csv(CACHE / "pool.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
