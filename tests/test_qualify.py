"""Qualification against the real Label Studio: a trainee who answers right passes, one who does not fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdh_ai.qualify import TraineeLedger, score_qualification, start_qualification
from kdh_ai.tasks import get_task

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def _answer_test(client, project_id: int, known: dict[str, str], task: str, wrong: bool) -> int:
    """SIMULATED trainee: answer every item of the test through Label Studio's API, as the browser would."""
    task_type = get_task(task)
    n = 0
    for t in client.iter_tasks(project_id, fields="all"):
        item_id = t["data"]["kdh_item_id"]
        if task == "classification":
            answer = ("ham" if known[item_id] == "spam" else "spam") if wrong else known[item_id]
        else:
            answer = "something else entirely" if wrong else known[item_id].lower().rstrip(".")
        client.request("POST", f"api/tasks/{t['id']}/annotations/", what="answer a test item",
                       json_body={"result": task_type.answer_to_result(answer), "lead_time": 12.0})
        n += 1
    return n


def test_qualification_pass_and_fail_recorded_in_the_ledger(labelstudio_env, ls_annotators, tmp_path: Path) -> None:
    conn = labelstudio_env.connection
    ledger = TraineeLedger(tmp_path / "trainees.jsonl")
    (good_email, _, _, good_client), (bad_email, _, _, bad_client) = ls_annotators[:2]

    good = start_qualification(good_email, task="classification", size=8, seed=1, connection=conn, ledger=ledger)
    bad = start_qualification(bad_email, task="classification", size=8, seed=2, connection=conn, ledger=ledger)
    # the known answers never go into Label Studio: no task carries them, and no task is pre-annotated
    for rec in (good, bad):
        tasks = list(labelstudio_env.client.iter_tasks(rec.project_id, fields="all"))
        assert len(tasks) == 8 and not any(t.get("predictions") for t in tasks)
        assert all(set(t["data"]) == {"text", "kdh_item_id", "kdh_test_id"} for t in tasks)

    # before anyone answers: not scored as pass or fail
    early = score_qualification(good_email, task="classification", connection=conn, ledger=ledger)
    assert early.record.passed is None and early.record.answered == 0
    assert not ledger.is_qualified(good_email, "classification")

    assert _answer_test(good_client, good.project_id, good.items, "classification", wrong=False) == 8
    assert _answer_test(bad_client, bad.project_id, bad.items, "classification", wrong=True) == 8
    # the other trainee also answers the good trainee's test wrongly: only the named trainee's answers count
    _answer_test(bad_client, good.project_id, good.items, "classification", wrong=True)

    r_good = score_qualification(good_email, task="classification", connection=conn, ledger=ledger)
    r_bad = score_qualification(bad_email, task="classification", connection=conn, ledger=ledger)
    assert r_good.record.passed is True and r_good.record.score == 1.0 and r_good.record.low < 1.0
    assert r_bad.record.passed is False and r_bad.record.score == 0.0 and r_bad.record.high > 0.0
    assert ledger.is_qualified(good_email, "classification")
    assert not ledger.is_qualified(bad_email, "classification")
    assert not ledger.is_qualified(good_email, "transcription")  # qualification is per task type


def test_transcription_qualification_through_the_cli(labelstudio_env, ls_annotators, tmp_path: Path) -> None:
    """`kdh qualify` puts real clips (uploaded audio) in a test, and `--score` records the result."""
    env = dict(os.environ, KDH_HUB_DIR=str(tmp_path))
    email, _, _, client = ls_annotators[0]
    kdh = [sys.executable, "-m", "kdh_ai.cli"]
    start = subprocess.run(kdh + ["qualify", email, "--task", "transcription", "--size", "2", "--seed", "3"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert start.returncode == 0, start.stderr
    ledger = TraineeLedger(tmp_path / "trainees.jsonl")
    test = ledger.latest_test(email, "transcription")
    assert test is not None and len(test.items) == 2 and test.url in start.stdout.replace("\n", "")
    tasks = list(labelstudio_env.client.iter_tasks(test.project_id, fields="all"))
    assert all(t["data"]["audio"].startswith("/data/upload/") for t in tasks)
    _answer_test(client, test.project_id, test.items, "transcription", wrong=False)
    scored = subprocess.run(kdh + ["qualify", email, "--task", "transcription", "--score"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert "PASSED" in scored.stdout and "WER 0.0%" in scored.stdout
    assert ledger.is_qualified(email, "transcription")
    bad = subprocess.run(kdh + ["qualify", email, "--task", "transcription", "--score", "--pass-mark", "5"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "(0, 1)" in " ".join(bad.stderr.split())


def test_pull_keeps_unqualified_answers_apart_from_delivery_and_report(
        labelstudio_env, ls_annotators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Qualification enforced at pull: a qualified and an unqualified annotator answer the same job; only the
    qualified one's answers reach annotations, delivery and report; status names who is held and how to
    qualify them; once they pass, the next pull takes their answers in."""
    import json

    from typer.testing import CliRunner

    from kdh_ai.cli import app
    from kdh_ai.deliver import deliver
    from kdh_ai.labelstudio.pull import annotations_frame, pull
    from kdh_ai.labelstudio.push import PushOptions, push
    from kdh_ai.qualify import QualificationRecord, read_held
    from kdh_ai.report.metrics import job_metrics
    from test_labelstudio_push_pull import annotate_next, make_job

    conn = labelstudio_env.connection
    (amina, _, _, a_client), (brian, _, _, b_client) = ls_annotators[:2]
    job = make_job(tmp_path / "job", 4)
    res = push(job.root, PushOptions(project="qualification at pull", overlap_fraction=0.0, control_share=0.0,
                                     gold_rate=0.0, seed=1), connection=conn)
    for i in range(2):
        annotate_next(a_client, res.project_id, f"amina typed {i}", lead_time=10.0)
        annotate_next(b_client, res.project_id, f"brian typed {i}", lead_time=10.0)

    # no ledger on this hub: not enforced, and status says so in words (nobody's work is dropped)
    monkeypatch.setenv("KDH_HUB_DIR", str(tmp_path / "hub-without-ledger"))
    runner = CliRunner()
    out = runner.invoke(app, ["status", str(job.root)])
    assert out.exit_code == 0, out.output
    assert "qualification is not enforced" in " ".join(out.output.split()).lower()
    assert len(annotations_frame(job.root)) == 4
    # the same annotations are in annotations.jsonl already: start a fresh job for the enforced case
    job = make_job(tmp_path / "job2", 4, prefix="two")
    res = push(job.root, PushOptions(project="qualification at pull 2", overlap_fraction=0.0, control_share=0.0,
                                     gold_rate=0.0, seed=1), connection=conn)
    for i in range(2):
        annotate_next(a_client, res.project_id, f"amina typed {i}", lead_time=10.0)
        annotate_next(b_client, res.project_id, f"brian typed {i}", lead_time=10.0)

    hub = tmp_path / "hub"
    monkeypatch.setenv("KDH_HUB_DIR", str(hub))
    ledger = TraineeLedger(hub / "trainees.jsonl")
    ledger.record(QualificationRecord(email=amina, task="transcription", test_id="t-a", event="scored", passed=True))
    ledger.record(QualificationRecord(email=brian, task="transcription", test_id="t-b", event="scored", passed=False))
    first = pull(job.root, connection=conn)
    assert (first.new, first.held) == (2, 2)
    frame = annotations_frame(job.root)
    assert set(frame["worker"]) == {amina}
    held = read_held(job.root)
    assert held.enforced and held.per_annotator == {brian: 2}
    again = pull(job.root, connection=conn)  # held answers are re-read, never counted as new
    assert (again.new, again.held, again.unchanged) == (0, 2, 2)

    out = runner.invoke(app, ["status", str(job.root)])
    text = " ".join(out.output.split())
    assert out.exit_code == 0, out.output
    assert f"{brian} (2)" in text and "not delivered" in text and "kdh qualify EMAIL --task transcription" in text
    out = runner.invoke(app, ["status", str(job.root), "--no-pull", "--json"])
    assert json.loads(out.output)["qualification"]["per_annotator"] == {brian: 2}

    delivered = deliver(job.root, tmp_path / "delivery")
    rows = [json.loads(x) for x in (delivered.out_dir / "delivered.jsonl").read_text().splitlines()]
    assert not any("brian" in (r.get("answer") or "") or brian in (r.get("annotators") or []) for r in rows)
    assert sum(1 for r in rows if amina in (r.get("annotators") or [])) == 2
    metrics = job_metrics(job)
    assert {a["annotator"] for a in metrics["annotators"]} == {amina}
    assert brian not in json.dumps(metrics, default=str)

    # brian passes a later test: the next pull takes his answers in
    ledger.record(QualificationRecord(email=brian, task="transcription", test_id="t-b2", event="scored",
                                      passed=True))
    later = pull(job.root, connection=conn)
    assert (later.new, later.held) == (2, 0)
    assert set(annotations_frame(job.root)["worker"]) == {amina, brian}
    assert read_held(job.root).total == 0

    # an explicit switch: KDH_QUALIFICATION=off is said in status too
    monkeypatch.setenv("KDH_QUALIFICATION", "off")
    out = runner.invoke(app, ["status", str(job.root)])
    assert "KDH_QUALIFICATION=off" in " ".join(out.output.split())
