"""The delivered dataset: final answers with provenance, in JSONL, Parquet and HF datasets."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from kdh_ai.deliver import deliver
from kdh_ai.job import Job
from kdh_ai.records import Prediction
from kdh_ai.routing import current_roles, plan_calibration, route
from test_routing import annotate, build_job


def test_delivery_prefers_people_aggregates_and_keeps_failed_items(tmp_path: Path) -> None:
    refs = build_job(tmp_path / "job", n=120, n_gold=10, slope=0.7)
    job = Job(tmp_path / "job")
    job.predictions.append([Prediction.failed(item_id="broken", task="transcription", error="empty file (0 bytes)",
                                              model={"name": "sim", "version": "1"}, config_hash="h",
                                              source="/audio/broken.wav", sha256=None).to_dict()])
    plan_calibration(job.root, size=40, seed=0)
    roles = current_roles(job)
    cal = [k for k, r in roles.items() if r == "calibration"]
    annotate(job, {k: refs[k] for k in cal}, "trusted.reviewer@example.org")
    two = cal[:5]  # a second (simulated) annotator on five items: aggregated answers
    annotate(job, {k: refs[k] for k in two}, "second.annotator@example.org", start=5000)
    annotate(job, {k: refs[k] for k, r in roles.items() if r == "gold"}, "trainee@example.org", start=9000)
    route(job.root, target=0.1)
    result = deliver(job.root, tmp_path / "out")
    rows = [json.loads(x) for x in (tmp_path / "out" / "delivered.jsonl").read_text().splitlines()]
    by_id = {r["item_id"]: r for r in rows}
    assert len(rows) == 121
    assert by_id["broken"]["provenance"] == "none" and by_id["broken"]["answer"] is None
    assert "0 bytes" in by_id["broken"]["error"]
    assert by_id[two[0]]["provenance"] == "aggregated" and by_id[two[0]]["model_aware"]
    assert by_id[two[0]]["answer"] == refs[two[0]] and len(by_id[two[0]]["annotators"]) == 2
    assert by_id[cal[10]]["provenance"] == "human" and by_id[cal[10]]["answer"] == refs[cal[10]]
    gold = [k for k, r in roles.items() if r == "gold"]
    assert gold and all(by_id[k]["provenance"] == "gold" and by_id[k]["answer"] == refs[k] for k in gold)
    auto = [r for r in rows if r["role"] == "auto_accept"]
    assert auto and all(r["provenance"] == "model" and r["answer"] == r["model_answer"] for r in auto)
    assert all(r["confidence"] is not None for r in rows if r["item_id"] != "broken")
    assert result.counts["model"] == len([r for r in rows if r["provenance"] == "model"])
    table = pq.read_table(tmp_path / "out" / "delivered.parquet")
    assert table.num_rows == 121 and "audio_path" in table.column_names
    ds = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    assert len(ds) == 121 and ds[0]["audio_path"].startswith("/audio/")
    summary = json.loads((tmp_path / "out" / "delivery.json").read_text())
    assert summary["items"] == 121 and summary["routing"]["human_share"] > 0
