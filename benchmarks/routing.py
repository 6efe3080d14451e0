"""Evaluation harness for routing: simulate the whole loop on audio with references, many batches.

What is real and what is simulated:

* **Real:** the model's pre-labels and confidences (Whisper tiny.en through ``kdh prelabel transcribe`` on the
  LJ Speech clips and on realistic synthetic speech from Debian's flite/festival voices: clean and noisy from
  20 to 0 dB, telephone band, speed 0.8-1.25x; see ``benchmarks/make_speech.py``), the model's word errors
  against the exact references, and the routing code (``kdh_ai.routing.choose_threshold``, as ``kdh route``
  calls it).
* **Simulated (people):**
  (a) from-scratch crowd workers: each simulated worker gets a WER drawn from the per-worker WERs measured on
      CrowdSpeech test-clean (real Toloka workers transcribing LibriSpeech; repository copy of 400 clips);
      overlap k = 2, 3, 5 uses the ROVER WER measured on CrowdSpeech for k random workers;
  (b) post-editors who start from the pre-label and leave a residual WER you state (``--residual``). No public
      data here measures post-editing: every claim made with (b) depends on that assumption.
  A simulated person's errors on an item of ``n`` words are ``Binomial(n, wer)``.

Each simulated batch draws ``--batch`` items from the pool (with replacement), a random calibration slice
(``--calibration``, labelled by trusted reviewers: assumed exact), ``--gold`` gold items answered by the
people (measuring their WER), and routes with the target. For each target it prints the mean human share,
the delivered WER (mean and 95th percentile), how often the target held, and the same for a random routing of
equal human share and for the oracle (which knows every item's true error and sends the worst items first).
Then it shows, per workforce, whether a target is reachable and what overlap would reach it.

Usage::

    .venv/bin/python benchmarks/routing.py [--batches 200] [--batch 400] [--residual 0.02]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from kdh_ai import quality  # noqa: E402
from kdh_ai.job import Job  # noqa: E402
from kdh_ai.prelabel import run_prelabel  # noqa: E402
from kdh_ai.routing.threshold import choose_threshold, ratio_upper_bound  # noqa: E402
from kdh_ai.samples import ljspeech_manifest  # noqa: E402
from kdh_ai.tasks.transcription import Transcriber, TranscribeOptions, TranscriptionTask  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "routing"
CROWDSPEECH = REPO / "tests" / "data" / "crowd" / "crowdspeech"


def build_pool() -> pd.DataFrame:
    """Real tiny.en pre-labels of LJ Speech and synthetic speech, with each item's word errors (cached job)."""
    from make_speech import make_speech  # noqa: PLC0415

    sources = []
    shared_lj = REPO.parent / "shared" / "data" / "speech_ljspeech_samples" / "manifest.csv"
    if shared_lj.exists():  # all 32 LJ clips when the shared data sits beside the checkout
        rows = list(csv.DictReader(open(shared_lj, newline="", encoding="utf-8")))
        CACHE.mkdir(parents=True, exist_ok=True)
        lj = CACHE / "lj32.csv"
        with open(lj, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "path", "reference"])
            for r in rows:
                w.writerow([r["utterance_id"], str(shared_lj.parent / r["audio_path"]), r["normalized_text"]])
        sources.append(lj)
    else:
        sources.append(ljspeech_manifest())
    sources.append(make_speech() / "short" / "manifest.csv")
    opts = TranscribeOptions()
    frames = []
    for i, src in enumerate(sources):
        job_dir = CACHE / f"job{i}"
        print(f"pre-labeling {src} (cached in {job_dir}) ...", flush=True)
        run_prelabel(job_dir, src, make_prelabeler=lambda: Transcriber(opts), task="transcription",
                     item_kind="audio", options=dataclasses.asdict(opts), log_progress=sys.stderr.isatty())
        job = Job(job_dir)
        preds, items = job.current_predictions(), job.current_items()
        ids = [k for k in preds if items[k].get("reference") and preds[k].status != "error"]
        errs = TranscriptionTask().item_errors([preds[k].text for k in ids], [items[k]["reference"] for k in ids])
        frames.append(pd.DataFrame({"item_id": [f"{i}:{k}" for k in ids], "confidence":
                                    [preds[k].confidence or 0.0 for k in ids], "errors": errs[:, 0],
                                    "words": errs[:, 1]}))
    pool = pd.concat(frames, ignore_index=True)
    return pool[pool["words"] > 0].reset_index(drop=True)


def crowd_profiles(n_tasks: int = 150, seed: int = 0) -> tuple[np.ndarray, dict[int, float]]:
    """Per-worker WERs on CrowdSpeech, and the ROVER WER of k random workers per clip."""
    crowd = pd.read_csv(CROWDSPEECH / "crowd.tsv", sep="\t", dtype=str, keep_default_na=False)
    crowd.columns = ["task", "text", "worker"]
    gt = pd.read_csv(CROWDSPEECH / "gt.txt", sep="\t", header=None, names=["task", "ref"], dtype=str,
                     keep_default_na=False).set_index("task")["ref"]
    crowd = crowd[crowd["task"].isin(gt.index)]
    per = quality.annotator_wer(crowd, gt).per_annotator
    worker_wer = per.loc[per["reference_words"] >= 30, "wer"].to_numpy()
    rng = np.random.default_rng(seed)
    sizes = crowd.groupby("task").size()
    full = sorted(sizes[sizes >= 7].index)
    tasks = rng.choice(full, size=min(n_tasks, len(full)), replace=False)
    sub = crowd[crowd["task"].isin(tasks)]
    rover = {}
    for k in (1, 2, 3, 5, 7):
        pick = sub.groupby("task").sample(n=k, random_state=k, replace=False)
        if k == 1:
            hyp = pick.set_index("task")["text"]
        else:
            hyp = quality.aggregate_texts(pick[["task", "worker", "text"]], method="rover")
        rover[k] = quality.wer(gt.loc[hyp.index], hyp)
    return worker_wer, rover


def simulate(pool: pd.DataFrame, *, target: float, human_wer_of: callable, batches: int, batch: int, cal: int,
             gold: int, audit_rate: float, delta: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    res = {k: [] for k in ("share", "wer", "held", "rand_wer", "rand_held", "oracle_share", "reachable",
                           "best_conf_share")}
    for _ in range(batches):
        idx = rng.integers(0, len(pool), size=batch)
        b = pool.iloc[idx]
        conf, err = b["confidence"].to_numpy(), b["errors"].to_numpy()
        words = b["words"].to_numpy().astype(int)
        order = rng.permutation(batch)
        cal_i, rest_i = order[:cal], order[cal:]
        h_true = human_wer_of(rng)  # this batch's workforce
        gold_words = rng.integers(8, 30, size=gold)
        gold_err = rng.binomial(gold_words, h_true)
        h_hat = gold_err.sum() / gold_words.sum()
        _, h_up = ratio_upper_bound(gold_err.astype(float), gold_words.astype(float), delta=delta)
        n_total = batch + gold
        fixed = (cal + gold) / n_total
        choice = choose_threshold(conf[cal_i], err[cal_i], words[cal_i], batch_confidence=conf[rest_i],
                                  human_error_rate=h_hat, human_error_upper=h_up, target=target,
                                  fixed_human_share=fixed, delta=delta)
        to_human = conf[rest_i] < choice.threshold
        audit = (~to_human) & (rng.random(len(rest_i)) < audit_rate)
        people = to_human | audit
        # Realised delivered WER over the whole batch (gold items are delivered with their known answers).
        # Calibration items are delivered with the trusted reviewers' answers (assumed exact).
        d_err = err[rest_i][~people].sum() + rng.binomial(words[rest_i][people], h_true).sum()
        total_words = words.sum() + gold_words.sum()
        delivered = d_err / total_words
        share = (cal + gold + people.sum()) / n_total
        # Random routing with the same number of people-touched items.
        k = int(people.sum())
        rand = np.zeros(len(rest_i), bool)
        rand[rng.choice(len(rest_i), size=k, replace=False)] = True
        r_err = err[rest_i][~rand].sum() + rng.binomial(words[rest_i][rand], h_true).sum()
        rand_wer = r_err / total_words
        # Oracle: knows every item's true error; sends the items with the most excess errors first.
        gain = err[rest_i] - h_true * words[rest_i]
        o = np.argsort(-gain)
        base = err[rest_i].sum()
        cum = base - np.cumsum(gain[o])
        ok = np.nonzero(np.concatenate([[base], cum]) / total_words <= target)[0]
        oracle_k = ok[0] if len(ok) else len(rest_i)
        # Best threshold on confidence knowing the true errors: what ranking by confidence allows at best.
        oc = np.argsort(conf[rest_i])
        gain_c = err[rest_i][oc] - h_true * words[rest_i][oc]
        cum_c = base - np.cumsum(gain_c)
        ok_c = np.nonzero(np.concatenate([[base], cum_c]) / total_words <= target)[0]
        res["best_conf_share"].append((cal + gold + (ok_c[0] if len(ok_c) else len(rest_i))) / n_total)
        res["share"].append(share)
        res["wer"].append(delivered)
        res["held"].append(delivered <= target)
        res["rand_wer"].append(rand_wer)
        res["rand_held"].append(rand_wer <= target)
        res["oracle_share"].append((cal + gold + oracle_k) / n_total)
        res["reachable"].append(choice.reachable)
    return {"target": target, "human_share": np.mean(res["share"]), "delivered_wer": np.mean(res["wer"]),
            "wer_p95": np.quantile(res["wer"], 0.95), "held": np.mean(res["held"]),
            "random_wer": np.mean(res["rand_wer"]), "random_held": np.mean(res["rand_held"]),
            "oracle_share": np.mean(res["oracle_share"]),
            "best_by_confidence": np.mean(res["best_conf_share"]),
            "share_vs_oracle": np.mean(res["share"]) / np.mean(res["oracle_share"]),
            "reachable": np.mean(res["reachable"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=400, help="items per simulated batch")
    ap.add_argument("--calibration", type=int, default=80, help="calibration slice size")
    ap.add_argument("--gold", type=int, default=20, help="gold items per batch")
    ap.add_argument("--audit", type=float, default=0.05, help="audit rate of auto-accepted items")
    ap.add_argument("--residual", type=float, default=0.02, help="post-editors' residual WER (assumption)")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--export-pool", action="store_true", help="also write kdh_ai/data/routing_pool.csv")
    args = ap.parse_args()
    t0 = time.time()
    pool = build_pool()
    if args.export_pool:
        out = REPO / "kdh_ai" / "data" / "routing_pool.csv"
        pool.round(4).to_csv(out, index=False)
        print(f"pool written to {out}")
    model_wer = pool["errors"].sum() / pool["words"].sum()
    print(f"\npool: {len(pool)} clips with references, tiny.en WER {model_wer:.2%}, "
          f"{pool['words'].sum():.0f} reference words")
    worker_wer, rover = crowd_profiles()
    print(f"CrowdSpeech: {len(worker_wer)} workers, median single-worker WER {np.median(worker_wer):.1%}; "
          "ROVER WER by overlap k: " + ", ".join(f"k={k}: {v:.1%}" for k, v in rover.items()))
    pd.set_option("display.width", 200)
    fmt = {c: "{:.1%}".format for c in ("human_share", "delivered_wer", "wer_p95", "held", "random_wer",
                                        "random_held", "oracle_share", "reachable", "best_by_confidence")}
    workforces = {
        f"(b) post-editors, residual WER {args.residual:.0%} (assumed)": lambda rng: args.residual,
        "(a) crowd from scratch, 1 worker (CrowdSpeech profiles)": lambda rng: float(rng.choice(worker_wer)),
    }
    for name, h in workforces.items():
        rows = [simulate(pool, target=t, human_wer_of=h, batches=args.batches, batch=args.batch,
                         cal=args.calibration, gold=args.gold, audit_rate=args.audit, delta=args.delta, seed=7)
                for t in (0.03, 0.04, 0.05, 0.06, 0.08)]
        table = pd.DataFrame(rows).set_index("target")
        print(f"\n== {name}: {args.batches} batches of {args.batch} items, calibration {args.calibration}, "
              f"gold {args.gold}, audit {args.audit:.0%}")
        print(table.to_string(formatters=fmt, float_format="{:.2f}".format))
    print("\n== Reachability: a target is reachable only if the people's WER is below it")
    for t in (0.03, 0.05, 0.08, 0.10):
        ks = [k for k, v in rover.items() if v <= t]
        print(f"target {t:.0%}: from-scratch crowd " + (f"needs overlap k >= {ks[0]} (ROVER {rover[ks[0]]:.1%})"
                                                        if ks else "cannot reach it even with 7-way overlap")
              + f"; post-editors at {args.residual:.0%} residual WER " + ("reach it" if args.residual <= t
                                                                            else "cannot"))
    print(f"\nwall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
