"""The README's loop with default options, end to end, against a real Label Studio and the real Whisper model.

A held-out batch of 87 clips the routing code was never tuned on: the 12 bundled LJ Speech clips and 75 made
from them with a fixed seed (speed changes and white noise, made with numpy). Six gold items, two SIMULATED
annotators who answer through Label Studio's API as ``pipelines/demo.py`` simulates them (about 2% WER), a
target of 8% WER. The commands are the README's, with default options.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audio_fixtures import add_noise, ljspeech_rows, write_wav
from kdh_ai.audio import load_audio
from kdh_ai.cli import app
from kdh_ai.job import Job
from kdh_ai.labelstudio.push import read_ls_state
from kdh_ai.routing import current_roles
from kdh_ai.tasks.transcription import TranscriptionTask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: pipelines/
from pipelines.demo import _simulate_annotators  # noqa: E402

pytestmark = pytest.mark.slow


def _batch(folder: Path, n: int = 87, seed: int = 13) -> tuple[Path, dict[str, str]]:
    """87 clips: the 12 bundled LJ clips, then versions of them sped up or slowed down and with noise."""
    rng = np.random.default_rng(seed)
    rows = ljspeech_rows()
    refs, out = {}, []
    for i in range(n):
        row = rows[i % len(rows)]
        audio = load_audio(Path(row["abs_path"]))
        item_id = f"clip{i:03d}"
        if i >= len(rows):
            speed = float(rng.choice([0.85, 0.92, 1.0, 1.1, 1.2]))
            if speed != 1.0:
                grid = np.arange(0, len(audio) - 1, speed)
                audio = np.interp(grid, np.arange(len(audio)), audio).astype(np.float32)
            snr = rng.choice([None, 20.0, 10.0, 5.0, 2.0])
            if snr is not None:
                audio = add_noise(audio, float(snr), seed=i)
        write_wav(folder / f"{item_id}.wav", audio)
        refs[item_id] = row["reference"]
        out.append({"item_id": item_id, "path": str(folder / f"{item_id}.wav"), "reference": row["reference"]})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["item_id", "path", "reference"])
        w.writeheader()
        w.writerows(out)
    return manifest, refs


@pytest.fixture()
def own_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A Label Studio of this test's own, with two fresh annotators: in the full suite the shared session server
    (dozens of projects and the same two annotators used by earlier tests) left this loop's label stream short
    of tasks, which it never is on a fresh server (the cause is not understood yet; see the session note)."""
    from conftest import free_port
    from kdh_ai.labelstudio.client import Connection, LabelStudioClient
    from kdh_ai.labelstudio.server import (ServerOptions, add_annotator, local_connection, login_token,
                                           start_server, stop_server)

    data_dir = tmp_path_factory.mktemp("ls-routing-loop")
    start_server(ServerOptions(data_dir=data_dir, port=free_port(), start_timeout_s=420.0))
    try:
        conn = local_connection(data_dir)
        monkeypatch.setenv("KDH_LS_DATA_DIR", str(data_dir))
        monkeypatch.setenv("KDH_LS_URL", conn.url)
        monkeypatch.setenv("KDH_LS_TOKEN", conn.token)
        annotators = []
        for email in ("sim.one@hub.example", "sim.two@hub.example"):
            add_annotator(conn, email, password="kakuma-2026!", simulated=True)
            token = login_token(conn.url, email, "kakuma-2026!")
            annotators.append((email, "kakuma-2026!", 0, LabelStudioClient(Connection(url=conn.url, token=token))))
        yield annotators
    finally:
        stop_server(data_dir)


def test_readme_loop_with_default_options_routes_a_mix_and_meets_the_target(own_server: list, tmp_path: Path
                                                                              ) -> None:
    ls_annotators = own_server
    runner = CliRunner()

    def kdh(*args: str, ok: tuple[int, ...] = (0,)) -> str:
        res = runner.invoke(app, list(args))
        assert res.exit_code in ok, res.output
        return " ".join(res.output.split())

    audio = tmp_path / "audio"
    audio.mkdir()
    manifest, refs = _batch(audio)
    job = tmp_path / "job"
    kdh("prelabel", "transcribe", "--input", str(manifest), "--out", str(job))
    gold_ids = sorted(refs)[20:26]  # six of the perturbed clips
    gold_csv = tmp_path / "gold.csv"
    with open(gold_csv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "answer"])
        w.writerows([k, refs[k]] for k in gold_ids)

    out = kdh("route", str(job), "--calibration", "0.2", "--gold", str(gold_csv), "--target-wer", "0.08")
    assert "gold answers needed" in out and "6 gold item(s) recorded" in out
    evidence = Job(job).read_manifest()["routing"]["evidence"]
    assert evidence["gold_have"] == 6 and evidence["calibration_have"] >= evidence["calibration_needed"]
    kdh("push", str(job), "--project", "routing loop (default options)", "--no-progress")
    tasks = Job(job).log("tasks").latest_by("item_id")
    assert sum(t["role"] == "gold" for t in tasks.values()) == 6, "every recorded gold item goes out at once"

    assert "Next: wait for" in kdh("status", str(job), "--no-pull")
    pid = int(read_ls_state(Job(job))["project_id"])
    clients = [(email, client) for email, _, _, client in ls_annotators]
    rates = {email: 0.025 for email, _ in clients}  # SIMULATED people, about 2% WER
    durations = {k: 8.0 for k in refs}
    assert _simulate_annotators(pid, refs, durations, clients, seed=1, error_rates=rates) > 0
    kdh("pull", str(job))
    assert "Next: route step 2" in kdh("status", str(job), "--no-pull")
    out = kdh("route", str(job), "--target-wer", "0.08")
    routing = Job(job).read_manifest()["routing"]
    roles = current_roles(Job(job))
    assert routing["reachable"] and routing["error_upper"] <= 0.08
    auto = sum(r == "auto_accept" for r in roles.values())
    assert auto > 0 and routing["human_share"] < 1, f"a mix of model and people: {routing['counts']}"
    assert "Every item is already with people" not in out
    again = kdh("route", str(job), "--target-wer", "0.08")
    assert current_roles(Job(job)) == roles and "people touch" in again

    assert "Next: push" in kdh("status", str(job), "--no-pull")
    kdh("push", str(job), "--no-progress")
    _simulate_annotators(pid, refs, durations, clients, seed=2, error_rates=rates)
    kdh("pull", str(job))
    assert "Next: check the audit" in kdh("status", str(job), "--no-pull")
    audit = kdh("route", str(job), "--check-audit", ok=(0,))
    assert "audit" in audit.lower() and "missed" not in audit
    status = kdh("status", str(job), "--no-pull")
    assert "Next: deliver" in status
    kdh("deliver", str(job), "--out", str(tmp_path / "delivery"))
    rows = [json.loads(x) for x in (tmp_path / "delivery" / "delivered.jsonl").read_text().splitlines()]
    by = {r["item_id"]: r for r in rows}
    assert all(by[k]["provenance"] == "gold" and by[k]["answer"] == refs[k] for k in gold_ids)
    ids = sorted(refs)
    errs = TranscriptionTask().item_errors([by[k]["answer"] or "" for k in ids], [refs[k] for k in ids])
    delivered = errs[:, 0].sum() / errs[:, 1].sum()
    model = TranscriptionTask().item_errors([by[k]["model_answer"] or "" for k in ids], [refs[k] for k in ids])
    model_wer = model[:, 0].sum() / model[:, 1].sum()
    print(f"87 clips: model WER {model_wer:.2%}, routed {routing['counts']}, human share "
          f"{routing['human_share']:.1%}, estimate {routing['estimated_error']:.2%} (bound "
          f"{routing['error_upper']:.2%}), delivered WER {delivered:.2%}")
    assert delivered <= 0.08 and delivered <= routing["error_upper"], (delivered, model_wer)
