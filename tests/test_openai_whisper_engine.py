"""OpenAI Whisper as a second engine: the packaged weights converted offline, the same job flow, parity.

Real model, real speech: the 12 bundled LJ Speech clips (plus bad inputs) transcribed by both engines.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import ljspeech_rows, write_wav
from kdh_ai import quality
from kdh_ai.engines.whisper_checkpoint import openai_whisper_checkpoint, read_ctranslate2
from kdh_ai.job import Job
from kdh_ai.prelabel import run_prelabel
from kdh_ai.registry import resolve_model
from kdh_ai.samples import ljspeech_dir
from kdh_ai.engines import TranscribeOptions, make_transcriber

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_checkpoint_is_converted_verified_and_loads(tmp_path: Path) -> None:
    import torch
    import whisper

    model = resolve_model("whisper-tiny.en")
    out = tmp_path / "tiny.pt"
    path = openai_whisper_checkpoint(model, out=out)
    record = json.loads((tmp_path / "tiny.pt.json").read_text())
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["dims"] == {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
                            "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
                            "n_text_head": 6, "n_text_layer": 4}
    # The fused CTranslate2 projection is split back: value = the last third of the fused rows.
    _, ct2 = read_ctranslate2(model.path / "model.bin")
    fused = ct2["decoder/layer_2/self_attention/linear_0/weight"]
    assert np.array_equal(ckpt["model_state_dict"]["decoder.blocks.2.attn.value.weight"].numpy(), fused[768:])
    assert "decoder.blocks.2.attn.key.bias" not in ckpt["model_state_dict"]
    # whisper's own loader takes it (strict load_state_dict: every weight present, none extra).
    assert whisper.load_model(str(path), device="cpu").dims.n_text_layer == 4
    # Cached: a second call reuses it; a damaged file is detected by its SHA-256 and converted again.
    mtime = path.stat().st_mtime_ns
    assert openai_whisper_checkpoint(model, out=out) == path and path.stat().st_mtime_ns == mtime
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    openai_whisper_checkpoint(model, out=out)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]


def test_cli_convert_and_a_missing_model(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "kdh_ai.cli", "models", "convert", "whisper-tiny.en", "--out",
                        str(tmp_path / "t.pt")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t.pt").stat().st_size > 70e6 and "whisper.load_model" in r.stdout
    r = subprocess.run([sys.executable, "-m", "kdh_ai.cli", "models", "convert", str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "not a model directory" in r.stderr


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The 12 bundled clips plus silence, noise and four kinds of bad file."""
    folder = tmp_path_factory.mktemp("engines")
    files = folder / "files"
    files.mkdir()
    (files / "empty.wav").write_bytes(b"")
    (files / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(400))
    write_wav(files / "silence.wav", np.zeros(16000 * 3, dtype=np.float32))
    write_wav(files / "noise.wav", np.random.default_rng(1).normal(0, 0.05, 16000 * 3).astype(np.float32))
    refs = {}
    manifest = folder / "batch.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "path", "reference"])
        for r in ljspeech_rows():
            w.writerow([r["item_id"], r["abs_path"], r["reference"]])
            refs[r["item_id"]] = r["reference"]
        for name in ("empty.wav", "corrupt.wav", "silence.wav", "noise.wav", "missing.wav"):
            w.writerow([name.split(".")[0], str(files / name), ""])
    return manifest, refs


@pytest.fixture(scope="module")
def openai_job(batch: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``kdh prelabel transcribe --engine openai-whisper``, stopped after 6 items and resumed."""
    manifest, _ = batch
    job_dir = tmp_path_factory.mktemp("ow") / "job"
    cmd = [sys.executable, "-m", "kdh_ai.cli", "prelabel", "transcribe", "--engine", "openai-whisper", "-i",
           str(manifest), "-o", str(job_dir), "--no-progress", "--allow-root", str(ljspeech_dir())]
    first = subprocess.run(cmd + ["--max-items", "6"], capture_output=True, text=True)
    assert first.returncode in (0, 1), first.stderr
    assert len(Job(job_dir).current_predictions()) == 6
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 1, second.stderr  # three bad files: exit code 1, each listed
    assert "missing.wav" in second.stdout + second.stderr
    manifest_json = json.loads((job_dir / "job.json").read_text())
    assert manifest_json["runs"][-1]["skipped"] == 6 and manifest_json["runs"][-1]["processed"] == 11
    return job_dir


def test_both_engines_same_statuses_and_wer_within_half_a_point(batch: tuple[Path, dict[str, str]], openai_job: Path,
                                                                 tmp_path: Path) -> None:
    manifest, refs = batch
    # faster-whisper in float32: openai-whisper runs float32 on CPUs, so both compute the same model.
    opts = TranscribeOptions(compute_type="float32")
    run_prelabel(tmp_path / "fw", manifest, make_prelabeler=lambda: make_transcriber(opts), task="transcription",
                 item_kind="audio", options=dataclasses.asdict(opts), allow_roots=(ljspeech_dir(),))
    fw, ow = Job(tmp_path / "fw").current_predictions(), Job(openai_job).current_predictions()
    assert set(fw) == set(ow) and len(ow) == 17
    assert {k: p.status for k, p in ow.items()} == {k: p.status for k, p in fw.items()}
    assert {k for k, p in ow.items() if p.status == "no_speech"} == {"silence", "noise"}
    assert {k for k, p in ow.items() if p.status == "error"} == {"empty", "corrupt", "missing"}
    assert "empty file (0 bytes)" in ow["empty"].error and "file not found" in ow["missing"].error
    ids = sorted(refs)
    wer_ow = quality.wer([refs[k] for k in ids], [ow[k].text for k in ids])
    wer_fw = quality.wer([refs[k] for k in ids], [fw[k].text for k in ids])
    # openai-whisper's decoding loop is Whisper's own, as faster-whisper's plain `transcribe` loop is: on the same
    # float32 model the two agree within half a point. kdh's default faster-whisper engine decodes each clip in
    # a window of its own with its plausibility check, and is no worse than either (measured: 1.0% against
    # 2.5% on these clips).
    from faster_whisper import WhisperModel

    plain_model = WhisperModel(str(resolve_model("whisper-tiny.en").path), device="cpu", compute_type="float32")
    plain = {k: "".join(s.text for s in plain_model.transcribe(str(ow[k].source), beam_size=5, language="en")[0])
             for k in ids}
    wer_plain = quality.wer([refs[k] for k in ids], [plain[k] for k in ids])
    assert wer_ow < 0.06 and abs(wer_ow - wer_plain) <= 0.005, (wer_ow, wer_plain)
    assert wer_fw <= wer_ow + 0.005, (wer_fw, wer_ow)
    # Same record schema: confidence from word probabilities, segments with words.
    for k in ids:
        p = ow[k]
        assert 0.3 < p.confidence <= 1.0 and p.payload["language"] == "en"
        seg = p.payload["segments"][0]
        assert set(seg) == set(fw[k].payload["segments"][0])
        assert set(seg["words"][0]) == {"word", "start", "end", "probability"}
        assert 0 <= seg["words"][0]["start"] < seg["words"][-1]["end"] <= p.payload["duration_s"] + 0.5
    # The engine is part of the configuration: the two jobs' hashes differ.
    assert json.loads((openai_job / "job.json").read_text())["config_hash"] != \
        json.loads((tmp_path / "fw" / "job.json").read_text())["config_hash"]
    assert json.loads((openai_job / "job.json").read_text())["config"]["engine"] == "openai-whisper"
