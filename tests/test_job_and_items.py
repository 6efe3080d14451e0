"""The job directory's append-only logs, locking, and reading batches (fast, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdh_ai.items import InputError, read_items
from kdh_ai.job import Job, JobLockedError, JsonlLog
from kdh_ai.records import Prediction


def test_torn_last_line_is_skipped_then_cut_before_the_next_append(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "p.jsonl")
    log.append([{"item_id": "a", "v": 1}])
    with open(log.path, "ab") as fh:  # what a writer killed mid-write leaves behind
        fh.write(b'{"item_id": "b", "v"')
    assert [r["item_id"] for r in log] == ["a"]
    JsonlLog(log.path).append([{"item_id": "b", "v": 2}])
    raw = log.path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 2
    assert [json.loads(x)["item_id"] for x in raw.splitlines()] == ["a", "b"]


def test_latest_record_wins_per_config(tmp_path: Path) -> None:
    job = Job(tmp_path / "job")
    common = dict(task="transcription", status="ok", model={"name": "m", "version": "1"}, source=None, sha256="x")
    job.predictions.append([
        Prediction(item_id="a", text="old", confidence=0.5, config_hash="h1", **common).to_dict(),
        Prediction(item_id="a", text="other config", confidence=0.5, config_hash="h2", **common).to_dict(),
        Prediction(item_id="a", text="new", confidence=0.7, config_hash="h1", **common).to_dict(),
    ])
    job.update_manifest(config_hash="h1")
    assert job.current_predictions()["a"].text == "new"
    assert job.current_predictions("h2")["a"].text == "other config"


def test_prediction_validates_status_and_confidence() -> None:
    base = dict(item_id="a", task="t", text="", model={}, config_hash="h", source=None, sha256=None)
    with pytest.raises(ValueError, match="status must be one of"):
        Prediction(status="done", confidence=0.5, **base)
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]"):
        Prediction(status="ok", confidence=1.5, **base)


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = Job(tmp_path / "job").lock()
    with pytest.raises(JobLockedError, match="pid"):
        Job(tmp_path / "job").lock()
    first.unlock()
    Job(tmp_path / "job").lock().unlock()


def test_read_items_from_jsonl_and_directory(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"")
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / "y.FLAC").write_bytes(b"")
    (tmp_path / "a" / "readme.txt").write_text("hi")
    items, issues = read_items(tmp_path / "a", kind="audio")
    assert [i.item_id for i in items] == ["sub/y", "x"]
    assert len(issues) == 1 and "readme.txt" in str(issues[0]) and "not an audio file extension" in str(issues[0])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"item_id": "1", "path": "a/x.wav", "reference": "hello", "speaker": "s1"}\n'
                        "not json\n"
                        '{"item_id": "2"}\n')
    items, issues = read_items(manifest, kind="audio")
    assert items[0].path == str((tmp_path / "a" / "x.wav").resolve()) and items[0].metadata == {"speaker": "s1"}
    assert items[1].error and "no 'path'" in items[1].error
    assert len(issues) == 1 and "m.jsonl:2" in str(issues[0])


def test_read_items_refuses_bad_batches(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_items(tmp_path / "nope.csv", kind="audio")
    (tmp_path / "m.csv").write_text("id,path\n1,a.wav\n")
    with pytest.raises(InputError, match="no 'item_id' column"):
        read_items(tmp_path / "m.csv", kind="audio")
    (tmp_path / "m.xlsx").write_text("")
    with pytest.raises(InputError, match="unknown manifest format"):
        read_items(tmp_path / "m.xlsx", kind="audio")
    with pytest.raises(ValueError, match="kind must be"):
        read_items(tmp_path / "m.csv", kind="video")
