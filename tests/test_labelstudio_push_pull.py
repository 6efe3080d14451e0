"""Projects, push, pull and status against a real Label Studio server (one per test session)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LabelStudioTestServer, free_port
from kdh_ai.cli import app
from kdh_ai.items import sha256_file
from kdh_ai.job import Job, JsonlLog
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, LabelStudioUnavailable, RetryPolicy
from kdh_ai.labelstudio.gold import GoldItem, add_gold, gold_from_job, read_gold_manifest
from kdh_ai.labelstudio.project import create_project, data_key
from kdh_ai.labelstudio.pull import annotations_frame, pull
from kdh_ai.labelstudio.push import PushOptions, push
from kdh_ai.labelstudio.status import job_status
from kdh_ai.records import Prediction
from kdh_ai.samples import ljspeech_dir
from kdh_ai.tasks import TaskType, get_task

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

TRANSCRIPTION = get_task("transcription")
WAVS = sorted((ljspeech_dir() / "wavs").glob("*.wav"))
_SHA = {str(w): sha256_file(w) for w in WAVS}  # push links a file only while it has the hash prelabel recorded


class TinyClassification(TaskType):
    """A stand-in Text + Choices task type (the real one lives in kdh_ai.tasks.classification)."""

    name: ClassVar[str] = "classification"
    item_kind: ClassVar[str] = "text"
    from_name: ClassVar[str] = "label"
    to_name: ClassVar[str] = "text"

    def __init__(self, labels: Iterable[str] = ("complaint", "question", "praise")) -> None:
        self.labels = tuple(labels)

    def label_config(self, *, labels: Iterable[str] | None = None) -> str:
        choices = "".join(f'<Choice value="{c}"/>' for c in (labels or self.labels))
        return (f'<View><Text name="text" value="$text"/><Choices name="label" toName="text" choice="single">'
                f"{choices}</Choices></View>")

    def answer_to_result(self, answer: str) -> list[dict[str, Any]]:
        return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [answer]}}]

    def result_to_answer(self, result: list[dict[str, Any]]) -> str | None:
        for r in result or []:
            if r.get("from_name") == "label":
                return (r.get("value", {}).get("choices") or [None])[0]
        return None


def make_job(root: Path, n: int, *, task: str = "transcription", prefix: str = "clip") -> Job:
    """A job directory like `kdh prelabel` leaves it: n items (the bundled LJ Speech clips, cycled) with
    predictions whose confidence spreads over [0.05, 0.95]."""
    job = Job(root)
    items, preds = [], []
    for i in range(n):
        item_id = f"{prefix}-{i:04d}"
        if task == "transcription":
            items.append({"item_id": item_id, "path": str(WAVS[i % len(WAVS)]), "text": None, "reference": None,
                          "metadata": {}, "error": None})
            text = f"model transcript number {i}"
        else:
            items.append({"item_id": item_id, "path": None, "text": f"customer message {i}", "reference": None,
                          "metadata": {}, "error": None})
            text = ("complaint", "question", "praise")[i % 3]
        preds.append(Prediction(item_id=item_id, task=task, text=text, confidence=round(0.05 + 0.9 * i / max(1, n - 1),
                                                                                         4),
                                status="ok", model={"name": "test-model", "version": "1"}, config_hash="cfg1",
                                source=items[-1]["path"],
                                sha256=_SHA[items[-1]["path"]] if task == "transcription" else None).to_dict())
    job.items.append(items)
    job.predictions.append(preds)
    job.update_manifest(task=task, config_hash="cfg1", model={"name": "test-model", "version": "1"})
    return job


def ls_tasks(client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    return list(client.iter_tasks(project_id, fields="all"))


def annotate_next(client: LabelStudioClient, project_id: int, text: str, *, lead_time: float,
                  skip: bool = False) -> dict[str, Any]:
    """Take the next task from the label stream as this annotator and submit (or skip) it."""
    task = client.get_json(f"api/projects/{project_id}/next/", what="next task")
    body = {"result": [] if skip else TRANSCRIPTION.answer_to_result(text), "lead_time": lead_time,
            "was_cancelled": skip}
    ann = client.request("POST", f"api/tasks/{task['id']}/annotations/", what="annotate", json_body=body).json()
    return {"task": task, "annotation": ann}


def files_text(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
                     and p.suffix != ".parquet")


# ---- projects --------------------------------------------------------------------------------------------
def test_projects_from_task_templates(labelstudio_server: LabelStudioTestServer) -> None:
    client = labelstudio_server.client
    audio = create_project(client, TRANSCRIPTION, title="template audio", guidelines="<p>Write what you hear</p>")
    cls = create_project(client, TinyClassification(), title="template text", labels=["spam", "ham"])
    a = client.get_json(f"api/projects/{audio['id']}/", what="read")
    c = client.get_json(f"api/projects/{cls['id']}/", what="read")
    assert a["parsed_label_config"]["transcription"]["type"] == "TextArea"
    assert a["parsed_label_config"]["transcription"]["inputs"][0]["type"] == "Audio"
    assert (a["expert_instruction"], a["show_instruction"]) == ("<p>Write what you hear</p>", True)
    assert (a["maximum_annotations"], a["sampling"]) == (1, "Sequential sampling")
    assert c["parsed_label_config"]["label"]["type"] == "Choices"
    assert c["parsed_label_config"]["label"]["labels"] == ["spam", "ham"]
    assert data_key(TinyClassification()) == "text" and data_key(TRANSCRIPTION) == "audio"


def test_push_text_classification_job(labelstudio_server: LabelStudioTestServer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "cls", 6, task="classification", prefix="msg")
    guide = tmp_path / "guide.md"
    guide.write_text("# Labels\n\n* **complaint**: something went wrong\n", encoding="utf-8")
    res = push(job.root, PushOptions(project="classify texts", control_share=0, overlap_fraction=0,
                                     guidelines=guide), connection=labelstudio_server.connection,
               task_type=TinyClassification())
    assert res.created == {"human": 6} and res.audio_mode == "none"
    project = labelstudio_server.client.get_json(f"api/projects/{res.project_id}/", what="read")
    assert "<strong>complaint</strong>" in project["expert_instruction"]
    preds = job.current_predictions()
    for t in ls_tasks(labelstudio_server.client, res.project_id):
        item_id = t["data"]["item_id"]
        assert t["data"]["text"] == job.current_items()[item_id]["text"]
        assert TinyClassification().result_to_answer(t["predictions"][0]["result"]) == preds[item_id].text

    # a real classification job: the task type and its labels come from the job (config.labels)
    real = make_job(tmp_path / "real-cls", 3, task="classification", prefix="txt")
    (tmp_path / "labels.yaml").write_text("- complaint\n- question\n- praise\n", encoding="utf-8")
    real.update_manifest(config={"labels": str(tmp_path / "labels.yaml")})
    res = push(real.root, PushOptions(project="real classification", gold_rate=0),
               connection=labelstudio_server.connection)
    project = labelstudio_server.client.get_json(f"api/projects/{res.project_id}/", what="read")
    assert project["parsed_label_config"]["label"]["labels"] == ["complaint", "question", "praise"]
    assert res.total_created == 3


# ---- push ------------------------------------------------------------------------------------------------
def test_push_sends_predictions_intact_and_is_idempotent(labelstudio_server: LabelStudioTestServer,
                                                         tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    job = make_job(tmp_path / "job", 30)
    conn = labelstudio_server.connection
    opts = PushOptions(project="idempotent push", control_share=0.3, overlap_fraction=0.0, gold_rate=0, chunk_size=7)
    first = push(job.root, opts, connection=conn)
    assert first.total_created == 30 and first.audio_mode == "local"
    assert 3 <= first.created.get("control", 0) <= 18  # ~30 % of 30, by a stable hash

    tasks = ls_tasks(labelstudio_server.client, first.project_id)
    assert sorted(t["data"]["item_id"] for t in tasks) == sorted(job.current_items())
    preds = job.current_predictions()
    recorded = job.log("tasks").latest_by("item_id")
    for t in tasks:
        item_id = t["data"]["item_id"]
        rec = recorded[item_id]
        assert rec["ls_task_id"] == t["id"]
        if rec["role"] == "control":
            assert t["predictions"] == [] and not rec["prelabeled"]
            continue
        (p,) = t["predictions"]
        assert p["model_version"] == "test-model@1/cfg1"
        assert p["score"] == pytest.approx(preds[item_id].confidence)
        assert TRANSCRIPTION.result_to_answer(p["result"]) == preds[item_id].text
    # the audio is served to a logged-in user, and only to one
    url = conn.url + tasks[0]["data"]["audio"]
    got = httpx.get(url, headers={"Authorization": f"Token {conn.token}"})
    assert got.status_code == 200
    assert got.content == Path(job.current_items()[tasks[0]["data"]["item_id"]]["path"]).read_bytes()
    assert httpx.get(url).status_code == 401

    size = (job.root / "tasks.jsonl").stat().st_size
    again = push(job.root, opts, connection=conn)
    assert (again.total_created, again.already, again.adopted) == (0, 30, 0)
    assert len(ls_tasks(labelstudio_server.client, first.project_id)) == 30
    assert (job.root / "tasks.jsonl").stat().st_size == size

    # new items later: only they go out
    job.items.append([{"item_id": "late-1", "path": str(WAVS[0]), "text": None, "reference": None, "metadata": {},
                        "error": None}])
    job.predictions.append([Prediction(item_id="late-1", task="transcription", text="late", confidence=0.5,
                                        status="ok", model={"name": "test-model", "version": "1"},
                                        config_hash="cfg1", source=None, sha256=None).to_dict()])
    third = push(job.root, opts, connection=conn)
    assert (third.total_created, third.already) == (1, 30)
    # the token is nowhere in the job directory or the logs
    assert conn.token not in files_text(job.root)
    assert conn.token not in caplog.text


def test_push_selects_by_confidence_and_by_routing(labelstudio_server: LabelStudioTestServer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "conf", 10)
    res = push(job.root, PushOptions(project="low confidence only", max_confidence=0.5, gold_rate=0),
               connection=labelstudio_server.connection)
    low = {i for i, p in job.current_predictions().items() if p.confidence < 0.5}
    assert res.total_created == len(low) == 5
    assert set(job.log("tasks").latest_by("item_id")) == low
    assert res.skipped == {"confidence >= 0.5": 5}

    routed = make_job(tmp_path / "routed", 7)
    routed.predictions.append([Prediction.failed(item_id="clip-0005", task="transcription", error="corrupt audio",
                                                 model={"name": "test-model", "version": "1"}, config_hash="cfg1",
                                                 source=None, sha256=None).to_dict()])
    routed.log("routing").append([{"item_id": f"clip-{i:04d}", "role": r} for i, r in enumerate(
        ["auto_accept", "human", "pending", "audit", "calibration", "calibration"])])
    res = push(routed.root, PushOptions(project="routed", gold_rate=0, overlap_fraction=0, control_share=0),
               connection=labelstudio_server.connection)
    recs = routed.log("tasks").latest_by("item_id")
    assert {k: (v["role"], v["prelabeled"]) for k, v in recs.items()} == {
        "clip-0001": ("human", True), "clip-0003": ("human", True), "clip-0004": ("human", True),
        "clip-0005": ("human", False)}  # routed to people although the model failed: no pre-annotation
    assert res.skipped == {"auto_accept": 1, "pending": 1, "not routed yet": 1}


def test_overlap_and_gold_placement(labelstudio_server: LabelStudioTestServer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "gold", 40)
    manifest = tmp_path / "gold.csv"
    rows = ["item_id,answer,path"] + [f"gold-{g},GOLD ANSWER {g} zebra,{WAVS[g]}" for g in range(6)]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    gold, issues = read_gold_manifest(manifest)
    assert issues == [] and len(gold) == 6
    with job:
        assert add_gold(job, gold) == (6, [])
    opts = PushOptions(project="overlap and gold", overlap_fraction=0.25, overlap_k=3, control_share=0.1,
                       gold_rate=0.1, gold_overlap=2, seed=7)
    res = push(job.root, opts, connection=labelstudio_server.connection)
    # G = ceil(0.1 * 40 / (2 * 0.9)) = 3 gold tasks among 40 ordinary ones
    assert res.created.get("gold") == 3 and res.total_created == 43
    assert 3 <= res.created.get("overlap", 0) <= 20

    tasks = sorted(ls_tasks(labelstudio_server.client, res.project_id), key=lambda t: t["id"])
    roles = {k: v["role"] for k, v in job.log("tasks").latest_by("item_id").items()}
    for t in tasks:
        want = {"gold": 2, "overlap": 3}.get(roles[t["data"]["item_id"]], 1)
        assert t["overlap"] == want, t["data"]["item_id"]
    order = [roles[t["data"]["item_id"]] for t in tasks]
    gold_pos = [i for i, r in enumerate(order) if r == "gold"]
    assert len(gold_pos) == 3 and len(set(gold_pos)) == 3
    assert gold_pos != [0, 1, 2] and gold_pos != [40, 41, 42]  # mixed in, not bunched at one end
    # the gold answers never reach Label Studio
    export = labelstudio_server.client.request("GET", f"api/projects/{res.project_id}/export",
                                               what="export", params={"exportType": "JSON",
                                                                      "download_all_tasks": "true"}).text
    assert "zebra" not in export and "GOLD ANSWER" not in export
    # more annotators later: pushing again raises the gold overlap and sends nothing twice
    again = push(job.root, dataclasses.replace(opts, gold_overlap=3), connection=labelstudio_server.connection)
    assert (again.total_created, again.overlap_set) == (0, 3)
    gold_tasks = [t for t in ls_tasks(labelstudio_server.client, res.project_id)
                  if roles[t["data"]["item_id"]] == "gold"]
    assert [t["overlap"] for t in gold_tasks] == [3, 3, 3]


def test_interrupted_push_is_recovered_without_duplicates(labelstudio_server: LabelStudioTestServer,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The import succeeds in Label Studio but its answer is lost before tasks.jsonl is written."""
    job = make_job(tmp_path / "crash", 12)
    real_append = JsonlLog.append
    calls = Counter()

    def lossy(self: JsonlLog, records: Iterable[dict[str, Any]]) -> None:
        if self.path.name == "tasks.jsonl":
            calls["tasks"] += 1
            if calls["tasks"] == 2:  # the second chunk's confirmation is lost
                raise ConnectionResetError("simulated loss of the import's answer")
        real_append(self, records)

    monkeypatch.setattr(JsonlLog, "append", lossy)
    opts = PushOptions(project="crash recovery", chunk_size=5, gold_rate=0, overlap_fraction=0.2, overlap_k=2)
    with pytest.raises(ConnectionResetError):
        push(job.root, opts, connection=labelstudio_server.connection)
    monkeypatch.setattr(JsonlLog, "append", real_append)
    assert len(job.log("tasks").latest_by("item_id")) == 5
    res = push(job.root, opts, connection=labelstudio_server.connection)
    assert res.adopted == 5 and res.total_created == 2 and res.already == 10
    tasks = ls_tasks(labelstudio_server.client, res.project_id)
    ids = [t["data"]["item_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == 12
    recorded = job.log("tasks").latest_by("item_id")
    assert {r["ls_task_id"] for r in recorded.values()} == {t["id"] for t in tasks}
    overlap_items = {k for k, v in recorded.items() if v["role"] == "overlap"}
    assert {t["data"]["item_id"] for t in tasks if t["overlap"] == 2} == overlap_items


def test_server_down_leaves_the_job_untouched(tmp_path: Path) -> None:
    job = make_job(tmp_path / "down", 3)
    before = {p.name: p.read_bytes() for p in job.root.iterdir() if p.is_file()}
    conn = Connection(url=f"http://127.0.0.1:{free_port()}", token="tok-0123456789-abcdef")
    with pytest.raises(LabelStudioUnavailable, match="did not complete") as err:
        push(job.root, PushOptions(project="down"), connection=conn, retry=RetryPolicy(attempts=2, backoff_s=0.1))
    assert "tok-0123456789-abcdef" not in str(err.value)
    after = {p.name: p.read_bytes() for p in job.root.iterdir() if p.is_file()}
    assert after.keys() - {".lock"} == before.keys() - {".lock"}
    assert all(after[k] == before[k] for k in before if k != ".lock")


def test_upload_mode_for_a_remote_server(labelstudio_server: LabelStudioTestServer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "upload", 4)
    remote = Connection(url=labelstudio_server.connection.url, token=labelstudio_server.connection.token)
    with pytest.raises(ValueError, match="--audio upload"):
        push(job.root, PushOptions(project="uploaded", audio="local"), connection=remote)
    res = push(job.root, PushOptions(project="uploaded", gold_rate=0, upload_batch=3), connection=remote)
    assert res.audio_mode == "upload" and res.total_created == 4
    tasks = ls_tasks(labelstudio_server.client, res.project_id)
    items = job.current_items()
    for t in tasks:
        assert t["data"]["audio"].startswith("/data/upload/")
        got = httpx.get(remote.url + t["data"]["audio"], headers={"Authorization": f"Token {remote.token}"})
        assert got.content == Path(items[t["data"]["item_id"]]["path"]).read_bytes()
    uploads = (job.root / "uploads.jsonl").read_bytes()
    assert push(job.root, PushOptions(project="uploaded", gold_rate=0), connection=remote).total_created == 0
    assert (job.root / "uploads.jsonl").read_bytes() == uploads


# ---- pull and status -------------------------------------------------------------------------------------
def test_pull_with_annotator_identity_incremental_edits_and_deletes(
        labelstudio_server: LabelStudioTestServer, ls_annotators, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn = labelstudio_server.connection
    job = make_job(tmp_path / "pull", 8)
    with job:
        add_gold(job, [GoldItem("clip-0007", "known answer", source="test")])
    res = push(job.root, PushOptions(project="pull test", overlap_fraction=0.3, overlap_k=2, control_share=0.25,
                                     gold_rate=0.2, gold_overlap=2, seed=3), connection=conn)
    pid = res.project_id
    (amina, _, amina_id, a_client), (brian, _, brian_id, b_client) = ls_annotators
    done = []
    for i in range(3):
        done.append(("amina", annotate_next(a_client, pid, f"amina says {i}", lead_time=30.0 + i)))
        done.append(("brian", annotate_next(b_client, pid, f"brian says {i}", lead_time=60.0 + i, skip=i == 2)))

    first = pull(job.root, connection=conn)
    assert (first.new, first.changed, first.deleted) == (6, 0, 0)
    anns = job.log("annotations").latest_by("annotation_id")
    recorded = job.log("tasks").latest_by("item_id")
    for who, d in done:
        rec = anns[d["annotation"]["id"]]
        email, uid = (amina, amina_id) if who == "amina" else (brian, brian_id)
        assert (rec["annotator_email"], rec["annotator_id"]) == (email, uid)
        assert rec["item_id"] == d["task"]["data"]["item_id"] and rec["ls_task_id"] == d["task"]["id"]
        assert rec["lead_time_s"] == pytest.approx(d["annotation"]["lead_time"])
        assert rec["skipped"] == bool(d["annotation"]["was_cancelled"])
        assert rec["answer"] == (None if rec["skipped"] else TRANSCRIPTION.result_to_answer(d["annotation"]["result"]))
        item = recorded[rec["item_id"]]
        assert (rec["gold"], rec["prelabeled"], rec["role"]) == (item["role"] == "gold", item["prelabeled"],
                                                                item["role"])
        assert rec["created_at"] and rec["updated_at"]

    # nothing new: nothing written
    size = (job.root / "annotations.jsonl").stat().st_size
    second = pull(job.root, connection=conn)
    assert (second.written, second.unchanged) == (0, 6)
    assert (job.root / "annotations.jsonl").stat().st_size == size

    # an edit and a deletion in Label Studio after the pull are reflected
    edited = done[0][1]["annotation"]["id"]
    a_client.request("PATCH", f"api/annotations/{edited}/", what="edit",
                     json_body={"result": TRANSCRIPTION.answer_to_result("amina corrected"), "lead_time": 45.0})
    removed = done[1][1]["annotation"]["id"]
    b_client.request("DELETE", f"api/annotations/{removed}/", what="delete")
    third = pull(job.root, connection=conn)
    assert (third.new, third.changed, third.deleted, third.unchanged) == (0, 1, 1, 4)
    anns = job.log("annotations").latest_by("annotation_id")
    assert anns[edited]["answer"] == "amina corrected" and anns[edited]["lead_time_s"] == 45.0
    assert anns[removed]["deleted"] is True
    assert len(list(job.log("annotations"))) == 8

    frame = annotations_frame(job.root)
    assert set(frame.columns[:3]) == {"task", "worker", "label"}
    assert len(frame) == 4  # 6 - 1 deleted - 1 skipped
    assert set(frame["worker"]) == {amina, brian}

    st = job_status(job.root)
    assert st.tasks == res.total_created
    by = {s.email: s for s in st.per_annotator}
    assert by[amina].annotations == 3 and by[brian].annotations == 1 and by[brian].skipped == 1
    assert by[amina].hours == pytest.approx((45.0 + 31 + 32) / 3600)
    assert by[brian].hours == pytest.approx((61 + 62) / 3600)  # the deleted one is gone, the skip took time
    assert st.annotations_done + st.remaining == st.annotations_needed
    assert st.rate_per_hour and st.eta is not None
    assert conn.token not in files_text(job.root) and conn.token not in caplog.text


def test_cli_push_pull_status(labelstudio_env: LabelStudioTestServer, ls_annotators, tmp_path: Path) -> None:
    job = make_job(tmp_path / "cli", 5)
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"item_id": "clip-0004", "answer": "the known words"}) + "\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["push", str(job.root), "--project", "cli job", "--gold", str(gold), "--gold-rate",
                              "0.2", "--gold-overlap", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Gold: 1 answers added" in " ".join(res.output.split()) and "new tasks" in res.output
    pid = json.loads((job.root / "labelstudio.json").read_text())["project_id"]
    _, _, _, client = ls_annotators[0]
    annotate_next(client, pid, "typed by amina", lead_time=20.0)
    res = runner.invoke(app, ["pull", str(job.root)])
    assert res.exit_code == 0, res.output
    assert "1 new" in res.output
    res = runner.invoke(app, ["status", str(job.root), "--no-pull", "--json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["tasks"] == 5 and st["per_annotator"][0]["annotations"] == 1
    assert st["per_annotator"][0]["email"] == ls_annotators[0][0]
    res = runner.invoke(app, ["status", str(job.root)])
    assert res.exit_code == 0 and "per annotator" in res.output
    # the server is down: status says so and shows the last pull
    res = runner.invoke(app, ["status", str(job.root)], env={"KDH_LS_URL": f"http://127.0.0.1:{free_port()}"})
    assert res.exit_code == 4, res.output
    assert "Showing the state of the last pull" in " ".join(res.output.split()) and "per annotator" in res.output
    res = runner.invoke(app, ["push", str(job.root), "--project", "another name"])
    assert res.exit_code == 2 and "already pushed to project" in " ".join(res.output.split())
    res = runner.invoke(app, ["pull", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "never pushed" in " ".join(res.output.split())
    assert labelstudio_env.connection.token not in files_text(job.root)


def test_gold_from_an_earlier_job(tmp_path: Path) -> None:
    prev = make_job(tmp_path / "prev", 3)
    prev.log("annotations").append([
        {"item_id": "clip-0000", "annotation_id": 1, "annotator_id": 2, "answer": "a b", "deleted": False,
         "skipped": False, "gold": False},
        {"item_id": "clip-0000", "annotation_id": 2, "annotator_id": 3, "answer": "a  b", "deleted": False,
         "skipped": False, "gold": False},
        {"item_id": "clip-0001", "annotation_id": 3, "annotator_id": 2, "answer": "x", "deleted": False,
         "skipped": False, "gold": False},
        {"item_id": "clip-0001", "annotation_id": 4, "annotator_id": 3, "answer": "y", "deleted": False,
         "skipped": False, "gold": False},
        {"item_id": "clip-0002", "annotation_id": 5, "annotator_id": 2, "answer": "z", "deleted": True,
         "skipped": False, "gold": False},
    ])
    found = {g.item_id: g for g in gold_from_job(prev.root, min_annotators=2)}
    assert set(found) == {"clip-0000"}  # agreed; clip-0001 disagreed; clip-0002 deleted
    assert found["clip-0000"].path == str(WAVS[0])
    new = make_job(tmp_path / "new", 2, prefix="other")
    with new:
        assert add_gold(new, found.values()) == (1, [])
    clash = Job(tmp_path / "clash")  # a new job whose own clip-0000 is another recording
    clash.items.append([{"item_id": "clip-0000", "path": str(WAVS[3]), "text": None, "error": None}])
    clash.update_manifest(task="transcription")
    with clash:
        added, issues = add_gold(clash, found.values())
    assert added == 0 and "other content" in issues[0]

    delivery = tmp_path / "delivery"
    delivery.mkdir()
    (delivery / "delivered.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"item_id": "d1", "answer": "people said this", "provenance": "aggregated", "audio_path": str(WAVS[1])},
        {"item_id": "d2", "answer": "the model said this", "provenance": "model", "audio_path": str(WAVS[2])},
        {"item_id": "d3", "answer": None, "provenance": "none", "audio_path": str(WAVS[3])},
    ]) + "\n", encoding="utf-8")
    delivered = gold_from_job(delivery)
    assert [(g.item_id, g.answer, g.path) for g in delivered] == [("d1", "people said this", str(WAVS[1]))]
