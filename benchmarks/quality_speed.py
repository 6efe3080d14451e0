"""kdh_ai.quality aggregation vs crowd-kit called directly, on the full shared crowd data, in one run.

    .venv/bin/python benchmarks/quality_speed.py               # both comparisons
    .venv/bin/python benchmarks/quality_speed.py --only texts  # CrowdSpeech ROVER only

What is compared (same data, same process, one after the other; the ratio is what matters):

* texts: ``aggregate_texts(df, method="rover")`` on all of CrowdSpeech test-clean (18,340
  transcriptions of 2,620 utterances) vs the same steps done by hand with crowd-kit: normalize every
  transcript with the same normalizer, then ``crowdkit.aggregation.ROVER(...).fit_predict``. The
  wrapper adds input checks and the Series bookkeeping.
* labels: ``aggregate_labels(df, method="glad")`` on activecrowd SP (27,746 labels of 4,999 sentences)
  vs ``crowdkit.aggregation.GLAD().fit_predict``; also Dawid-Skene and majority vote.

Both sides must give the same answers (checked), and the quality numbers (WER of ROVER vs the
CrowdSpeech authors' ROVER, accuracy vs gold) are printed too. The script exits with status 1 if
the wrapper's overhead exceeds ``--max-overhead`` (default 20 %).

The full data sets live in the shared data folder next to the repository (``../shared/data``); they
are not copied into the repo (3.4 MB and 0.6 MB). Without that folder the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from crowdkit.aggregation import GLAD, ROVER, DawidSkene, MajorityVote  # noqa: E402

from kdh_ai.quality import accuracy, aggregate_labels, aggregate_texts, get_normalizer, wer  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _timed(func):
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def _row(name: str, direct: float, ours: float) -> float:
    ratio = ours / direct
    print(f"  {name:<34} crowd-kit {direct:8.2f} s   kdh_ai {ours:8.2f} s   ratio {ratio:5.2f}")
    return ratio


def bench_texts(normalizer: str) -> float:
    folder = SHARED / "crowdspeech"
    crowd = pd.read_csv(folder / "crowdspeech-test-clean-crowd.tsv", sep="\t", keep_default_na=False).rename(
        columns={"INPUT:audio": "task", "OUTPUT:transcription": "text", "ASSIGNMENT:worker_id": "worker"})
    refs = pd.read_csv(folder / "crowdspeech-test-clean-gt.txt", sep="\t", header=None,
                       names=["task", "ref"], keep_default_na=False, quoting=3).set_index("task")["ref"]
    baselines = pd.read_csv(folder / "crowdspeech-test-clean-baselines.tsv", sep="\t",
                            keep_default_na=False, quoting=3).set_index("audio")
    print(f"CrowdSpeech test-clean: {len(crowd):,} transcriptions, {crowd['task'].nunique():,} utterances, "
          f"{crowd['worker'].nunique():,} workers; normalizer={normalizer!r}")
    normalize = get_normalizer(normalizer)

    def direct() -> pd.Series:
        prepared = crowd.assign(text=[normalize(t) for t in crowd["text"]])
        return ROVER(tokenizer=lambda s: s.split(), detokenizer=lambda w: " ".join(w)).fit_predict(prepared)

    theirs, t_direct = _timed(direct)
    ours, t_ours = _timed(lambda: aggregate_texts(crowd, normalizer=normalizer))
    if ours.tolist() != theirs.sort_index().tolist():
        raise SystemExit("kdh_ai and crowd-kit ROVER outputs differ")
    ratio = _row("ROVER (normalize + aggregate)", t_direct, t_ours)
    print(f"  WER: ROVER {wer(refs.loc[ours.index], ours, normalizer=normalizer):.2%}   "
          f"authors' ROVER {wer(refs.loc[baselines.index], baselines['rover_result'], normalizer=normalizer):.2%}   "
          f"single transcripts {wer(refs.loc[crowd['task']].tolist(), crowd['text'].tolist(), normalizer=normalizer):.2%}")
    return ratio


def bench_labels() -> float:
    folder = SHARED / "crowd_activecrowd"
    df = pd.read_csv(folder / "SP_labels.csv")[["task", "worker", "label"]]
    gold = pd.read_csv(folder / "SP_gold.csv").set_index("task")["gold"]
    print(f"activecrowd SP: {len(df):,} labels, {df['task'].nunique():,} tasks, {df['worker'].nunique():,} workers")
    worst = 0.0
    for name, method, factory in (
        ("GLAD", "glad", lambda: GLAD(n_iter=100, tol=1e-5)),
        ("Dawid-Skene", "dawid_skene", lambda: DawidSkene(n_iter=100, tol=1e-5)),
        ("majority vote", "majority_vote", MajorityVote),
    ):
        theirs, t_direct = _timed(lambda: factory().fit_predict(df))
        options = {"tie_break": "crowdkit"} if method == "majority_vote" else {}
        ours, t_ours = _timed(lambda: aggregate_labels(df, method=method, **options))
        if ours.tolist() != theirs.sort_index().tolist():
            raise SystemExit(f"kdh_ai and crowd-kit {name} outputs differ")
        ratio = _row(name, t_direct, t_ours)
        print(f"  {'':<34} accuracy vs gold {accuracy(gold, ours):.3f}")
        if method == "glad":
            worst = ratio
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("texts", "labels"), default=None)
    parser.add_argument("--normalizer", default="english", choices=("english", "basic", "none"))
    parser.add_argument("--max-overhead", type=float, default=0.20,
                        help="fail if kdh_ai is slower than crowd-kit by more than this share (default 0.20)")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"skipped: the shared data folder {SHARED} is absent (it holds the full crowd data sets)")
        return 0
    warnings.simplefilter("ignore")  # crowd-kit 1.4.2's deprecation noise under pandas 3
    ratios = {}
    if args.only in (None, "texts"):
        ratios["ROVER"] = bench_texts(args.normalizer)
    if args.only in (None, "labels"):
        ratios["GLAD"] = bench_labels()
    limit = 1.0 + args.max_overhead
    verdict = all(r <= limit for r in ratios.values())
    print("overhead " + ", ".join(f"{k} {r - 1:+.1%}" for k, r in ratios.items())
          + f" (limit {args.max_overhead:+.0%}): {'OK' if verdict else 'TOO SLOW'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
