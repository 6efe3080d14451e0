"""No file outside the batch reaches an annotator (issue 12 §1), against the real Label Studio.

A client manifest and a client batch folder name the hub's own files: Label Studio's ``kdh-secrets.json`` (the
admin password and token), its SQLite database (every user's token) and ``/etc/hostname``, by absolute path,
by ``..`` and through symbolic links. The README's loop runs on them with the real commands (``kdh prelabel
transcribe`` with Whisper, ``kdh route --calibration``, ``kdh push``); then an annotator, logged in with a
browser session and with their API token, asks the server for every one of them and gets 403 or 404, and none
of them is linked under the local-files root. A good clip of the same batch is served (200), so the probe is
known to reach files that are served.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LabelStudioTestServer
from kdh_ai.cli import app
from kdh_ai.job import Job
from kdh_ai.labelstudio.push import PushOptions, _safe_name, push
from kdh_ai.labelstudio.accounts import session_post_form as _session_post_form
from kdh_ai.records import Prediction
from kdh_ai.samples import ljspeech_dir

WAVS = sorted((ljspeech_dir() / "wavs").glob("*.wav"))


def _hub_files(server: LabelStudioTestServer) -> dict[str, Path]:
    files = {"secrets": server.data_dir / "kdh-secrets.json", "database": server.data_dir / "label_studio.sqlite3",
             "hostname": Path("/etc/hostname")}
    for name, f in files.items():
        assert f.is_file(), f"{name}: {f} must exist for this test to mean anything"
    return files


def _kdh(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code in (0, 1), res.output  # 1: some items failed, as they should
    return res.output


def _annotator_probe(server: LabelStudioTestServer, email: str, password: str, token: str
                     ) -> list[tuple[str, httpx.Client]]:
    """Two logged-in annotator clients: a browser session (cookie) and the API token."""
    base = server.connection.url.rstrip("/")
    session = httpx.Client(base_url=base, timeout=30.0)
    r = _session_post_form(session, f"{base}/user/login/", {"email": email, "password": password})
    assert r.status_code in (301, 302, 303), "the annotator could not log in"
    api = httpx.Client(base_url=base, timeout=30.0, headers={"Authorization": f"Token {token}"})
    return [("session", session), ("token", api)]


def test_hub_files_named_by_a_client_batch_are_never_served(labelstudio_env: LabelStudioTestServer, ls_annotators,
                                                            tmp_path: Path) -> None:
    server = labelstudio_env
    hub = _hub_files(server)
    hub_real = {os.path.realpath(p) for p in hub.values()}

    # a batch folder: two real clips and a symlink (named like a clip) to each hub file
    folder = tmp_path / "folder_batch"
    folder.mkdir()
    shutil.copy(WAVS[0], folder / "good1.wav")
    shutil.copy(WAVS[1], folder / "good2.wav")
    for name, target in hub.items():
        (folder / f"link_{name}.wav").symlink_to(target)
    # a manifest: absolute paths, '..' paths and a symlink inside the manifest's own folder
    mdir = tmp_path / "client" / "delivery"
    mdir.mkdir(parents=True)
    shutil.copy(WAVS[2], mdir / "good.wav")
    (mdir / "inside_link.wav").symlink_to(hub["secrets"])
    up = "../" * (len(mdir.resolve().parts) + 2)
    rows = ["item_id,path", "good,good.wav", f"abs_secrets,{hub['secrets']}", f"abs_database,{hub['database']}",
            f"dotdot_hostname,{up}etc/hostname", "link_secrets,inside_link.wav"]
    manifest = mdir / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")

    jobs = {"folder": (tmp_path / "job_folder", folder), "manifest": (tmp_path / "job_manifest", manifest)}
    leak_ids = {"folder": [f"link_{n}" for n in hub], "manifest": [r.split(",")[0] for r in rows[2:]]}
    good_ids = {"folder": ["good1", "good2"], "manifest": ["good"]}
    for key, (job_dir, source) in jobs.items():
        out = _kdh("prelabel", "transcribe", "--input", str(source), "--out", str(job_dir), "--no-progress")
        assert "Traceback" not in out
        preds = Job(job_dir).current_predictions()
        assert {k for k, p in preds.items() if p.status == "error"} == set(leak_ids[key]), out
        assert all(preds[g].status == "ok" and preds[g].sha256 for g in good_ids[key])
        _kdh("route", str(job_dir), "--calibration", "0.5")
        out = _kdh("push", str(job_dir), "--project", f"leak probe {key}", "--no-progress", "--gold-rate", "0")
        assert "Traceback" not in out

    files_root = Path(server.connection.files_root)
    admin = server.client
    email, password, _, ann_client = ls_annotators[0]
    probes = _annotator_probe(server, email, password, ann_client.connection.token)
    try:
        for key, (job_dir, _) in jobs.items():
            pid = json.loads((job_dir / "labelstudio.json").read_text())["project_id"]
            tasks = {t["data"]["item_id"]: t for t in admin.iter_tasks(pid, fields="all")}
            urls = []
            for k in leak_ids[key]:  # every name the item's file could have been linked under
                for suffix in (".json", ".sqlite3", ".wav", ""):
                    urls.append(f"/data/local-files/?d=project-{pid}/{_safe_name(k, suffix)}")
            project_dir = files_root / f"project-{pid}"
            urls += [f"/data/local-files/?d=project-{pid}/{f.name}" for f in project_dir.iterdir()
                     if os.path.realpath(f) in hub_real]
            good_urls = [tasks[g]["data"]["audio"] for g in good_ids[key]]
            assert all(u.startswith("/data/local-files/") for u in good_urls)
            for how, client in probes:
                for url in good_urls:  # the probe reaches served files...
                    r = client.get(url)
                    assert r.status_code == 200 and r.content[:4] == b"RIFF", (how, url, r.status_code)
                for url in urls:  # ...and gets none of the hub's
                    r = client.get(url)
                    assert r.status_code in (403, 404), (how, url, r.status_code)
                    assert b"token" not in r.content and b"admin_password" not in r.content
            # the model's failures go to people as a task that describes the error, without any file
            assert set(leak_ids[key]) <= set(tasks)
            for k in leak_ids[key]:
                assert tasks[k]["data"]["audio"] == ""
                note = tasks[k]["data"]["kdh_error"]
                assert "did not send this item's file" in note and str(tmp_path) not in note
    finally:
        for _, client in probes:
            client.close()
    for p in files_root.rglob("*"):  # no link of the files root leads to a hub file
        assert os.path.realpath(p) not in hub_real, f"{p} leads to a hub file"

    for key, (job_dir, _) in jobs.items():  # the refusal names the row and the fix; the file was never read
        preds = Job(job_dir).current_predictions()
        for k in leak_ids[key]:
            assert preds[k].sha256 is None and "outside the batch" in preds[k].error
            assert "--allow-root" in preds[k].error


def test_push_sends_a_file_only_while_it_has_the_hash_the_model_decoded(labelstudio_server: LabelStudioTestServer,
                                                                        tmp_path: Path) -> None:
    """A file swapped after pre-labeling (a clip replaced by the secrets file, or by other audio) is not sent."""
    batch = tmp_path / "batch"
    batch.mkdir()
    job = Job(tmp_path / "job")
    items, preds = [], []
    for i in range(3):
        f = batch / f"c{i}.wav"
        shutil.copy(WAVS[i], f)
        from kdh_ai.items import sha256_file

        items.append({"item_id": f"c{i}", "path": str(f), "text": None, "reference": None, "metadata": {},
                      "error": None})
        preds.append(Prediction(item_id=f"c{i}", task="transcription", text="words", confidence=0.5, status="ok",
                                model={"name": "m", "version": "1"}, config_hash="h", source=str(f),
                                sha256=sha256_file(f)).to_dict())
    job.items.append(items)
    job.predictions.append(preds)
    job.update_manifest(task="transcription", config_hash="h", model={"name": "m", "version": "1"})
    (batch / "c1.wav").unlink()
    (batch / "c1.wav").symlink_to(labelstudio_server.data_dir / "kdh-secrets.json")
    shutil.copy(WAVS[5], batch / "c2.wav")
    res = push(job.root, PushOptions(project="hash check", gold_rate=0, overlap_fraction=0, control_share=0),
               connection=labelstudio_server.connection)
    assert res.total_created == 1
    assert set(job.log("tasks").latest_by("item_id")) == {"c0"}
    assert any("c1" in i and "changed since it was pre-labeled" in i for i in res.issues)
    assert any("c2" in i and "changed since it was pre-labeled" in i for i in res.issues)
    folder = Path(labelstudio_server.connection.files_root) / f"project-{res.project_id}"
    assert [os.path.realpath(p) for p in folder.iterdir()] == [str((batch / "c0.wav").resolve())]


@pytest.mark.parametrize("allowed", [False, True])
def test_allow_root_lets_a_lead_name_a_trusted_folder(tmp_path: Path, allowed: bool) -> None:
    """--allow-root opens one folder, and only that one (the refusal is the default)."""
    from kdh_ai.items import read_items

    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(WAVS[0], store / "a.wav")
    mdir = tmp_path / "m"
    mdir.mkdir()
    manifest = mdir / "batch.csv"
    manifest.write_text(f"item_id,path\na,{store / 'a.wav'}\nb,/etc/hostname\n", encoding="utf-8")
    items, _ = read_items(manifest, kind="audio", allow_roots=[store] if allowed else [])
    by = {i.item_id: i for i in items}
    assert (by["a"].error is None) == allowed
    assert by["b"].error and "outside the batch" in by["b"].error


def test_pipeline_yaml_names_allowed_roots(tmp_path: Path) -> None:
    """``input: {allow_roots: [...]}`` in a pipeline file, relative to the file's folder; a typo is refused."""
    from kdh_ai.config import ConfigError, load_input_config, load_pipeline

    (tmp_path / "store").mkdir()
    cfg = tmp_path / "pipe.yaml"
    cfg.write_text("task: transcription\ninput:\n  allow_roots: [store]\noptions:\n  beam_size: 1\n")
    assert load_input_config(cfg).allow_roots == [str(tmp_path / "store")]
    assert load_pipeline(cfg)[0] == "transcription"
    cfg.write_text("task: transcription\ninput:\n  allow_root: [store]\n")
    with pytest.raises(ConfigError, match="allow_root"):
        load_input_config(cfg)
