"""Crash safety that holds today, kept as tests: `kill -9` at random moments of transcription and
classification (several kills per job; after each, every complete line is valid JSON, no item is answered twice
and at most the last line is torn; the next run finishes the job with exactly one answer per item), and a
second run on a job in use exits 3 while the first goes on.

(One kill of transcription at a fixed point is in test_prelabel_transcription.py; this adds random moments,
several kills, classification, and a real concurrent run.)
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kdh_ai.job import Job
from kdh_ai.samples import ljspeech_dir

pytestmark = pytest.mark.slow

SMS = Path(__file__).parent / "data" / "text" / "sms_spam"


def lines_of(path: Path) -> tuple[list[dict], bytes]:
    """The complete records of a JSONL file and its torn tail (bytes after the last newline)."""
    if not path.exists():
        return [], b""
    data = path.read_bytes()
    head, _, tail = data.rpartition(b"\n")
    records = [json.loads(line) for line in head.split(b"\n") if line] if head else []
    return records, tail


def kill_at_random_moments(cmd: list[str], job_dir: Path, n_items: int, *, kills: int, seed: int,
                           check_concurrent: bool = False) -> list[int]:
    """Run ``cmd`` and SIGKILL it ``kills`` times at seeded random moments (the first anywhere from start-up on,
    the others soon after the run has written new answers); after each kill check the job directory; then run
    it to the end. Returns the number of answers on disk after each kill.

    ``check_concurrent``: while the second run works, start the same command again: it must exit 3."""
    rng = random.Random(seed)
    preds = job_dir / "predictions.jsonl"
    done_after_kill: list[int] = []
    env = {**os.environ, "COLUMNS": "200"}

    def wait_for_new_answers(proc: subprocess.Popen[bytes], before: int) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and len(lines_of(preds)[0]) <= before:
            time.sleep(0.02)

    for k in range(kills):
        before = len(lines_of(preds)[0])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if k == 0:
            time.sleep(rng.uniform(0.3, 2.0))  # loading, ingesting, or already writing
        else:
            wait_for_new_answers(proc, before)
            if k == 1 and check_concurrent:  # a second run while this one works (and holds the job): exit 3
                assert proc.poll() is None, "the run ended before a second one could be tried"
                second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
                assert second.returncode == 3 and "in use by another kdh run" in second.stderr, \
                    second.stderr[-2000:]
            time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        records, tail = lines_of(preds)
        ids = Counter(r["item_id"] for r in records)
        assert not [i for i, c in ids.items() if c > 1], f"kill {k + 1}: an item answered twice"
        assert all(r["status"] in ("ok", "no_speech", "error") for r in records)
        if tail:  # a torn line is only ever the last one, and it is not valid JSON (the next run drops it)
            with pytest.raises(ValueError):
                json.loads(tail)
        done_after_kill.append(len(records))
    final = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    records, tail = lines_of(preds)
    assert tail == b"" and preds.read_bytes().endswith(b"\n")
    ids = Counter(r["item_id"] for r in records)
    assert len(ids) == n_items and set(ids.values()) == {1}, "every item exactly once"
    assert len(Job(job_dir).current_predictions()) == n_items
    manifest = json.loads((job_dir / "job.json").read_text())
    assert manifest["runs"][-1]["skipped"] == done_after_kill[-1]
    return done_after_kill


def test_transcription_survives_several_kill_9(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    wavs = sorted((ljspeech_dir() / "wavs").glob("*.wav"))
    for w in wavs:  # 36 items: the 12 bundled clips, three times
        for copy in "abc":
            shutil.copy(w, batch / f"{copy}_{w.name}")
    job_dir = tmp_path / "job"
    cmd = [sys.executable, "-m", "kdh_ai.cli", "prelabel", "transcribe", "--input", str(batch), "--out",
           str(job_dir), "--no-progress", "--no-pack"]
    done = kill_at_random_moments(cmd, job_dir, 36, kills=3, seed=11, check_concurrent=True)
    assert 0 < done[-1] < 36 and done[1] < done[2], f"the kills should land in the middle: {done}"


def test_classification_survives_several_kill_9(tmp_path: Path) -> None:
    with open(SMS / "texts.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:96]
    manifest = tmp_path / "texts.csv"
    with open(manifest, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["item_id", "text"])
        w.writeheader()
        w.writerows({"item_id": r["item_id"], "text": r["text"]} for r in rows)
    config = tmp_path / "classify.yaml"  # small units of work: many appends to kill in the middle of
    config.write_text("task: classification\noptions:\n  batch_size: 8\n  embed_batch_size: 8\n",
                      encoding="utf-8")
    job_dir = tmp_path / "job"
    cmd = [sys.executable, "-m", "kdh_ai.cli", "prelabel", "classify", "--input", str(manifest), "--labels",
           str(SMS / "labels.yaml"), "--config", str(config), "--out", str(job_dir), "--no-progress"]
    done = kill_at_random_moments(cmd, job_dir, len(rows), kills=3, seed=5)
    assert 0 < done[-1] < len(rows) and done[1] < done[2], f"the kills should land in the middle: {done}"
