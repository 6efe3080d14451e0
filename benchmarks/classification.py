"""Classification benchmark on BANKING77 (77 intents): kdh_ai's heads side by side with plain scikit-learn.

Everything runs on the same all-MiniLM-L6-v2 embeddings of BANKING77 (full train split 10,003 queries, test split
3,080), read from the shared data folder ``../shared/data/text_banking77`` next to the repository:

1. **Embedding throughput**: ``kdh_ai.embeddings.Embedder.embed`` (hashing, cache look-up, float16 store, with
   an empty cache) against sentence-transformers' own ``model.encode``, on the same texts, alternating chunks
   so that both see the same machine load. Anchor: at least 0.9x.
2. **Zero-shot** from the label names (``kdh_ai.heads.ZeroShotHead``). Anchor: 0.62.
3. **10 labels per class** (3 seeds) and **the full training set**: kdh_ai's head (logistic regression C=10,
   label prototypes, temperature scaling) and a plain ``sklearn.linear_model.LogisticRegression()`` on the same
   embeddings; accuracy on the test split, accuracy of the most confident 70% (what routing auto-accepts when
   the least confident 30% go to people) and expected calibration error. Anchors: 0.84-0.86 and 0.956 (10 per
   class); 0.93 and 0.99 (full); tolerance 0.01.
4. **The loop**: start zero-shot on the training pool, then rounds of human labels chosen as
   ``kdh_ai.active_learning.select_next_round`` chooses them (first round at random while the head is
   zero-shot, then smallest margins balanced over the predicted labels + 20% random), retrain, repeat; the
   test accuracy is printed after each round, next to plain least-confident rounds and purely random rounds.

Usage::

    .venv/bin/python benchmarks/classification.py [--seeds 3] [--rounds 8] [--round-size 154] [--quick]

Embeddings are cached (by content hash) in ``benchmarks/.cache/classification``; the throughput test always
starts from an empty cache. Exits 0 when every anchor is reached, 1 otherwise, 0 with a message when the data
set is not there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "text_banking77"
CACHE = REPO / "benchmarks" / ".cache" / "classification"

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kdh_ai.active_learning import select_round, uncertainty  # noqa: E402
from kdh_ai.calibration import expected_calibration_error  # noqa: E402
from kdh_ai.embeddings import Embedder  # noqa: E402
from kdh_ai.heads import ZeroShotHead, label_prototypes, train_head  # noqa: E402
from kdh_ai.labels import LabelSet  # noqa: E402

ANCHORS = {  # (what, anchor, lower bound to reach)
    "zero_shot": ("zero-shot from label names: accuracy", 0.62, 0.61),
    "few_acc": ("10 labels per class: accuracy (mean of seeds)", 0.84, 0.83),
    "few_top70": ("10 labels per class: accuracy of the most confident 70%", 0.956, 0.946),
    "full_acc": ("full training set: accuracy", 0.93, 0.92),
    "full_top70": ("full training set: accuracy of the most confident 70%", 0.99, 0.98),
    "throughput": ("embedding throughput vs sentence-transformers", 0.90, 0.90),
}


def scores(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, accuracy of the most confident 70%, and ECE."""
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    keep = np.argsort(-conf, kind="stable")[: int(round(0.7 * len(y)))]
    return {"acc": float((pred == y).mean()), "top70": float((pred[keep] == y[keep]).mean()),
            "ece": expected_calibration_error(proba, y)}


def sklearn_baseline(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, k: int) -> np.ndarray:
    """Plain scikit-learn logistic regression (defaults), probabilities over all k classes."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_iter.*")
        clf = LogisticRegression(max_iter=2000).fit(x, y)
    out = np.zeros((len(x_test), k))
    out[:, clf.classes_] = clf.predict_proba(x_test)
    return out


def throughput(embedder: Embedder, texts: list[str], chunk: int) -> tuple[float, float, float]:
    """Texts per second of sentence-transformers' encode and of Embedder.embed (empty cache), and the median of
    the per-chunk ratios. Chunks alternate, and so does which of the two runs first, so both see the same load."""
    ours_t = theirs_t = 0.0
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        cold = Embedder(embedder.resolved, cache_dir=tmp, batch_size=embedder.batch_size)
        cold.model = embedder.model  # the same loaded model for both
        embedder.model.encode(texts[:64], batch_size=embedder.batch_size)  # warm-up

        def theirs(part: list[str]) -> float:
            t = time.perf_counter()
            embedder.model.encode(part, batch_size=embedder.batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
            return time.perf_counter() - t

        def ours(part: list[str]) -> float:
            t = time.perf_counter()
            cold.embed(part)
            return time.perf_counter() - t

        for n, start in enumerate(range(0, len(texts), chunk)):
            part = texts[start:start + chunk]
            if n % 2:
                b, a = ours(part), theirs(part)
            else:
                a, b = theirs(part), ours(part)
            theirs_t += a
            ours_t += b
            ratios.append(a / b)
        assert cold.misses == len(set(texts)), "the throughput run must start from an empty cache"
    return len(texts) / theirs_t, len(texts) / ours_t, float(np.median(ratios))


def per_class_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in np.unique(y)])


def loop(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, protos: np.ndarray,
         names: list[str], *, rounds: int, size: int, random_share: float, seed: int, strategy: str
         ) -> list[tuple[int, float, float]]:
    """Simulated rounds: (human labels so far, test accuracy, accuracy of the most confident 70%).

    ``strategy``: ``"kdh_ai"`` chooses rounds as ``select_next_round`` does (first round random while the head
    is zero-shot, then the smallest margins balanced over predicted labels plus ``random_share`` at random);
    ``"least_confident"`` ranks by the top probability from the first round on, unbalanced; ``"random"``
    draws every round at random.
    """
    rng = np.random.default_rng(seed)
    zs = ZeroShotHead(protos, names)
    proba_pool, proba_test = zs.predict_proba(x), zs.predict_proba(x_test)
    labelled: list[int] = []
    s0 = scores(proba_test, y_test)
    curve = [(0, s0["acc"], s0["top70"])]
    for r in range(rounds):
        pool = np.array(sorted(set(range(len(y))) - set(labelled)))
        if strategy == "random":
            labelled += [int(i) for i in rng.choice(pool, size=size, replace=False)]
        else:
            how = "least_confident" if strategy == "least_confident" else "margin"
            unc = uncertainty(proba_pool[pool], strategy=how)
            groups = {str(i): str(c) for i, c in zip(pool, proba_pool[pool].argmax(axis=1))}
            share = 1.0 if strategy == "kdh_ai" and r == 0 else random_share
            sel = select_round(dict(zip(map(str, pool), unc)), n=size, random_share=share,
                               seed=int(rng.integers(1 << 31)), groups=groups if strategy == "kdh_ai" else None)
            labelled += [int(i) for i in sel.item_ids]
        idx = np.array(labelled)
        head = train_head(x[idx], [names[i] for i in y[idx]], classes=names, prototypes=protos, seed=seed)
        proba_pool, proba_test = head.predict_proba(x), head.predict_proba(x_test)
        s = scores(proba_test, y_test)
        curve.append((len(labelled), s["acc"], s["top70"]))
        print(f"    {strategy:<15} {len(labelled):>5} labels: accuracy {s['acc']:.4f}, "
              f"most confident 70% {s['top70']:.4f}", flush=True)
    return curve


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--round-size", type=int, default=154)
    ap.add_argument("--random-share", type=float, default=0.2)
    ap.add_argument("--throughput-texts", type=int, default=2048)
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 rounds, 512 throughput texts")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds, args.throughput_texts = 1, 3, 512
    if not (DATA / "train.csv").exists():
        print(f"BANKING77 not found at {DATA} (the shared data folder next to the repository); skipping.")
        return 0
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {DATA}")
    names = json.loads((DATA / "categories.json").read_text(encoding="utf-8"))
    train, test = pd.read_csv(DATA / "train.csv"), pd.read_csv(DATA / "test.csv")
    index = {n: i for i, n in enumerate(names)}
    y, y_test = train.category.map(index).to_numpy(), test.category.map(index).to_numpy()
    labels = LabelSet.from_names(names)
    emb = Embedder("minilm-l6-v2", cache_dir=CACHE)
    got: dict[str, float] = {}

    print("\n== 1. embedding throughput (same texts, same model, alternating chunks) ==")
    texts = test.text.tolist()[: args.throughput_texts]
    theirs, ours, median = throughput(emb, texts, chunk=256)
    got["throughput"] = ours / theirs
    print(f"  sentence-transformers encode: {theirs:7.1f} texts/s")
    print(f"  kdh_ai Embedder.embed:        {ours:7.1f} texts/s  (ratio {ours / theirs:.3f}; median of the "
          f"per-chunk ratios {median:.3f})")

    t0 = time.perf_counter()
    x = emb.embed(train.text.tolist(), log_progress=True)
    x_test = emb.embed(test.text.tolist(), log_progress=True)
    print(f"\n  embeddings: {len(x)} train + {len(x_test)} test in {time.perf_counter() - t0:.1f} s "
          f"({emb.misses} computed, {emb.hits} from the cache)")
    protos = label_prototypes(labels, emb)

    print("\n== 2. zero-shot from the label names ==")
    s = scores(ZeroShotHead(protos, names).predict_proba(x_test), y_test)
    got["zero_shot"] = s["acc"]
    print(f"  accuracy {s['acc']:.4f}, most confident 70% {s['top70']:.4f}, ECE {s['ece']:.3f}")

    print("\n== 3. trained heads: kdh_ai vs plain scikit-learn, same embeddings ==")
    print(f"  {'setting':<22}{'head':<22}{'accuracy':>9}{'top 70%':>9}{'ECE':>7}{'fit s':>7}")
    rows: dict[str, list[dict[str, float]]] = {}
    settings = [(f"10/class seed {s}", per_class_sample(y, 10, s)) for s in range(args.seeds)]
    settings.append(("full train set", np.arange(len(y))))
    for name, idx in settings:
        for which in ("kdh_ai", "sklearn"):
            t = time.perf_counter()
            if which == "kdh_ai":
                head = train_head(x[idx], [names[i] for i in y[idx]], classes=names, prototypes=protos)
                proba = head.predict_proba(x_test)
            else:
                proba = sklearn_baseline(x[idx], y[idx], x_test, len(names))
            dt = time.perf_counter() - t
            r = scores(proba, y_test)
            rows.setdefault(f"{'full' if name.startswith('full') else 'few'}:{which}", []).append(r)
            label = "kdh_ai (C=10, T-scaled)" if which == "kdh_ai" else "sklearn LogisticReg."
            print(f"  {name:<22}{label:<22}{r['acc']:>9.4f}{r['top70']:>9.4f}{r['ece']:>7.3f}{dt:>7.1f}",
                  flush=True)
    for setting in ("few", "full"):
        for which in ("kdh_ai", "sklearn"):
            rs = rows[f"{setting}:{which}"]
            mean = {m: float(np.mean([r[m] for r in rs])) for m in ("acc", "top70", "ece")}
            spread = f" (seeds {min(r['acc'] for r in rs):.4f}-{max(r['acc'] for r in rs):.4f})" if len(rs) > 1 else ""
            print(f"  mean {setting:<5} {which:<8}: accuracy {mean['acc']:.4f}{spread}, top 70% "
                  f"{mean['top70']:.4f}, ECE {mean['ece']:.3f}")
            if which == "kdh_ai":
                got[f"{setting}_acc"], got[f"{setting}_top70"] = mean["acc"], mean["top70"]

    print(f"\n== 4. the loop: rounds of {args.round_size} human labels, accuracy on the test split as it runs ==")
    curves = {}
    for strategy in ("kdh_ai", "least_confident", "random"):
        curves[strategy] = loop(x, y, x_test, y_test, protos, names, rounds=args.rounds, size=args.round_size,
                                random_share=args.random_share, seed=0, strategy=strategy)
    print(f"\n  test accuracy (most confident 70%) against human labels; 10/class stratified: "
          f"{got['few_acc']:.4f} ({got['few_top70']:.4f})")
    print(f"  {'labels':>6} {'kdh_ai select_next_round':>26} {'least confident':>18} {'random':>18}")
    for (n, a, a7), (_, b, b7), (_, c, c7) in zip(curves["kdh_ai"], curves["least_confident"], curves["random"]):
        print(f"  {n:>6} {a:>17.4f} ({a7:.4f}) {b:>9.4f} ({b7:.4f}) {c:>9.4f} ({c7:.4f})")
    got["loop_vs_random"] = float(np.mean([a - c for (_, a, _), (_, _, _), (_, c, _) in
                                           zip(curves["kdh_ai"][2:], curves["least_confident"][2:],
                                               curves["random"][2:])])) if len(curves["kdh_ai"]) > 2 else 0.0
    print(f"  mean gain of kdh_ai's rounds over random rounds (rounds 2+): {got['loop_vs_random']:+.4f}")

    print("\n== anchors (issue 6) ==")
    print(f"  {'what':<58}{'anchor':>8}{'reached':>9}  ok")
    failed = 0
    for key, (what, anchor, low) in ANCHORS.items():
        ok = got[key] >= low
        failed += not ok
        print(f"  {what:<58}{anchor:>8.3f}{got[key]:>9.4f}  {'yes' if ok else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
