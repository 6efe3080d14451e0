"""Text classification through the whole flow, against the real Label Studio server.

pre-label (zero-shot) -> route step 1 -> push (Text + Choices, pre-annotations) -> two annotators answer in
Label Studio through its API -> pull -> retrain on their labels -> route to a target accuracy -> quality and
delivery. The annotators are driven by the test (simulated people); everything else is real.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdh_ai.cli import app
from kdh_ai.deliver import deliver
from kdh_ai.job import Job
from kdh_ai.labelstudio.push import PushOptions, push, read_ls_state
from kdh_ai.labelstudio.pull import pull
from kdh_ai.report import job_metrics
from kdh_ai.routing import current_roles, plan_calibration, route
from kdh_ai.tasks.classification import ClassificationTask

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio]

DATA = Path(__file__).parent / "data" / "text" / "sms_spam"


def test_classification_loop_with_label_studio(labelstudio_server, ls_annotators, tmp_path: Path) -> None:
    with open(DATA / "texts.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:60]
    truth = {r["item_id"]: r["reference"] for r in rows}
    manifest = tmp_path / "texts.csv"
    with open(manifest, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["item_id", "text"])  # the client sends no labels
        w.writeheader()
        w.writerows({"item_id": r["item_id"], "text": r["text"]} for r in rows)
    job_dir = tmp_path / "job"
    runner = CliRunner()
    res = runner.invoke(app, ["prelabel", "classify", "-i", str(manifest), "-l", str(DATA / "labels.yaml"),
                              "-o", str(job_dir), "--no-progress"])
    assert res.exit_code == 0, res.output
    job = Job(job_dir)
    gold_ids = sorted(truth)[:4]
    job.log("gold").append({"item_id": k, "answer": truth[k], "source": "test"} for k in gold_ids)
    plan_calibration(job_dir, size=30, seed=0)

    conn = labelstudio_server.connection
    result = push(job_dir, PushOptions(project="sms-loop", labels=("ham", "spam"), overlap_fraction=0.3,
                                       control_share=0.0, gold_rate=0.1), connection=conn)
    assert result.created.get("gold", 0) >= 1  # gold mixed in at the rate asked
    assert result.total_created == 30 + result.created["gold"]  # the calibration slice; pending items wait
    pid = int(read_ls_state(job)["project_id"])
    task_type = ClassificationTask()
    answered = 0
    for i, (email, _pw, _uid, client) in enumerate(ls_annotators):
        while True:
            try:
                task = client.get_json(f"api/projects/{pid}/next/", what="next task")
            except Exception:  # 404: nothing left for this annotator
                break
            item_id = task["data"]["item_id"]
            assert task["predictions"], "tasks arrive with the model's pre-annotation"
            answer = truth[item_id] if not (i == 1 and answered % 7 == 0) else (
                "spam" if truth[item_id] == "ham" else "ham")  # the second annotator errs now and then
            client.request("POST", f"api/tasks/{task['id']}/annotations/", what="annotate",
                           json_body={"result": task_type.answer_to_result(answer), "lead_time": 4.0})
            answered += 1
    assert answered >= 32
    pulled = pull(job_dir, connection=conn)
    assert pulled.new == answered
    emails = {r["annotator_email"] for r in job.log("annotations")}
    assert emails == {e for e, *_ in ls_annotators}

    # Retrain on the people's labels: the head changes, and so does the configuration.
    before = job.read_manifest()["config_hash"]
    res = runner.invoke(app, ["prelabel", "classify", "-i", str(manifest), "-l", str(DATA / "labels.yaml"),
                              "-o", str(job_dir), "--no-progress"])
    assert res.exit_code == 0 and "head: trained" in res.output, res.output
    assert job.read_manifest()["config_hash"] != before
    assert {p.payload["head"] for p in job.current_predictions().values() if p.status == "ok"} == {"trained"}

    routed = route(job_dir, target=0.10, audit_rate=0.0)  # target accuracy 90%
    roles = current_roles(job)
    assert routed.human_error["n_answers"] >= 4 and set(roles.values()) <= {"calibration", "gold", "human",
                                                                            "audit", "auto_accept"}
    metrics = job_metrics(job)
    assert metrics["metric"] == "error_rate" and metrics["model_vs_people"]["accuracy"] > 0.7
    assert metrics["agreement"]["tasks_with_overlap"] >= 1 and metrics["agreement"]["fleiss_kappa"] is not None
    out = deliver(job_dir, tmp_path / "delivery")
    rows_out = [json.loads(x) for x in (out.out_dir / "delivered.jsonl").read_text().splitlines()]
    assert len(rows_out) == 60 and all(r["answer"] in ("ham", "spam") for r in rows_out)
    people = [r for r in rows_out if r["provenance"] in ("human", "aggregated")]
    assert sum(r["answer"] == truth[r["item_id"]] for r in people) >= 0.9 * len(people)
