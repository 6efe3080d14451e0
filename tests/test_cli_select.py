"""``kdh select``: choosing the next human round of a classification job from the command line.

Real model (the bundled MiniLM) on real texts (40 SMS of the repository's SMS spam subset); the last test
pushes the chosen round to the real Label Studio server and checks that only those items go out.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from kdh_ai.active_learning import select_next_round
from kdh_ai.job import Job
from test_classification_job import SMS_LABELS, sms_rows, write_manifest
from test_classification_job import kdh as kdh_wrapped

pytestmark = pytest.mark.slow

N_TEXTS = 40


@pytest.fixture(scope="module")
def zero_shot_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A classification job of 40 real SMS, pre-labelled zero-shot (no human labels yet), and its manifest."""
    folder = tmp_path_factory.mktemp("select")
    manifest = write_manifest(folder / "texts.csv", sms_rows(N_TEXTS))
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS_LABELS), "-o",
                    str(folder / "job"), "--no-progress")
    assert code == 0, out
    return folder / "job", manifest


@pytest.fixture
def job_dir(zero_shot_job: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the zero-shot job (the tests record choices in it)."""
    return Path(shutil.copytree(zero_shot_job[0], tmp_path / "job"))


def kdh(*args: str) -> tuple[int, str]:
    """Run ``kdh``; its exit code and its output with rich's line wrapping undone."""
    code, out = kdh_wrapped(*args)
    return code, " ".join(out.split())


def read_choice(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def routing_records(job_dir: Path) -> list[dict]:
    path = job_dir / "routing.jsonl"
    return list(Job(job_dir).log("routing")) if path.exists() else []


def test_cold_start_round_is_random_recorded_for_push_and_excluded_next_time(job_dir: Path, tmp_path: Path) -> None:
    items = set(Job(job_dir).current_items())
    assert len(items) == N_TEXTS

    # a dry run shows and writes the choice, but records nothing in the job
    code, out = kdh("select", str(job_dir), "--n", "10", "--seed", "1", "--dry-run", "--out",
                    str(tmp_path / "dry.csv"))
    assert code == 0, out
    dry = read_choice(tmp_path / "dry.csv")
    assert routing_records(job_dir) == [] and "Dry run" in out

    # the same command for real: the same seeded choice, the one the library makes, recorded in routing.jsonl
    code, out = kdh("select", str(job_dir), "--n", "10", "--seed", "1", "--out", str(tmp_path / "round1.csv"))
    assert code == 0, out
    chosen = read_choice(tmp_path / "round1.csv")
    ids = [r["item_id"] for r in chosen]
    assert ids == [r["item_id"] for r in dry]
    assert len(ids) == 10 and len(set(ids)) == 10 and set(ids) <= items
    assert "Cold start" in out and "0 uncertain + 10 random" in out and "40 items with a prediction" in out
    assert all(r["reason"] == "random: cold start (zero-shot predictions)" for r in chosen)
    preds = Job(job_dir).current_predictions()
    for r in chosen:
        assert r["predicted"] == preds[r["item_id"]].text
        assert float(r["confidence"]) == pytest.approx(preds[r["item_id"]].confidence, abs=1e-6)
    recs = routing_records(job_dir)
    assert [r["item_id"] for r in recs] == ids
    assert {(r["role"], r["step"]) for r in recs} == {("human", "select")}
    assert all(r["reason"] == "active learning: random: cold start (zero-shot predictions)" for r in recs)
    assert "routing.jsonl" in out and "kdh push" in out

    # the next round leaves out what is already with people, even before anyone answers it
    code, out = kdh("select", str(job_dir), "--n", "10", "--seed", "1", "--dry-run", "--out",
                    str(tmp_path / "round2.csv"))
    assert code == 0, out
    again = [r["item_id"] for r in read_choice(tmp_path / "round2.csv")]
    assert len(again) == 10 and set(again).isdisjoint(ids)
    assert "30 items with a prediction" in out and "(10 already with people)" in out

    # more than is left: every remaining item, and a note
    code, out = kdh("select", str(job_dir), "--n", "100", "--dry-run", "--out", str(tmp_path / "all.csv"))
    assert code == 0 and len(read_choice(tmp_path / "all.csv")) == 30 and "Only 30 item(s) left" in out


def test_trained_head_round_by_uncertainty_with_random_share(job_dir: Path, zero_shot_job: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    manifest = zero_shot_job[1]
    truth = {r["item_id"]: r["reference"] for r in sms_rows(N_TEXTS)}
    code, out = kdh("select", str(job_dir), "--n", "12", "--seed", "2")
    assert code == 0, out
    first = [r["item_id"] for r in routing_records(job_dir)]
    assert len(first) == 12

    # people answer the round (what `kdh pull` writes), and the head is retrained on their labels
    Job(job_dir).log("annotations").append(
        {"item_id": k, "annotation_id": i + 1, "answer": truth[k], "annotator_email": "amina@hub.example",
         "skipped": False, "deleted": False} for i, k in enumerate(first))
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS_LABELS), "-o", str(job_dir),
                    "--no-progress")
    assert code == 0 and "head: trained" in out, out
    preds = Job(job_dir).current_predictions()
    assert {p.payload["head"] for p in preds.values()} == {"trained"}

    # least confident, unbalanced, 30% random: 7 uncertain + 3 random out of the 28 unanswered items
    code, out = kdh("select", str(job_dir), "-n", "10", "--random-share", "0.3", "--strategy", "least_confident",
                    "--no-balance", "--seed", "5", "--out", str(tmp_path / "lc.csv"))
    assert code == 0, out
    assert "Cold start" not in out and "7 uncertain + 3 random" in out and "28 items with a prediction" in out
    chosen = read_choice(tmp_path / "lc.csv")
    uncertain = [r["item_id"] for r in chosen if r["reason"].startswith("uncertain: top probability")]
    random = [r["item_id"] for r in chosen if r["reason"] == "random share: unbiased sample for calibration"]
    assert len(uncertain) == 7 and len(random) == 3
    pool = set(preds) - set(first)
    assert {r["item_id"] for r in chosen} <= pool
    # the uncertain ones are the least confident of the pool; their score is the calibrated top probability
    assert max(preds[k].confidence for k in uncertain) <= min(preds[k].confidence for k in pool - set(uncertain))
    for r in chosen:
        assert float(r["score"]) == pytest.approx(preds[r["item_id"]].confidence, abs=1e-6)
    lib = select_next_round(job_dir, 10, random_share=0.3, strategy="least_confident", balance=False, seed=5,
                            exclude=first)
    assert [r["item_id"] for r in chosen] == lib.item_ids  # the command is the library's choice, nothing more
    recs = routing_records(job_dir)[12:]
    assert [r["item_id"] for r in recs] == lib.item_ids
    assert sum(r["reason"].startswith("active learning: uncertain") for r in recs) == 7

    # margin (the default), balanced over the predicted labels, no random share
    code, out = kdh("select", str(job_dir), "--n", "4", "--random-share", "0", "--dry-run", "--out",
                    str(tmp_path / "mg.csv"))
    assert code == 0, out
    mg = read_choice(tmp_path / "mg.csv")
    assert len(mg) == 4 and all(r["reason"].startswith("uncertain: margin") for r in mg)
    assert {r["predicted"] for r in mg} == {"ham", "spam"}  # both predicted labels get their share
    for r in mg:
        assert float(r["score"]) == pytest.approx(preds[r["item_id"]].payload["margin"], abs=1e-6)


def test_bad_jobs_and_options_exit_2(job_dir: Path, tmp_path: Path) -> None:
    code, out = kdh("select", str(tmp_path / "nowhere"))
    assert code == 2 and "not a job directory" in out
    (tmp_path / "tjob").mkdir()
    Job(tmp_path / "tjob").update_manifest(task="transcription")
    code, out = kdh("select", str(tmp_path / "tjob"), "--n", "5")
    assert code == 2 and "is a transcription job" in out and "classification jobs only" in out
    (tmp_path / "empty").mkdir()
    Job(tmp_path / "empty").update_manifest(task="classification")
    code, out = kdh("select", str(tmp_path / "empty"))
    assert code == 2 and "no predictions yet" in out
    code, out = kdh("select", str(job_dir), "--strategy", "entropy")
    assert code == 2 and "--strategy must be margin or least_confident" in out
    for bad in (["--random-share", "1.5"], ["--n", "0"]):
        code, out = kdh("select", str(job_dir), *bad)
        assert code == 2, (bad, out)
    assert routing_records(job_dir) == []  # nothing recorded by a refused command
    code, out = kdh("select", "--help")
    assert code == 0 and "random share" in out and "routing.jsonl" in out and "kdh push" in out


@pytest.mark.labelstudio
def test_push_sends_only_the_chosen_round(job_dir: Path, labelstudio_env, tmp_path: Path) -> None:
    code, out = kdh("select", str(job_dir), "--n", "8", "--seed", "3", "--out", str(tmp_path / "r.csv"))
    assert code == 0, out
    ids = {r["item_id"] for r in read_choice(tmp_path / "r.csv")}
    code, out = kdh("push", str(job_dir), "--project", "select-round", "--gold-rate", "0", "--no-progress")
    assert code == 0, out
    sent = Job(job_dir).log("tasks").latest_by("item_id")
    assert set(sent) == ids and all(r["role"] == "human" for r in sent.values())
    assert re.search(rf"not sent: not routed yet\W+{N_TEXTS - 8}\b", out), out  # the rest is held back
    # the next round leaves out what was pushed, although nobody has answered it yet
    code, out = kdh("select", str(job_dir), "--n", "8", "--seed", "3", "--dry-run", "--out", str(tmp_path / "n.csv"))
    assert code == 0 and {r["item_id"] for r in read_choice(tmp_path / "n.csv")}.isdisjoint(ids)
