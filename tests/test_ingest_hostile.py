"""One bad input never stops or hangs a job (issue 12 §2), and the ingest refuses what makes no sense (issue 14).

Each reproduction runs the real command (``kdh prelabel transcribe`` with Whisper, ``kdh prelabel classify``
with MiniLM) on real files: symbolic-link loops, a named pipe and ``/dev/zero`` (which hang a reader forever),
a CSV field over Python's default limit of 131,072 characters, a quote that is never closed, an empty folder, a
client's README beside the clips, a manifest without ``path``, a CSV separated by semicolons.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdh_ai.cli import app
from kdh_ai.items import InputError, NotRegularFileError, read_items, sha256_file
from kdh_ai.job import Job
from kdh_ai.samples import ljspeech_dir

WAVS = sorted((ljspeech_dir() / "wavs").glob("*.wav"))
SMS_LABELS = Path(__file__).parent / "data" / "text" / "sms_spam" / "labels.yaml"


def kdh_subprocess(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """The real ``kdh`` in a child process, with a deadline (a hang fails the test instead of stalling it)."""
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "kdh_ai.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def kdh(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    return res.exit_code, res.output


def flat(text: str) -> str:
    return " ".join(text.split())


# ---- special files and link loops ------------------------------------------------------------------------------
def test_hashing_refuses_special_files_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    for special in (fifo, Path("/dev/zero")):
        with pytest.raises(NotRegularFileError, match="not a regular file"):
            sha256_file(special)
    assert time.monotonic() - t0 < 5  # opening a FIFO for reading blocks; reading /dev/zero never ends
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    with pytest.raises(OSError):
        sha256_file(loop)


def test_transcribe_survives_loops_pipes_and_devices(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(WAVS[0], batch / "good.wav")
    (batch / "self.wav").symlink_to(batch / "self.wav")
    (batch / "ping.wav").symlink_to(batch / "pong.wav")
    (batch / "pong.wav").symlink_to(batch / "ping.wav")
    os.mkfifo(batch / "pipe.wav")
    (batch / "zero.wav").symlink_to("/dev/zero")  # leads out of the folder
    r = kdh_subprocess("prelabel", "transcribe", "--input", str(batch), "--out", str(tmp_path / "job1"),
                       "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    preds = Job(tmp_path / "job1").current_predictions()
    assert preds["good"].status == "ok" and preds["good"].text
    errors = {k: p.error for k, p in preds.items() if p.status == "error"}
    assert set(errors) == {"self", "ping", "pong", "pipe", "zero"}
    for k in ("self", "ping", "pong"):
        assert "symbolic-link loop" in errors[k]
    assert "named pipe" in errors["pipe"] and "not opened" in errors["pipe"]
    assert "outside the batch" in errors["zero"]

    # a manifest: a loop, a pipe, and /dev/zero in a folder the lead allowed (so only the device check stops it)
    mdir = tmp_path / "m"
    mdir.mkdir()
    shutil.copy(WAVS[1], mdir / "good.wav")
    (mdir / "loop.wav").symlink_to(mdir / "loop.wav")
    os.mkfifo(mdir / "fifo.wav")
    manifest = mdir / "batch.csv"
    manifest.write_text("item_id,path\ngood,good.wav\nloop,loop.wav\nfifo,fifo.wav\nzero,/dev/zero\n"
                        "gone,missing.wav\n", encoding="utf-8")
    r = kdh_subprocess("prelabel", "transcribe", "--input", str(manifest), "--out", str(tmp_path / "job2"),
                       "--allow-root", "/dev", "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    preds = Job(tmp_path / "job2").current_predictions()
    assert preds["good"].status == "ok" and preds["good"].text
    errors = {k: p.error for k, p in preds.items() if p.status == "error"}
    assert set(errors) == {"loop", "fifo", "zero", "gone"}
    assert "batch.csv:3" in errors["loop"] and "symbolic-link loop" in errors["loop"]
    assert "batch.csv:4" in errors["fifo"] and "named pipe" in errors["fifo"]
    assert "batch.csv:5" in errors["zero"] and "character device" in errors["zero"]
    assert "file not found" in errors["gone"]
    assert all(preds[k].sha256 is None for k in errors)  # none of them was read


# ---- CSV that Python's csv module trips on ---------------------------------------------------------------------
def test_classify_a_field_over_the_csv_default_limit(tmp_path: Path) -> None:
    huge = "free prize " * 20_000  # 220,000 characters, over csv's default field limit of 131,072
    manifest = tmp_path / "texts.csv"
    manifest.write_text(f'item_id,text\na,"Are we still on for lunch?"\nhuge,"{huge}"\n'
                        'b,"WINNER!! Claim your free prize now"\n', encoding="utf-8")
    items, _ = read_items(manifest, kind="text")
    assert [len(i.text or "") for i in items][1] == len(huge)
    code, out = kdh("prelabel", "classify", "--input", str(manifest), "--labels", str(SMS_LABELS),
                    "--out", str(tmp_path / "job"), "--no-progress")
    assert code == 1, out  # the huge text is over --max-chars: a per-item error; the rest is done
    preds = Job(tmp_path / "job").current_predictions()
    assert preds["a"].status == "ok" and preds["b"].status == "ok"
    assert preds["huge"].status == "error" and "over max_chars=2000" in preds["huge"].error


def test_an_unterminated_quote_is_an_input_error_naming_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "texts.csv"
    manifest.write_text('item_id,text\na,hello there\nb,"oops I never close this\nc,are you coming\n'
                        "d,see you at five\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"texts.csv:3: a quote"):
        read_items(manifest, kind="text")
    code, out = kdh("prelabel", "classify", "--input", str(manifest), "--labels", str(SMS_LABELS),
                    "--out", str(tmp_path / "job"), "--no-progress")
    assert code == 2 and "texts.csv:3" in flat(out) and "never closed" in flat(out), out
    assert not (tmp_path / "job" / "predictions.jsonl").exists()  # nothing half-done
    # a quote that closes is fine, line breaks inside it included
    manifest.write_text('item_id,text\na,"two\nlines, one text"\nb,"he said ""hi"""\n', encoding="utf-8")
    items, _ = read_items(manifest, kind="text")
    assert [i.text for i in items] == ["two\nlines, one text", 'he said "hi"']


# ---- issue 14: the ingest refuses what makes no sense ------------------------------------------------------------
def test_empty_folder_and_folder_without_audio_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = kdh("prelabel", "transcribe", "--input", str(empty), "--out", str(tmp_path / "j"), "--no-progress")
    assert code == 2 and "holds no audio files" in flat(out) and "empty" in flat(out), out
    (empty / "README.md").write_text("client notes")
    code, out = kdh("prelabel", "transcribe", "--input", str(empty), "--out", str(tmp_path / "j"), "--no-progress")
    assert code == 2 and "README.md" in flat(out), out
    manifest = tmp_path / "none.csv"
    manifest.write_text("item_id,text\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no items"):
        read_items(manifest, kind="text")


def test_a_stray_readme_is_skipped_not_a_failure(tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(WAVS[0], batch / "clip.wav")
    (batch / "README.md").write_text("Clips for ACME, November.\n")
    (batch / "manifest.csv").write_text("item_id,path\nclip,clip.wav\n")
    code, out = kdh("prelabel", "transcribe", "--input", str(batch), "--out", str(tmp_path / "job"), "--no-progress")
    assert code == 0, out  # every audio clip succeeded
    assert "README.md" in out and "manifest.csv" in out and "skipped" in out
    manifest = Job(tmp_path / "job").read_manifest()
    assert manifest["ingest_issues"] == [] and len(manifest["skipped_files"]) == 2


def test_manifest_without_path_column_or_with_semicolons_exit_2(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text("item_id,file\na,a.wav\n", encoding="utf-8")
    code, out = kdh("prelabel", "transcribe", "--input", str(m), "--out", str(tmp_path / "j"), "--no-progress")
    assert code == 2 and "no 'path' column" in flat(out), out
    m.write_text("item_id;path\na;a.wav\n", encoding="utf-8")
    code, out = kdh("prelabel", "transcribe", "--input", str(m), "--out", str(tmp_path / "j"), "--no-progress")
    assert code == 2 and "separated by semicolons" in flat(out), out
    t = tmp_path / "t.csv"
    t.write_text("item_id;text\na;hello\n", encoding="utf-8")
    code, out = kdh("prelabel", "classify", "--input", str(t), "--labels", str(SMS_LABELS), "--out",
                    str(tmp_path / "k"), "--no-progress")
    assert code == 2 and "separated by semicolons" in flat(out), out
    j = tmp_path / "m.jsonl"
    j.write_text('{"item_id": "a", "file": "a.wav"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="no 'path' field"):
        read_items(j, kind="audio")
