"""The classification job through the same flow as transcription (``kdh prelabel classify``, the job directory,
the prediction schema, resuming, bad input), retraining on human labels, and choosing the next round.

Real model, real texts (SMS spam and BANKING77 subsets in tests/data/text). The full loop against the real
Label Studio server (push, annotate, pull, retrain) is not here yet: the Label Studio layer is being built."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kdh_ai.active_learning import classifier_for_job, read_human_labels, select_next_round, select_round
from kdh_ai.cli import app
from kdh_ai.config import ConfigError, load_pipeline
from kdh_ai.job import Job
from kdh_ai.prelabel import run_prelabel
from kdh_ai.tasks.classification import Classifier, ClassifyOptions, load_job_head

DATA = Path(__file__).parent / "data" / "text"
REPO = Path(__file__).resolve().parent.parent
SMS_LABELS = DATA / "sms_spam" / "labels.yaml"


def sms_rows(n: int) -> list[dict[str, str]]:
    with open(DATA / "sms_spam" / "texts.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows[:n]


def write_manifest(path: Path, rows: list[dict[str, str]], *, extra_bytes: bytes = b"") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["item_id", "text", "reference"])
        w.writeheader()
        w.writerows(rows)
    with open(path, "ab") as fh:
        fh.write(extra_bytes)
    return path


def kdh(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 real SMS, then one row of each kind of bad input."""
    folder = tmp_path_factory.mktemp("batch")
    rows = sms_rows(60)
    rows += [{"item_id": "empty", "text": "", "reference": "ham"},
             {"item_id": "spaces", "text": "   \t ", "reference": "ham"},
             {"item_id": "long", "text": "win a prize " * 200, "reference": "spam"},
             {"item_id": rows[0]["item_id"], "text": "a second row with the same id", "reference": "ham"}]
    return write_manifest(folder / "texts.csv", rows,
                          extra_bytes=b"latin1,Caf\xe9 cr\xe8me at 5 tonight?,ham\nafter-bad,See you at 5,ham\n")


def test_classify_job_with_bad_input_resume_and_retraining(bad_batch: Path, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    code, out = kdh("prelabel", "classify", "--input", str(bad_batch), "--labels", str(SMS_LABELS),
                    "--out", str(job_dir), "--max-chars", "1000", "--no-progress")
    assert code == 1, out  # some items failed: listed, the rest done
    job = Job(job_dir)
    preds = job.current_predictions()
    assert len(preds) == 65  # 60 + empty + spaces + long + latin1 + after-bad; the duplicate is not an item
    errors = {k: p.error for k, p in preds.items() if p.status == "error"}
    assert set(errors) == {"empty", "spaces", "long", "latin1"}
    assert "text is empty" in errors["empty"] and "text is empty" in errors["spaces"]
    assert "2400 characters long, over max_chars=1000" in errors["long"]
    assert "not valid UTF-8" in errors["latin1"] and "byte 0xe9" in errors["latin1"]
    for item_id in errors:
        assert f"item {item_id}:" in out
    assert "duplicate item_id" in out and "sms-" in out
    assert preds["after-bad"].status == "ok"  # the row after the bad bytes is read normally

    # one schema for every task type
    labels = {"ham", "spam"}
    for item_id, p in preds.items():
        assert p.task == "classification" and p.model["name"] == "minilm-l6-v2"
        if p.status == "ok":
            assert p.text in labels and p.error is None
            probs = p.payload["probabilities"]
            assert set(probs) == labels and abs(sum(probs.values()) - 1) < 1e-4
            assert p.confidence == max(probs.values())
            assert p.payload["head"] == "zero_shot" and p.payload["n_train"] == 0
            assert p.payload["text_chars"] > 0 and p.sha256 and p.source == str(bad_batch.resolve())
        else:
            assert p.confidence is None
    manifest = json.loads((job_dir / "job.json").read_text())
    assert manifest["task"] == "classification" and manifest["counts"] == {"ok": 61, "error": 4, "pending": 0}
    assert any("duplicate item_id" in i for i in manifest["ingest_issues"])
    assert (job_dir / "predictions.parquet").exists()
    zero_shot_hash = manifest["config_hash"]
    truth = {r["item_id"]: r["reference"] for r in sms_rows(60)}
    zs_acc = np.mean([preds[k].text == v for k, v in truth.items()])

    # resumable: the same command again does nothing
    lines = (job_dir / "predictions.jsonl").read_text().count("\n")
    code, out = kdh("prelabel", "classify", "--input", str(bad_batch), "--labels", str(SMS_LABELS),
                    "--out", str(job_dir), "--max-chars", "1000", "--no-progress")
    assert code == 1 and "0 processed, 65 already done" in out
    assert (job_dir / "predictions.jsonl").read_text().count("\n") == lines

    # human labels come back (40 of the 60, as a CSV): the head is trained, every prediction is redone
    train = tmp_path / "human.csv"
    with open(train, "w", encoding="utf-8", newline="") as fh:
        fh.write("item_id,label\n" + "".join(f"{k},{v}\n" for k, v in list(truth.items())[:40]))
    code, out = kdh("prelabel", "classify", "--input", str(bad_batch), "--labels", str(SMS_LABELS),
                    "--out", str(job_dir), "--max-chars", "1000", "--train-labels", str(train), "--no-progress")
    assert code == 1 and "head: trained" in out and "40 human labels" in out
    trained_hash = json.loads((job_dir / "job.json").read_text())["config_hash"]
    assert trained_hash != zero_shot_hash
    preds = job.current_predictions()
    ok = [p for p in preds.values() if p.status == "ok"]
    assert len(ok) == 61 and all(p.payload["head"] == "trained" and p.payload["n_train"] == 40 for p in ok)
    heads = list((job_dir / "heads").glob("*.npz"))
    assert [h.stem for h in heads] == [ok[0].payload["head_id"]]
    assert load_job_head(job_dir, ok[0].payload["head_id"]).identity == ok[0].payload["head_id"]
    held_out = list(truth.items())[40:]
    trained_acc = np.mean([preds[k].text == v for k, v in held_out])
    assert trained_acc >= 0.8, (trained_acc, zs_acc)

    # the same labels again: nothing to redo; the zero-shot configuration's records are kept as history
    code, out = kdh("prelabel", "classify", "--input", str(bad_batch), "--labels", str(SMS_LABELS),
                    "--out", str(job_dir), "--max-chars", "1000", "--train-labels", str(train), "--no-progress")
    assert "0 processed, 65 already done" in out
    assert len(job.current_predictions(zero_shot_hash)) == 65


def test_interrupted_job_continues_and_labels_outside_the_set_are_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "t.csv", sms_rows(30))
    opts = ClassifyOptions(labels=str(SMS_LABELS), batch_size=8)
    from kdh_ai.labels import load_labels

    label_set = load_labels(SMS_LABELS)
    clf = Classifier(opts, labels=label_set, cache_dir=tmp_path / "cache")

    def run(max_items: int | None = None):
        return run_prelabel(tmp_path / "job", manifest, make_prelabeler=lambda: clf, task="classification",
                            item_kind="text", options={}, max_items=max_items)

    first = run(max_items=10)
    assert first.processed == 10 and first.counts["pending"] == 20
    second = run()
    assert second.skipped == 10 and second.processed == 20 and second.counts == {"ok": 30, "pending": 0}
    assert clf.embedder.misses == 30 + 4  # every text embedded once (+ 2 names and 2 descriptions)

    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,label\nsms-0042,eggs\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"labels not in the label set: \['eggs'\]; valid labels: \['ham', 'spam'\]"):
        classifier_for_job(ClassifyOptions(train_labels=str(bad)), tmp_path / "job", labels=label_set)
    with pytest.raises(ValueError, match="head=trained needs human labels"):
        classifier_for_job(ClassifyOptions(head="trained"), tmp_path / "job", labels=label_set)


def test_training_from_pulled_annotations_and_choosing_the_next_round(tmp_path: Path) -> None:
    rows = sms_rows(80)
    manifest = write_manifest(tmp_path / "t.csv", rows)
    job_dir = tmp_path / "job"
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS_LABELS), "-o", str(job_dir),
                    "--no-progress")
    assert code == 0, out
    job = Job(job_dir)
    preds = job.current_predictions()

    # zero-shot predictions: the first round is drawn at random (cold start)
    sel = select_next_round(job, 20, random_share=0.25, seed=3)
    assert len(sel.item_ids) == 20 and sel.uncertain == [] and sel.pool_size == 80
    assert select_next_round(job, 20, random_share=0.25, seed=3).item_ids == sel.item_ids  # seeded
    assert select_next_round(job, 20, random_share=0.25, seed=4).item_ids != sel.item_ids

    # uncertainty ranking itself: lowest confidence, or smallest margin, first
    lc = select_next_round(job, 20, random_share=0.25, strategy="least_confident", balance=False,
                           cold_start_random=False)
    assert len(lc.uncertain) == 15 and len(lc.random) == 5 and not set(lc.random) & set(lc.uncertain)
    assert max(preds[k].confidence for k in lc.uncertain) <= min(
        preds[k].confidence for k in preds if k not in lc.uncertain)
    mg = select_next_round(job, 10, random_share=0.0, balance=False, cold_start_random=False)
    assert max(preds[k].payload["margin"] for k in mg.uncertain) <= min(
        preds[k].payload["margin"] for k in preds if k not in mg.uncertain)
    balanced = select_next_round(job, 2, random_share=0.0, cold_start_random=False)
    assert {preds[k].text for k in balanced.uncertain} == {"ham", "spam"}  # one per predicted label

    # people label the chosen items in Label Studio; a pull writes annotations.jsonl (latest per annotation)
    truth = {r["item_id"]: r["reference"] for r in rows}
    recs, ann = [], 0
    for i, item_id in enumerate(sel.item_ids):
        for who in ("amina@hub.example", "brian@hub.example"):
            ann += 1
            answer = truth[item_id]
            if who == "brian@hub.example" and i == 0:
                answer = "spam" if answer == "ham" else "ham"  # a disagreement: aggregated as the flow does
            recs.append({"item_id": item_id, "annotation_id": ann, "answer": answer, "annotator_email": who,
                         "skipped": False, "deleted": False})
    recs.append({"item_id": sel.item_ids[1], "annotation_id": ann + 1, "answer": None, "skipped": True,
                 "deleted": False, "annotator_email": "c@hub.example"})
    recs.append({"item_id": sel.item_ids[2], "annotation_id": 5, "answer": "eggs", "skipped": False,
                 "deleted": True, "annotator_email": "amina@hub.example"})  # deleted later: ignored
    job.log("annotations").append(recs)
    job.log("gold").append([{"item_id": sel.item_ids[3], "answer": truth[sel.item_ids[3]]}])
    human = read_human_labels(job)
    assert set(human.labels) == set(sel.item_ids)
    assert human.labels[sel.item_ids[0]] in {"ham", "spam"}
    assert all(human.labels[k] == truth[k] for k in sel.item_ids[1:])
    assert human.labels[sel.item_ids[2]] == truth[sel.item_ids[2]]  # amina's annotation 5 was deleted; brian's counts
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS_LABELS), "-o", str(job_dir),
                    "--no-progress")
    assert code == 0 and "head: trained" in out and "20 human labels" in out, out

    # the next round leaves out what people already answered (the tied item too: adjudication is routing's job)
    nxt = select_next_round(job, 30, random_share=0.2, seed=3)
    assert set(nxt.item_ids).isdisjoint(sel.item_ids) and nxt.pool_size == 80 - 20
    assert len(nxt.uncertain) == 24 and len(nxt.random) == 6  # a trained head: uncertainty sampling
    with pytest.raises(ValueError, match="strategy must be one of"):
        select_next_round(job, 5, strategy="entropy")
    (tmp_path / "tjob").mkdir()
    Job(tmp_path / "tjob").update_manifest(task="transcription")
    with pytest.raises(ValueError, match="is a transcription job"):
        select_next_round(tmp_path / "tjob", 5)
    with pytest.raises(ValueError, match="random_share"):
        select_round({"a": 0.5}, n=1, random_share=1.5)


def test_human_labels_from_a_csv_take_the_majority(tmp_path: Path) -> None:
    p = tmp_path / "labels.csv"
    p.write_text("item_id,label,text\na,spam,win now\na,spam,\na,ham,\nb,ham,\nb,spam,\nc,ham,hi mum\n,ham,\n",
                 encoding="utf-8")
    human = read_human_labels(p)
    assert human.labels == {"a": "spam", "c": "ham"} and human.ties == ["b"]
    assert human.texts == {"a": "win now", "c": "hi mum"}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,answer\na,spam\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs the columns item_id and label"):
        read_human_labels(bad)
    with pytest.raises(FileNotFoundError):
        read_human_labels(tmp_path / "none.csv")


def test_pipeline_yaml_and_flags(tmp_path: Path) -> None:
    task, opts = load_pipeline(REPO / "pipelines" / "classify.yaml")
    assert task == "classification" and isinstance(opts, ClassifyOptions) and opts.head == "auto"
    bad = tmp_path / "p.yaml"
    bad.write_text("task: classification\noptions:\n  max_char: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="max_char: unknown key"):
        load_pipeline(bad)
    code, out = kdh("prelabel", "classify", "-i", str(tmp_path / "x.csv"), "-o", str(tmp_path / "j"))
    assert code == 2 and "no labels" in out
    code, out = kdh("prelabel", "classify", "-i", str(tmp_path / "x.csv"), "-o", str(tmp_path / "j"),
                    "-l", str(SMS_LABELS), "--head", "sometimes")
    assert code == 2 and "head" in out
    shutil.rmtree(tmp_path / "j", ignore_errors=True)
