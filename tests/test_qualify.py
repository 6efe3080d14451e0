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
