"""Evaluation harness for routing: simulate the whole loop on real pre-labels with known answers, many batches.

Two tasks (``--task``): **transcription** (the default; audio with references, word errors) and
**classification** (BANKING77 intents, label errors; see "Classification" below).

Transcription
-------------

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

Each simulated batch draws ``--batch`` distinct items from the pool, a random calibration slice
(``--calibration``, labelled by trusted reviewers: assumed exact, and delivered as labelled), ``--gold`` gold
items answered by the people (measuring their WER; delivered with their known answers), and routes with the
target, as ``kdh route`` does: the people's error rate and its standard error from the gold items
(``kdh_ai.routing.rate_and_se``). With ``--prior-batches K`` the calibration slices of K earlier batches of
the same client (``kdh route --prior-calibration``: other items of the pool, disjoint from this batch) join
this batch's slice. For each target it prints the mean human share,
the delivered WER (mean and 95th percentile), how often the target held, and the same for a random routing of
equal human share and for the oracle (which knows every item's true error and sends the worst items first).
Then it shows, per workforce, whether a target is reachable and what overlap would reach it.

Classification
--------------
* **Real:** the model's predictions and calibrated confidences on BANKING77's test split (3,080 queries, 77
  intents, ``../shared/data/text_banking77``): the bundled all-MiniLM-L6-v2 embeddings (``kdh_ai.embeddings``,
  cached by content hash under ``benchmarks/.cache/classification``, shared with ``benchmarks/classification.py``)
  and kdh_ai's calibrated logistic head (``kdh_ai.heads.train_head``) trained on ``--per-class`` labels per class
  of the train split (10 by default, as in ``benchmarks/classification.py``). Per item: confidence = the
  calibrated top probability, errors = 1 when the predicted label is wrong, size 1. The routing code, as above.
  The people's judgments behind the simulated people are real too: per-worker accuracies against gold on the
  activecrowd sets (``tests/data/crowd/activecrowd``; by default the two text sets, SP_amt movie-review polarity
  and CF_amt weather-tweet sentiment), measured with ``kdh_ai.quality.gold_accuracy``; and the accuracy of k
  real judgments per task aggregated with ``kdh_ai.quality.aggregate_labels`` (Dawid-Skene, and majority vote
  for comparison), k = 1, 3, 5, 7 random judgments per task, several random draws.
* **Simulated (people):**
  (a) one annotator per item: each batch draws a workforce of ``--workforce`` people from the activecrowd
      per-worker accuracies; each item goes to one of them at random, who answers it correctly with their
      accuracy (a wrong answer is one of the other labels; only correctness enters the error rate, so that is
      what is drawn);
  (b) reviewers who correct the pre-label and leave a residual error rate you state (``--residual``, an
      assumption, as for transcription);
  (c) overlap k = 3 and 5: every item people touch gets k judgments aggregated with Dawid-Skene; a batch's
      people err at the rate of one random draw of the aggregated activecrowd judgments (the accuracy of the
      aggregate is measured on the real crowd, not derived from independent simulated workers: real workers'
      errors are correlated). A human item then costs k judgments.
  The gold items answered by the people have size 1, so the people's error rate is measured on ``--gold``
  binary outcomes, with the standard error ``kdh route`` uses (``kdh_ai.routing.rate_and_se``). The
  classifier's confidence is a calibrated probability, so routing starts its search where the model's
  expected error equals the people's (``start_threshold``, as ``kdh route`` does for classification).
The table prints accuracy (1 - error rate): the target, the delivered accuracy (mean and 5th percentile over
batches), and for random routing of the same share.

Usage::

    .venv/bin/python benchmarks/routing.py [--batches 200] [--batch 400] [--residual 0.02]
    .venv/bin/python benchmarks/routing.py --task classification [--batches 200] [--per-class 10] [--workforce 5]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from kdh_ai import quality  # noqa: E402
from kdh_ai.job import Job  # noqa: E402
from kdh_ai.prelabel import run_prelabel  # noqa: E402
from kdh_ai.routing.threshold import choose_threshold, people_upper_bound, split_delta  # noqa: E402
from kdh_ai.samples import ljspeech_manifest  # noqa: E402
from kdh_ai.engines import TranscribeOptions  # noqa: E402
from kdh_ai.engines.faster_whisper import Transcriber  # noqa: E402
from kdh_ai.tasks.transcription import TranscriptionTask  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "routing"
CROWDSPEECH = REPO / "tests" / "data" / "crowd" / "crowdspeech"


def build_pool(minutes: float = 90.0) -> pd.DataFrame:
    """Real tiny.en pre-labels of LJ Speech and ``minutes`` of synthetic speech, with each item's word errors
    (cached jobs: the first run pre-labels about 11 clips a minute, some 7 minutes for 90 on 2 cores)."""
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
    speech = make_speech(minutes=minutes, long_files=0, seed=1)
    sources.append(speech / "short" / "manifest.csv")
    opts = TranscribeOptions()
    frames = []
    for i, src in enumerate(sources):
        job_dir = CACHE / ("job0" if i == 0 else f"syn-{speech.name}")
        print(f"pre-labeling {src} (cached in {job_dir}) ...", flush=True)
        run_prelabel(job_dir, src, make_prelabeler=lambda: Transcriber(opts), task="transcription",
                     item_kind="audio", options=dataclasses.asdict(opts), log_progress=sys.stderr.isatty(),
                     allow_roots=[shared_lj.parent] if shared_lj.exists() else [])  # lj32.csv names those clips
        job = Job(job_dir)
        preds, items = job.current_predictions(), job.current_items()
        ids = [k for k in preds if items[k].get("reference") and preds[k].status != "error"]
        errs = TranscriptionTask().item_errors([preds[k].text for k in ids], [items[k]["reference"] for k in ids])
        frames.append(pd.DataFrame({"item_id": [f"{i}:{k}" for k in ids], "confidence":
                                    [preds[k].confidence or 0.0 for k in ids], "errors": errs[:, 0],
                                    "words": errs[:, 1]}))
    pool = pd.concat(frames, ignore_index=True)
    return pool[pool["words"] > 0].reset_index(drop=True)


def build_voice_pool(name: str, *, voices: list[str], minutes: float, seed: int) -> Path:
    """A pool of new synthetic speech (other voices, another seed), pre-labeled like :func:`build_pool`; written
    to ``benchmarks/data/routing_pool_<name>.csv`` (numbers only: ``item_id, confidence, errors, words``)."""
    from make_speech import CANDIDATE_VOICES, make_speech  # noqa: PLC0415

    chosen = [v for v in CANDIDATE_VOICES if v.label in voices]
    if not chosen:
        raise ValueError(f"none of {voices} is a candidate voice ({[v.label for v in CANDIDATE_VOICES]})")
    speech = make_speech(minutes=minutes, long_files=0, seed=seed, voices=chosen)
    opts = TranscribeOptions()
    job_dir = CACHE / f"pool-{name}-{speech.name}"
    run_prelabel(job_dir, speech / "short" / "manifest.csv", make_prelabeler=lambda: Transcriber(opts),
                 task="transcription", item_kind="audio", options=dataclasses.asdict(opts),
                 log_progress=sys.stderr.isatty())
    job = Job(job_dir)
    preds, items = job.current_predictions(), job.current_items()
    ids = [k for k in preds if items[k].get("reference") and preds[k].status != "error"]
    errs = TranscriptionTask().item_errors([preds[k].text for k in ids], [items[k]["reference"] for k in ids])
    pool = pd.DataFrame({"item_id": [f"{name}:{k}" for k in ids], "confidence": [preds[k].confidence or 0.0
                                                                                for k in ids],
                         "errors": errs[:, 0], "words": errs[:, 1]})
    out = REPO / "benchmarks" / "data" / f"routing_pool_{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    pool[pool["words"] > 0].round(4).to_csv(out, index=False)
    return out


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


@dataclasses.dataclass(frozen=True)
class People:
    """One simulated batch's people: their true error rate, and how they answer items.

    Attributes:
        rate: The expected error rate of an item they answer (the truth the oracle knows; gold measures it).
        accuracies: Per-person accuracies when the batch's items are shared among several people (each item
            to one of them at random, answered correctly with that person's accuracy); ``None``: every item
            has ``Binomial(size, rate)`` errors.
    """

    rate: float
    accuracies: np.ndarray | None = None

    def errors(self, rng: np.random.Generator, units: np.ndarray) -> np.ndarray:
        """Errors of the people's answers on items of these sizes."""
        if self.accuracies is None:
            return rng.binomial(units, self.rate)
        # Classification (size 1): who answers each item, then whether they get it right.
        who = rng.integers(0, len(self.accuracies), size=len(units))
        return (rng.random(len(units)) >= self.accuracies[who]).astype(int) * units


def transcription_gold_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gold clips of 8-29 reference words."""
    return rng.integers(8, 30, size=n)


def unit_gold_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gold items of size 1 (classification)."""
    return np.ones(n, dtype=int)


def simulate(pool: pd.DataFrame, *, target: float, people_of: Callable[[np.random.Generator], People],
             batches: int, batch: int, cal: int, gold: int, audit_rate: float, delta: float, seed: int,
             gold_sizes: Callable[[np.random.Generator, int], np.ndarray] = transcription_gold_sizes,
             size_column: str = "words", prior_batches: int = 0,
             start_from_confidence: bool = False) -> dict[str, float]:
    """Route ``batches`` simulated batches drawn from ``pool`` (columns ``confidence``, ``errors`` and
    ``size_column``) for an error-rate ``target``; the mean results (see the module docstring).

    Each batch is ``batch`` distinct items of the pool; ``prior_batches`` earlier calibration slices of ``cal``
    items each come from the rest of the pool. ``start_from_confidence``: the confidence is a calibrated
    probability, and the threshold search starts at ``1 - h`` (as ``kdh route`` does for classification)."""
    rng = np.random.default_rng(seed)
    need = batch + prior_batches * cal
    # A pool smaller than a batch stands for a population of such clips: batches are drawn with replacement.
    replace = need > len(pool)
    res = {k: [] for k in ("share", "err", "held", "rand_err", "rand_held", "oracle_share", "reachable",
                           "best_conf_share")}
    for _ in range(batches):
        drawn = rng.choice(len(pool), size=need, replace=replace)
        b = pool.iloc[drawn[:batch]]
        prior = pool.iloc[drawn[batch:]]
        conf, err = b["confidence"].to_numpy(), b["errors"].to_numpy()
        words = b[size_column].to_numpy().astype(int)
        order = rng.permutation(batch)
        cal_i, rest_i = order[:cal], order[cal:]
        people_now = people_of(rng)  # this batch's workforce
        h_true = people_now.rate
        gold_words = gold_sizes(rng, gold)
        gold_err = people_now.errors(rng, gold_words)
        h_hat = float(gold_err.sum() / gold_words.sum())
        people_delta, _ = split_delta(delta, people_measured=True)
        h_up = people_upper_bound(float(gold_err.sum()), float(gold_words.sum()), delta=people_delta)
        n_total = batch + gold
        fixed = (cal + gold) / n_total
        c_conf = np.concatenate([conf[cal_i], prior["confidence"].to_numpy()])
        c_err = np.concatenate([err[cal_i], prior["errors"].to_numpy()])
        c_units = np.concatenate([words[cal_i], prior[size_column].to_numpy().astype(int)])
        # Calibration (trusted reviewers) and gold items are delivered exact: fixed_error_share=0.
        choice = choose_threshold(c_conf, c_err, c_units, batch_confidence=conf[rest_i],
                                  human_error_rate=h_hat, human_error_upper=h_up, people_delta=people_delta,
                                  target=target, fixed_human_share=fixed, fixed_error_share=0.0, delta=delta,
                                  start_threshold=(1 - h_hat) if start_from_confidence else None,
                                  curve_bounds=False)
        to_human = conf[rest_i] < choice.threshold
        audit = (~to_human) & (rng.random(len(rest_i)) < audit_rate)
        people = to_human | audit
        # Realised delivered error rate over the whole batch (gold items are delivered with their known answers).
        # Calibration items are delivered with the trusted reviewers' answers (assumed exact).
        d_err = err[rest_i][~people].sum() + people_now.errors(rng, words[rest_i][people]).sum()
        total_words = words.sum() + gold_words.sum()
        delivered = d_err / total_words
        share = (cal + gold + people.sum()) / n_total
        # Random routing with the same number of people-touched items.
        k = int(people.sum())
        rand = np.zeros(len(rest_i), bool)
        rand[rng.choice(len(rest_i), size=k, replace=False)] = True
        r_err = err[rest_i][~rand].sum() + people_now.errors(rng, words[rest_i][rand]).sum()
        rand_err = r_err / total_words
        gain = err[rest_i] - h_true * words[rest_i]  # errors people remove from each item (expected)

        def least_routed(order: np.ndarray) -> int:
            """Fewest items, taken in this order, whose routing to people meets the target."""
            delivered_err = err[rest_i].sum() - np.concatenate([[0.0], np.cumsum(gain[order])])
            ok = np.nonzero(delivered_err / total_words <= target)[0]
            return int(ok[0]) if len(ok) else len(rest_i)

        # Oracle: knows every item's true error; sends the items with the most excess errors first.
        oracle_k = least_routed(np.argsort(-gain))
        # Best threshold on confidence knowing the true errors: what ranking by confidence allows at best.
        res["best_conf_share"].append((cal + gold + least_routed(np.argsort(conf[rest_i]))) / n_total)
        res["share"].append(share)
        res["err"].append(delivered)
        res["held"].append(delivered <= target)
        res["rand_err"].append(rand_err)
        res["rand_held"].append(rand_err <= target)
        res["oracle_share"].append((cal + gold + oracle_k) / n_total)
        res["reachable"].append(choice.reachable)
    return {"target": target, "human_share": np.mean(res["share"]), "delivered": np.mean(res["err"]),
            "delivered_p95": np.quantile(res["err"], 0.95),
            "held": np.mean(res["held"]),
            "random": np.mean(res["rand_err"]), "random_held": np.mean(res["rand_held"]),
            "oracle_share": np.mean(res["oracle_share"]),
            "best_by_confidence": np.mean(res["best_conf_share"]),
            "share_vs_oracle": np.mean(res["share"]) / np.mean(res["oracle_share"]),
            "reachable": np.mean(res["reachable"]),
            "held_if_promised": (np.mean(np.array(res["held"])[np.array(res["reachable"], bool)])
                                 if any(res["reachable"]) else np.nan)}


ACTIVECROWD = REPO / "tests" / "data" / "crowd" / "activecrowd"
ACCURACY_TARGETS = (0.85, 0.90, 0.95, 0.98)
OVERLAPS = (1, 3, 5, 7)


def build_classification_pool(*, per_class: int = 10, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Real predictions on BANKING77's test split from kdh_ai's head trained on ``per_class`` labels per class.

    Returns the pool (``item_id``, ``label``, ``predicted``, ``confidence``, ``errors``, ``units``) and a line
    describing it. Embeddings come from (and go to) the content-hash cache of ``benchmarks/classification.py``.
    """
    from classification import CACHE as EMBEDDING_CACHE  # noqa: PLC0415
    from classification import DATA as BANKING77  # noqa: PLC0415
    from classification import per_class_sample  # noqa: PLC0415

    from kdh_ai.embeddings import Embedder  # noqa: PLC0415
    from kdh_ai.heads import label_prototypes, train_head  # noqa: PLC0415
    from kdh_ai.labels import LabelSet  # noqa: PLC0415

    if not (BANKING77 / "test.csv").exists():
        raise FileNotFoundError(f"BANKING77 not found at {BANKING77} (the shared data folder next to the repository)")
    names = json.loads((BANKING77 / "categories.json").read_text(encoding="utf-8"))
    train, test = pd.read_csv(BANKING77 / "train.csv"), pd.read_csv(BANKING77 / "test.csv")
    index = {n: i for i, n in enumerate(names)}
    y, y_test = train.category.map(index).to_numpy(), test.category.map(index).to_numpy()
    idx = per_class_sample(y, per_class, seed)
    emb = Embedder("minilm-l6-v2", cache_dir=EMBEDDING_CACHE)
    x_train = emb.embed(train.text.iloc[idx].tolist(), log_progress=sys.stderr.isatty())
    x_test = emb.embed(test.text.tolist(), log_progress=sys.stderr.isatty())
    protos = label_prototypes(LabelSet.from_names(names), emb)
    head = train_head(x_train, [names[i] for i in y[idx]], classes=names, prototypes=protos)
    proba = head.predict_proba(x_test)
    pred = proba.argmax(axis=1)
    pool = pd.DataFrame({"item_id": [f"test-{i}" for i in range(len(test))], "label": y_test, "predicted": pred,
                         "confidence": proba.max(axis=1), "errors": (pred != y_test).astype(int), "units": 1})
    what = (f"BANKING77 test split, {len(pool)} queries, {len(names)} intents; all-MiniLM-L6-v2 + kdh_ai's calibrated "
            f"logistic head on {per_class} labels per class of the train split (seed {seed}, {len(idx)} labels; "
            f"embeddings: {emb.misses} computed, {emb.hits} from the cache)")
    return pool, what


@dataclasses.dataclass
class CrowdLabels:
    """Real crowd judgments measured against gold (activecrowd).

    Attributes:
        worker_accuracy: Per-worker accuracies (workers with at least ``min_judgments`` gold judgments), all
            sets pooled.
        aggregated_error: ``(method, k)`` -> error rate of each random draw of k judgments per task, aggregated
            with ``method``; the sets pooled task by task.
        per_set: A summary line per set.
        people_accuracy: Per set: the mean worker accuracy (``"one annotator"``) and the mean accuracy of
            Dawid-Skene over k judgments (``"k=3 Dawid-Skene"``...).
    """

    worker_accuracy: np.ndarray
    aggregated_error: dict[tuple[str, int], np.ndarray]
    per_set: dict[str, str]
    people_accuracy: dict[str, dict[str, float]]


def crowd_label_profiles(sets: list[str], *, min_judgments: int = 20, draws: int = 10, seed: int = 0
                         ) -> CrowdLabels:
    """Per-worker accuracies on the activecrowd sets, and the accuracy of k aggregated judgments per task."""
    accuracies = []
    wrong: dict[tuple[str, int], np.ndarray] = {}
    tasks_total = 0
    per_set = {}
    people: dict[str, dict[str, float]] = {}
    for name in sets:
        labels = pd.read_csv(ACTIVECROWD / f"{name}_labels.csv", dtype={"task": str, "worker": str})
        gold = pd.read_csv(ACTIVECROWD / f"{name}_gold.csv", dtype={"task": str}).set_index("task")["gold"]
        df = labels[["task", "worker", "label"]].drop_duplicates(["task", "worker"])
        per = quality.gold_accuracy(df, gold).per_annotator
        acc = per.loc[per["n"] >= min_judgments, "accuracy"].to_numpy()
        accuracies.append(acc)
        sizes = df.groupby("task").size()
        full = df[df["task"].isin(sizes[sizes >= max(OVERLAPS)].index)]
        tasks_total += full["task"].nunique()
        summary = {}
        for k in OVERLAPS:
            for method in ("majority_vote", "dawid_skene"):
                if k == 1 and method == "dawid_skene":
                    continue
                errs = []
                for d in range(draws):
                    pick = full.groupby("task").sample(n=k, random_state=1000 * k + d)
                    if k == 1:
                        hyp = pick.set_index("task")["label"]
                    else:
                        hyp = quality.aggregate_labels(pick, method=method, seed=d)
                    errs.append(int((hyp.to_numpy() != gold.loc[hyp.index].to_numpy()).sum()))
                key = ("single" if k == 1 else method, k)
                wrong[key] = wrong.get(key, np.zeros(draws)) + np.array(errs)
                summary[key] = 1 - np.mean(errs) / full["task"].nunique()
        people[name] = {"one annotator (workforce mean)": float(acc.mean())}
        people[name].update({f"k={k} Dawid-Skene": float(summary[("dawid_skene", k)]) for k in OVERLAPS if k > 1})
        per_set[name] = (f"{len(acc)} workers with >= {min_judgments} judgments, accuracy mean {acc.mean():.3f} "
                         f"(median {np.median(acc):.3f}, 10th-90th pct {np.quantile(acc, 0.1):.2f}-"
                         f"{np.quantile(acc, 0.9):.2f}); k random judgments per task ({full['task'].nunique()} "
                         "tasks), accuracy: " + ", ".join(
                             f"k={k} " + (f"{summary[('single', 1)]:.3f}" if k == 1 else
                                          f"MV {summary[('majority_vote', k)]:.3f} / DS "
                                          f"{summary[('dawid_skene', k)]:.3f}") for k in OVERLAPS))
    pooled = np.concatenate(accuracies)
    errors = {k: v / tasks_total for k, v in wrong.items()}
    if len(sets) > 1:
        people["+".join(sets)] = {"one annotator (workforce mean)": float(pooled.mean())}
        people["+".join(sets)].update({f"k={k} Dawid-Skene": float(1 - errors[("dawid_skene", k)].mean())
                                      for k in OVERLAPS if k > 1})
    return CrowdLabels(pooled, errors, per_set, people)


def as_accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """A simulate() table in accuracy terms (1 - error rate)."""
    out = pd.DataFrame({"target_accuracy": 1 - table["target"]})
    out["human_share"] = table["human_share"]
    out["delivered_acc"] = 1 - table["delivered"]
    out["acc_p5"] = 1 - table["delivered_p95"]
    out["held"] = table["held"]
    out["random_acc"] = 1 - table["random"]
    for col in ("random_held", "oracle_share", "best_by_confidence", "share_vs_oracle", "reachable",
                "held_if_promised"):
        out[col] = table[col]
    return out.set_index("target_accuracy")


def run_classification(args: argparse.Namespace) -> int:
    t0 = time.time()
    try:
        pool, what = build_classification_pool(per_class=args.per_class, seed=args.head_seed)
    except FileNotFoundError as exc:
        print(f"{exc}; skipping the classification simulation.")
        return 0
    print(f"\npool: {what}\nmodel accuracy on the pool {1 - pool['errors'].mean():.4f}; of its most confident "
          f"70% {1 - pool.nlargest(int(0.7 * len(pool)), 'confidence')['errors'].mean():.4f}")
    sets = [s.strip() for s in args.crowd_sets.split(",") if s.strip()]
    crowd = crowd_label_profiles(sets, seed=0)
    for name, line in crowd.per_set.items():
        print(f"activecrowd {name}: {line}")
    acc = crowd.worker_accuracy
    ds = {k: crowd.aggregated_error[("dawid_skene", k)] for k in OVERLAPS if k > 1}
    print(f"pooled ({'+'.join(sets)}): {len(acc)} workers, mean accuracy {acc.mean():.3f}; Dawid-Skene over k "
          "judgments per task: " + ", ".join(f"k={k} {1 - v.mean():.3f}" for k, v in ds.items()))
    pd.set_option("display.width", 200)
    fmt = {c: "{:.1%}".format for c in ("human_share", "delivered_acc", "acc_p5", "held", "random_acc",
                                        "random_held", "oracle_share", "reachable", "best_by_confidence",
                                        "held_if_promised")}
    targets = [float(t) for t in args.targets.split(",")] if args.targets else list(ACCURACY_TARGETS)

    def workforce_of(rng: np.random.Generator) -> People:
        drawn = rng.choice(acc, size=args.workforce)
        return People(rate=float(1 - drawn.mean()), accuracies=drawn)

    workforces = {
        f"(a) one annotator per item, a workforce of {args.workforce} drawn per batch from the activecrowd "
        "per-worker accuracies": workforce_of,
        f"(b) reviewers, residual error {args.residual:.0%} (assumed)": lambda rng: People(rate=args.residual),
    }
    for k in (3, 5):
        workforces[f"(c) overlap k={k}, Dawid-Skene over real activecrowd judgments (accuracy "
                   f"{1 - ds[k].mean():.3f}); a human item costs {k} judgments"] = (
            lambda rng, e=ds[k]: People(rate=float(rng.choice(e))))
    for name, people_of in workforces.items():
        rows = [simulate(pool, target=round(1 - t, 10), people_of=people_of, batches=args.batches, batch=args.batch,
                         cal=args.calibration, gold=args.gold, audit_rate=args.audit, delta=args.delta, seed=7,
                         gold_sizes=unit_gold_sizes, size_column="units", prior_batches=args.prior_batches,
                         start_from_confidence=True)
                for t in targets]
        table = as_accuracy(pd.DataFrame(rows))
        print(f"\n== {name}: {args.batches} batches of {args.batch} items, calibration {args.calibration}, "
              f"gold {args.gold}, audit {args.audit:.0%}; accuracies (1 - error rate)")
        print(table.to_string(formatters=fmt, float_format="{:.2f}".format))
    print("\n== People alone: which crowd setting reaches each accuracy on its own (with a calibrated model, routing "
          "can also promise a target the people alone miss, by auto-accepting the model's confident answers)")
    for t in targets:
        parts = []
        for name, people_acc in crowd.people_accuracy.items():
            ok = [n for n, a in people_acc.items() if a >= t]
            parts.append(f"{name}: " + (f"{ok[0]} ({people_acc[ok[0]]:.3f})" if ok else
                                        f"not even k={max(OVERLAPS)} Dawid-Skene "
                                        f"({people_acc[f'k={max(OVERLAPS)} Dawid-Skene']:.3f})"))
        print(f"accuracy {t:.0%}: least crowd setting that reaches it: " + "; ".join(parts)
              + f"; reviewers at {args.residual:.0%} residual error " + ("reach it" if 1 - args.residual >= t
                                                                         else "cannot"))
    print(f"\nwall time {time.time() - t0:.0f} s")
    return 0


POOLS = ("bundled", "lj", "poor", "festival_seed5")


def named_pool(name: str) -> tuple[pd.DataFrame, str]:
    """A pool of per-clip results by name (see ``--pools``), and a line describing how it was built."""
    bundled = pd.read_csv(REPO / "kdh_ai" / "data" / "routing_pool.csv")
    if name == "bundled":
        return bundled, "kdh_ai/data/routing_pool.csv: 32 LJ + 975 synthetic clips (8 flite/festival voices, seed 1)"
    if name == "lj":
        return (bundled[bundled["item_id"].str.startswith("0:")].reset_index(drop=True),
                "the 32 real LJ Speech clips alone (batches drawn with replacement)")
    if name == "poor":
        cut = bundled["confidence"].quantile(0.5)
        return (bundled[bundled["confidence"] < cut].reset_index(drop=True),
                f"the clips of the bundled pool below its median confidence ({cut:.3f}): a model that is poor")
    path = REPO / "benchmarks" / "data" / f"routing_pool_{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; build it with build_voice_pool (see its docstring)")
    return pd.read_csv(path), f"{path.relative_to(REPO)}: new synthetic speech (other voices, another seed)"


def run_pools(args: argparse.Namespace) -> int:
    """Held rate and share against the oracle per pool, post-editors at ``--residual`` (the summary table)."""
    t0 = time.time()
    targets = [float(t) for t in args.targets.split(",")] if args.targets else [0.03, 0.05, 0.08]
    rows = []
    for name in [p.strip() for p in args.pools.split(",") if p.strip()]:
        try:
            pool, what = named_pool(name)
        except FileNotFoundError as exc:
            print(f"{name}: {exc}; skipped")
            continue
        wer = pool["errors"].sum() / pool["words"].sum()
        print(f"\npool {name}: {len(pool)} clips, tiny.en WER {wer:.1%}; {what}", flush=True)
        for t in targets:
            r = simulate(pool, target=t, people_of=lambda rng: People(rate=args.residual), batches=args.batches,
                         batch=args.batch, cal=args.calibration, gold=args.gold, audit_rate=args.audit,
                         delta=args.delta, seed=7, prior_batches=args.prior_batches)
            rows.append({"pool": name, "clips": len(pool), "model_wer": wer, **r})
            print(f"  target {t:.0%}: held {r['held']:.1%}, human share {r['human_share']:.1%}, oracle "
                  f"{r['oracle_share']:.1%} ({r['share_vs_oracle']:.2f}x), delivered WER {r['delivered']:.2%} "
                  f"(95th pct {r['delivered_p95']:.2%}), promised {r['reachable']:.0%}", flush=True)
    table = pd.DataFrame(rows)
    if not table.empty:
        print("\n" + table[["pool", "clips", "model_wer", "target", "held", "human_share", "oracle_share",
                             "share_vs_oracle", "delivered", "delivered_p95", "reachable"]].to_string(
            index=False, float_format="{:.3f}".format))
    print(f"\nwall time {time.time() - t0:.0f} s")
    return 0


def run_transcription(args: argparse.Namespace) -> int:
    t0 = time.time()
    pool = build_pool(args.minutes) if args.rebuild else named_pool("bundled")[0]
    if args.export_pool and args.rebuild:
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
        f"(b) post-editors, residual WER {args.residual:.0%} (assumed)": lambda rng: People(rate=args.residual),
        "(a) crowd from scratch, 1 worker (CrowdSpeech profiles)":
            lambda rng: People(rate=float(rng.choice(worker_wer))),
    }
    targets = [float(t) for t in args.targets.split(",")] if args.targets else [0.03, 0.04, 0.05, 0.06, 0.08]
    for name, people_of in workforces.items():
        rows = [simulate(pool, target=t, people_of=people_of, batches=args.batches, batch=args.batch,
                         cal=args.calibration, gold=args.gold, audit_rate=args.audit, delta=args.delta, seed=7,
                         prior_batches=args.prior_batches)
                for t in targets]
        table = pd.DataFrame(rows).drop(columns="held_if_promised").set_index("target").rename(columns={
            "delivered": "delivered_wer", "delivered_p95": "wer_p95", "random": "random_wer"})
        print(f"\n== {name}: {args.batches} batches of {args.batch} items, calibration {args.calibration}"
              + (f" + {args.prior_batches} earlier slices of {args.calibration}" if args.prior_batches else "")
              + f", gold {args.gold}, audit {args.audit:.0%}")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=("transcription", "classification"), default="transcription",
                    help="what to simulate (default: transcription)")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=400, help="items per simulated batch")
    ap.add_argument("--calibration", type=int, default=80, help="calibration slice size")
    ap.add_argument("--gold", type=int, default=20, help="gold items per batch")
    ap.add_argument("--audit", type=float, default=0.05, help="audit rate of auto-accepted items")
    ap.add_argument("--residual", type=float, default=0.02,
                    help="post-editors'/reviewers' residual error rate: WER, or 1 - accuracy (assumption)")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--prior-batches", type=int, default=0, help="earlier batches whose calibration slices join "
                    "each batch's own (kdh route --prior-calibration)")
    ap.add_argument("--minutes", type=float, default=90.0, help="transcription: minutes of synthetic speech in "
                    "the pool (about 11 clips a minute)")
    ap.add_argument("--targets", help="comma-separated targets: WERs (transcription, default 0.03,...,0.08) or "
                    "accuracies (classification, default 0.85,0.90,0.95,0.98)")
    ap.add_argument("--export-pool", action="store_true", help="also write kdh_ai/data/routing_pool.csv "
                    "(transcription)")
    ap.add_argument("--per-class", type=int, default=10, help="classification: human labels per class the "
                    "head is trained on")
    ap.add_argument("--head-seed", type=int, default=0, help="classification: seed of the per-class sample")
    ap.add_argument("--workforce", type=int, default=5, help="classification: people per batch in (a)")
    ap.add_argument("--crowd-sets", default="SP_amt,CF_amt", help="classification: activecrowd sets whose "
                    "workers the simulated people are drawn from (SP_amt, CF_amt, MS)")
    ap.add_argument("--pools", help=f"transcription: run the post-editors' summary on these pools ({', '.join(POOLS)}"
                    "; a name N reads benchmarks/data/routing_pool_N.csv) instead of the full tables")
    ap.add_argument("--rebuild", action="store_true", help="transcription: make and pre-label the pool again "
                    "(flite/festival voices, some 15 minutes) instead of reading kdh_ai/data/routing_pool.csv")
    args = ap.parse_args()
    if args.pools:
        return run_pools(args)
    if args.task == "classification":
        return run_classification(args)
    return run_transcription(args)


if __name__ == "__main__":
    sys.exit(main())
