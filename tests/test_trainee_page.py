"""A trainee's progress page across two jobs (annotation records as `kdh pull` writes them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from kdh_ai.job import Job
from kdh_ai.qualify import QualificationRecord, TraineeLedger
from kdh_ai.report.trainee import trainee_progress, write_trainee_page
from kdh_ai.samples import ljspeech_manifest

TRAINEE, OTHER = "amina@hub.example", "brian@hub.example"


def _job(root: Path, name: str, answers: dict[str, str], day: str) -> Path:
    """A pulled transcription job: the bundled clips, all gold, answered by the trainee and a colleague."""
    batch = pd.read_csv(ljspeech_manifest())
    job = Job(root / name)
    job.root.mkdir(parents=True)
    job.update_manifest(task="transcription")
    job.items.append({"item_id": r.item_id, "path": str(ljspeech_manifest().parent / r.path), "text": None,
                      "reference": r.reference, "metadata": {}, "error": None} for r in batch.itertuples())
    job.log("gold").append({"item_id": r.item_id, "answer": r.reference} for r in batch.itertuples())
    recs, aid = [], 0
    for who, lead in ((TRAINEE, 30.0), (OTHER, 20.0)):
        for r in batch.itertuples():
            if r.item_id not in answers:
                continue
            aid += 1
            recs.append({"item_id": r.item_id, "task": "transcription", "annotation_id": aid,
                         "annotator_email": who, "answer": answers[r.item_id] if who == TRAINEE else r.reference,
                         "lead_time_s": lead, "created_at": f"{day}T10:00:{aid:02d}Z", "gold": True,
                         "role": "gold", "skipped": False, "deleted": False})
    job.log("annotations").append(recs)
    return job.root


def test_progress_across_two_jobs(tmp_path: Path) -> None:
    batch = pd.read_csv(ljspeech_manifest())
    refs = dict(zip(batch.item_id, batch.reference))
    first = {k: refs[k] for k in list(refs)[:4]}
    first["LJ001-0002"] = "in being modern"                       # a word left out
    first["LJ001-0004"] = refs["LJ001-0004"].replace("block", "black")  # a wrong word
    second = {k: refs[k] for k in list(refs)[:12]}                # later: every clip right
    j1 = _job(tmp_path, "client-a-2026-10", first, "2026-10-01")
    j2 = _job(tmp_path, "client-b-2026-11", second, "2026-11-01")
    prog = trainee_progress(TRAINEE, [j2, j1])
    assert [p.job for p in prog] == ["client-a-2026-10", "client-b-2026-11"]      # oldest first
    assert prog[0].gold_n == 4 and prog[0].rate > 0 and prog[0].low >= 0 and prog[0].high <= 1
    assert prog[1].gold_n == 12 and prog[1].rate == 0.0 and prog[1].high > 0     # an interval, not certainty
    assert prog[0].speed_ratio == 1.2                   # 30 s against the team median (of 30 s and 20 s)
    assert {e["kind"] for e in prog[0].errors} == {"deletion", "substitution"}

    ledger = TraineeLedger(tmp_path / "trainees.jsonl")
    ledger.record(QualificationRecord(email=TRAINEE, task="transcription", test_id="q1", event="scored",
                                      passed=True, score=0.04, low=0.01, high=0.12, metric="wer", pass_mark=0.1,
                                      answered=10, size=10))
    page = write_trainee_page(TRAINEE, [j1, j2], tmp_path / "p.html", ledger=ledger).read_text()
    assert "too few gold answers to judge (4)" in page          # job 1: 4 gold answers
    assert "too few gold answers to judge (12)" not in page
    assert "Qualification: <b>passed" in page
    assert "<del" in page and "comparatively" in page           # the sentence with the difference highlighted
    assert page.count("data:audio/wav;base64,") >= 2            # a player at each error
    assert "notebook 01" in page.lower()                        # a next lesson

    # the CLI, and a clear error for a folder that is not a job
    kdh = [sys.executable, "-m", "kdh_ai.cli", "trainee", TRAINEE, "--job", str(j1), "--job", str(j2),
           "--out", str(tmp_path / "cli.html")]
    assert subprocess.run(kdh, capture_output=True, text=True, timeout=120).returncode == 0
    bad = subprocess.run(kdh[:5] + ["--job", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not a job directory" in " ".join(bad.stderr.split())  # rich wraps lines


def test_plot_axis_never_goes_below_zero(tmp_path: Path) -> None:
    """A 0% WER with a flat result must not draw an axis that goes negative (the old feedback page did)."""
    from kdh_ai.report import trainee as mod

    batch = pd.read_csv(ljspeech_manifest())
    perfect = dict(zip(batch.item_id, batch.reference))
    prog = trainee_progress(TRAINEE, [_job(tmp_path, "j1", perfect, "2026-10-01"),
                                      _job(tmp_path, "j2", perfect, "2026-11-01")])
    figs = []
    orig = mod._png

    def keep(fig):
        figs.append(fig.axes[0].get_ylim())
        return orig(fig)

    mod._png = keep
    try:
        mod._plot(prog, "WER")
    finally:
        mod._png = orig
    (lo, hi), = figs
    assert lo == 0 and hi > 0


def test_one_job_feedback_page_has_the_same_fixes(tmp_path: Path) -> None:
    """The one-job feedback page: the sentence with the difference, audio at the error, the paid-work bar, and a
    too-few-gold warning."""
    from kdh_ai.report import write_feedback

    batch = pd.read_csv(ljspeech_manifest())
    refs = dict(zip(batch.item_id, batch.reference))
    answers = {k: refs[k] for k in list(refs)[:5]}
    answers["LJ001-0004"] = refs["LJ001-0004"].replace("block", "black")
    job = _job(tmp_path, "j", answers, "2026-10-01")
    page = write_feedback(job, TRAINEE, tmp_path / "fb.html").read_text()
    assert '<del title="said">block</del> <ins title="you wrote">black</ins>' in page
    assert "data:audio/wav;base64," in page
    assert "at most 10%" in page and "too few to judge" in page
