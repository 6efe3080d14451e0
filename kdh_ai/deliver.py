"""The delivered dataset: every item's final answer, with its provenance and confidence.

For each item of the job: a gold item's known answer (provenance ``gold``: routing's estimate counts gold
items as delivered exact, so the delivery does too); the people's answer where there is one (aggregated where
several people answered, model-aware: the model's answer joins as an extra annotator, which lowered WER on real
crowd data), with provenance ``reviewed`` for a calibration slice routed with ``--calibration-reviewed``
(trusted reviewers: counted as exact by the estimate); otherwise the model's. Items that neither the model
nor people could answer are delivered too, with ``answer: null`` and the error, never dropped silently.

``kdh deliver JOB_DIR --out DIR`` writes::

    DIR/delivered.jsonl      one record per item (schema below)
    DIR/delivered.parquet    the same table
    DIR/hf/                  a Hugging Face ``datasets`` directory (``save_to_disk``), audio as paths, not bytes
    DIR/delivery.json        counts by provenance, the job's model and routing summary

Record: ``item_id, task, answer, provenance`` (``model`` | ``human`` | ``aggregated`` | ``gold`` |
``reviewed`` | ``none``),
``annotators`` (list), ``aggregation`` (method or null), ``model_answer``, ``model`` (name@version),
``confidence``, ``role`` (routing role or null), ``status`` (the model's), ``error``, ``audio_path`` or
``text``, ``duration_s``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdh_ai.answers import gold_answers, human_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job, write_json_atomic
from kdh_ai.records import utc_now
from kdh_ai.routing import routing_result

__all__ = ["DeliveryResult", "deliver", "delivered_records"]

logger = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    """What was delivered.

    Attributes:
        out_dir: The delivery folder.
        counts: Items by provenance.
        files: The files written.
    """

    out_dir: Path
    counts: dict[str, int]
    files: list[Path]


def delivered_records(job: Job, *, model_weight: int | None = None) -> list[dict[str, Any]]:
    """The final record of every item of the job (see the module docstring), gold extras left out."""
    from kdh_ai.quality import DEFAULT_MODEL_WEIGHT

    task = job.task_type()
    preds = job.current_predictions()
    items = job.current_items()
    roles = {k: r.role for k, r in job.roles().items()}
    model_texts = {k: p.text for k, p in preds.items() if p.status != "error"}
    humans = human_answers(job, task, model_answers=model_texts,
                           model_weight=DEFAULT_MODEL_WEIGHT if model_weight is None else model_weight)
    gold = gold_answers(job)
    routed = routing_result(job)
    reviewed = bool(routed is not None and routed.details.get("calibration_reviewed"))
    out = []
    for item_id in sorted(set(items) | set(preds)):
        p = preds.get(item_id)
        item = items.get(item_id, {})
        h = humans.get(item_id)
        if item_id in gold and roles.get(item_id) == "gold":
            answer, provenance = gold[item_id], "gold"
        elif h is not None:
            answer, provenance = h.answer, ("aggregated" if len(h.annotators) > 1 else "human")
            if reviewed and roles.get(item_id) == "calibration":
                provenance = "reviewed"
        elif p is not None and p.status != "error":
            answer, provenance = p.text, "model"
        else:
            answer, provenance = None, "none"
        rec = {"item_id": item_id, "task": task.name, "answer": answer, "provenance": provenance,
               "annotators": h.annotators if h else [], "aggregation": h.method if h and len(h.annotators) > 1
               else None, "model_aware": bool(h and h.model_aware), "model_answer": p.text if p else None,
               "model": f"{p.model.get('name')}@{p.model.get('version')}" if p else None,
               "confidence": p.confidence if p else None, "role": roles.get(item_id),
               "status": p.status if p else "pending", "error": p.error if p else "not pre-labeled yet"}
        if task.item_kind == "audio":
            rec["audio_path"] = item.get("path") or (p.source if p else None)
            rec["duration_s"] = (p.payload.get("duration_s") if p else None)
        else:
            rec["text"] = item.get("text")
        out.append(rec)
    return out


def deliver(job_dir: str | Path, out_dir: str | Path, *, model_weight: int | None = None) -> DeliveryResult:
    """Write the delivered dataset (JSONL, Parquet, Hugging Face ``datasets``) for a job.

    Args:
        job_dir: The job directory.
        out_dir: Where to write (created; files are replaced).
        model_weight: Copies of the model's answer in model-aware aggregation (default: the quality
            layer's ``DEFAULT_MODEL_WEIGHT``).
    """
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    job = Job(Path(job_dir))
    if not job.read_manifest():
        raise InvalidInputError(f"{job.root} is not a job directory (no job.json); run `kdh prelabel` first")
    records = delivered_records(job, model_weight=model_weight)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "delivered.jsonl"
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(jsonl)
    table = pa.Table.from_pylist(records)
    pq.write_table(table, out / "delivered.parquet")
    datasets.Dataset(table).save_to_disk(str(out / "hf"))
    counts = dict(Counter(r["provenance"] for r in records))
    manifest = job.read_manifest()
    routed = routing_result(job)
    write_json_atomic(out / "delivery.json", {
        "job": str(job.root), "task": manifest.get("task"), "delivered_at": utc_now(), "items": len(records),
        "by_provenance": counts, "model": manifest.get("model"), "routing": {
            k: getattr(routed, k, None) for k in ("threshold", "human_share", "estimated_error", "error_upper",
                                                  "message")}})
    files = [jsonl, out / "delivered.parquet", out / "hf", out / "delivery.json"]
    logger.info("Delivered %d items to %s (%s)", len(records), out, counts)
    return DeliveryResult(out, counts, files)
