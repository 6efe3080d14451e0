"""The delivered dataset: every item's final answer, with its provenance and confidence; for audio, every
unit's (a short clip, or a work segment of a long recording) with its times, and per recording the transcript
and subtitles.

For each unit of work (:func:`kdh_ai.records.unit_key`: a whole item, or a segment of a long recording): a gold
unit's known answer (provenance ``gold``: routing's estimate counts gold as delivered exact, so the delivery
does too); the people's answer where there is one (aggregated where several people answered, model-aware: the
model's answer joins as an extra annotator, which lowered WER on real crowd data), with provenance ``reviewed``
for a calibration slice routed with ``--calibration-reviewed`` (trusted reviewers: counted as exact by the
estimate); otherwise the model's. Items that neither the model nor people could answer are delivered too,
with ``answer: null`` and the error, never dropped silently. A long recording's answer is its segments'
answers joined; its provenance is theirs when they agree, else ``mixed``.

**Word times after people edit a segment.** The segment keeps its bounds (they come from the audio: cut in
pauses); words people kept keep the model's times. The words they changed or added are re-aligned: the
people's text is force-aligned to the segment's audio with the job's Whisper model (:mod:`kdh_ai.realign`),
and those words take their aligned times where these lie in order between the kept words (the segment says
``"word_times": "aligned"``, each such word ``"aligned": true``). Where the alignment cannot place them (words
not in the audio are squeezed to nothing) or ``realign=False``, they share the time between the kept words
by length (:func:`kdh_ai.subtitles.retime_words`; ``"word_times": "estimated"``, each such word
``"estimated": true``). ``"model"``: the model's own times; ``"none"``: no words. Subtitle cues never cross a
segment's bounds.

``kdh deliver JOB_DIR --out DIR`` writes (``docs/delivery.md`` says it for clients and leads)::

    DIR/delivered.jsonl            one record per item (schema below)
    DIR/delivered.parquet          the same table
    DIR/hf/                        a Hugging Face ``datasets`` directory (``save_to_disk``), audio as paths
    DIR/delivered_segments.jsonl   audio: one record per unit (a short clip, or a segment of a long recording)
    DIR/delivered_segments.parquet the same table
    DIR/hf_segments/               the same as a Hugging Face ``datasets`` directory
    DIR/transcripts/ITEM.txt       per long recording (``per_file="all"``: per audio item): the transcript,
    DIR/transcripts/ITEM.srt       SubRip subtitles,
    DIR/transcripts/ITEM.vtt       WebVTT subtitles,
    DIR/transcripts/ITEM.json      segments with word times, who checked each segment, and the cues
    DIR/delivery.json              counts by provenance, the job's model and routing summary, the files

Item record: ``item_id, task, answer, provenance`` (``model`` | ``human`` | ``aggregated`` | ``gold`` |
``reviewed`` | ``mixed`` | ``none``), ``annotators`` (list), ``aggregation`` (method or null), ``model_answer``,
``model`` (name@version), ``confidence``, ``role`` (routing role or null; null for a long recording: its
segments have roles), ``status`` (the model's), ``error``, ``audio_path`` or ``text``, ``duration_s``;
audio also ``segments`` (work segments, null for a short clip) and ``segments_checked`` (by people).

Unit record (``delivered_segments.*``): ``key, item_id, segment`` (null for a short clip), ``start, end,
duration_s, audio_path, answer, provenance, model_answer, confidence, role, checked, edited, annotators,
aggregation, model_wer`` (the model's WER against the people's answer, on units people checked), ``word_times,
words`` (``word, start, end, probability, aligned, estimated``), ``status, error``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kdh_ai.answers import HumanAnswer, gold_answers, human_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job, write_json_atomic
from kdh_ai.records import Prediction, utc_now
from kdh_ai.routing import routing_result
from kdh_ai.subtitles import Cue, SubtitleOptions, make_cues, retime_words, to_srt, to_vtt

__all__ = ["PER_FILE", "DeliveryResult", "deliver", "delivered_records", "delivered_tables", "delivered_units",
           "file_stem", "transcript_document"]

logger = logging.getLogger(__name__)

PER_FILE = ("long", "all", "none")
"""Valid ``per_file`` choices of :func:`deliver`: transcript and subtitle files for long recordings only, for
every audio item, or none."""

_PEOPLE = ("human", "aggregated", "reviewed", "gold")
"""Provenances of an answer people gave (gold: a known answer, checked by people when it was made)."""


@dataclass
class DeliveryResult:
    """What was delivered.

    Attributes:
        out_dir: The delivery folder.
        counts: Items by provenance.
        files: The files written (per-recording files are in ``transcripts``).
        transcripts: Per item with transcript files: the path of its files without extension.
    """

    out_dir: Path
    counts: dict[str, int]
    files: list[Path]
    transcripts: dict[str, Path] = field(default_factory=dict)


class _Answers:
    """Everything needed to pick each unit's delivered answer, read once from the job."""

    def __init__(self, job: Job, model_weight: int | None, *, realign: bool = False) -> None:
        from kdh_ai.quality import DEFAULT_MODEL_WEIGHT

        self.realign = realign
        self.realigner_: Any = None  # loaded on the first segment to re-align
        self.model_name = str((job.read_manifest().get("model") or {}).get("name") or "whisper-tiny.en")
        self.task = job.task_type()
        self.preds = job.current_predictions()
        self.items = job.current_items()
        self.roles = {k: r.role for k, r in job.roles().items()}
        self.units = {p.item_id: p.units() for p in self.preds.values()}
        model_texts = {u.key: u.text for us in self.units.values() for u in us if u.status != "error"}
        self.humans: dict[str, HumanAnswer] = human_answers(
            job, self.task, model_answers=model_texts,
            model_weight=DEFAULT_MODEL_WEIGHT if model_weight is None else model_weight)
        self.gold = gold_answers(job)
        routed = routing_result(job)
        self.reviewed = bool(routed is not None and routed.details.get("calibration_reviewed"))

    def pick(self, key: str, p: Prediction | None) -> tuple[str | None, str, HumanAnswer | None]:
        """The delivered answer of a unit, its provenance and the people's answer behind it."""
        h = self.humans.get(key)
        role = self.roles.get(key)
        if key in self.gold and role == "gold":
            return self.gold[key], "gold", h
        if h is not None:
            provenance = "aggregated" if len(h.annotators) > 1 else "human"
            if self.reviewed and role == "calibration":
                provenance = "reviewed"
            return h.answer, provenance, h
        if p is not None and p.status != "error":
            return p.text, "model", None
        return None, "none", None


def _model_words(p: Prediction) -> list[dict[str, Any]]:
    """The words of a unit's prediction: a segment's words, or a whole clip's (from its decoder segments)."""
    if p.segment is not None:
        words = p.payload.get("words") or []
    else:
        words = [w for s in p.payload.get("segments") or [] for w in s.get("words") or []]
    return [{"word": str(w["word"]), "start": float(w["start"]), "end": float(w["end"]),
             "probability": None if w.get("probability") is None else float(w["probability"]), "aligned": False,
             "estimated": False}
            for w in words if str(w.get("word", "")).strip()]


def _same_text(a: str | None, b: str | None) -> bool:
    return " ".join((a or "").split()) == " ".join((b or "").split())


def _unit_record(ans: _Answers, item_id: str, p: Prediction | None) -> dict[str, Any]:
    key = p.key if p is not None else item_id
    answer, provenance, h = ans.pick(key, p)
    item = ans.items.get(item_id, {})
    duration = None if p is None else p.payload.get("duration_s")
    start = float(p.payload.get("start", 0.0)) if p is not None else 0.0
    end = float(p.payload["end"]) if p is not None and "end" in p.payload else duration
    words: list[dict[str, Any]] = []
    word_times = "none"
    if p is not None and answer:
        model_words = _model_words(p)
        if _same_text(answer, p.text) and model_words:
            words, word_times = model_words, "model"
        elif end is not None:
            words = retime_words(answer, model_words, start=start, end=float(end))
            word_times = _word_times(words)
    model_wer = None
    if provenance in _PEOPLE and answer and p is not None and ans.task.item_kind == "audio":
        errs = ans.task.item_errors([p.text], [answer])
        model_wer = float(errs[0, 0] / errs[0, 1]) if errs[0, 1] else None
    return {"key": key, "item_id": item_id, "segment": None if p is None else p.segment, "start": start,
            "end": end, "duration_s": None if end is None else round(float(end) - start, 3),
            "audio_path": item.get("path") or (p.source if p else None), "answer": answer, "provenance": provenance,
            "model_answer": p.text if p else None, "confidence": p.confidence if p else None,
            "role": ans.roles.get(key), "checked": provenance in _PEOPLE,
            "edited": provenance in _PEOPLE and answer is not None and not _same_text(answer, p.text if p else None),
            "annotators": h.annotators if h else [], "aggregation": h.method if h and len(h.annotators) > 1 else None,
            "model_aware": bool(h and h.model_aware), "model_wer": model_wer, "word_times": word_times, "words": words,
            "status": p.status if p else "pending", "error": p.error if p else "not pre-labeled yet"}


def _word_times(words: list[dict[str, Any]]) -> str:
    """A unit's ``word_times``: ``estimated`` if any word was spread by length, else ``aligned`` if any was
    aligned to the audio, else ``model``."""
    if any(w["estimated"] for w in words):
        return "estimated"
    return "aligned" if any(w.get("aligned") for w in words) else "model"


def _realign_units(ans: _Answers, preds: list[Prediction], records: list[dict[str, Any]]) -> None:
    """Re-time the edited units of one recording whose words were spread by length, with a forced alignment
    of the people's text to the audio (:class:`kdh_ai.realign.Realigner`); in place. A unit that cannot be
    aligned keeps its spread times (``word_times: estimated``)."""
    from kdh_ai.realign import Realigner, read_spans

    todo = [(p, r) for p, r in zip(preds, records) if r["word_times"] == "estimated" and r["answer"]
            and r["end"] is not None and r["end"] - r["start"] <= 30.0]
    if not todo or not records[0]["audio_path"]:
        return
    try:
        clips = read_spans(records[0]["audio_path"], [(r["start"], r["end"]) for _, r in todo])
        if ans.realigner_ is None:
            ans.realigner_ = Realigner(ans.model_name, language=preds[0].payload.get("language") or "en")
    except Exception as exc:  # noqa: BLE001  no audio, or no CTranslate2 model of that name: keep spread times
        logger.warning("Cannot re-align the edited segments of %s (%s); their word times stay estimated",
                       records[0]["item_id"], exc)
        return
    for (p, r), audio in zip(todo, clips):
        try:
            words = ans.realigner_.align(audio, r["answer"], start=r["start"], end=r["end"])
        except Exception as exc:  # noqa: BLE001  an alignment failure costs this segment its aligned times only
            logger.warning("Cannot re-align %s (%s); its word times stay estimated", r["key"], exc)
            continue
        if words is None:
            continue
        tokens: list[tuple[float, float]] = []
        for w in words:  # the aligner's words, grouped back into the text's white-space words
            if w["word"].startswith(" ") or not tokens:
                tokens.append((w["start"], w["end"]))
            else:
                tokens[-1] = (tokens[-1][0], w["end"])
        if len(tokens) != len(r["answer"].split()):
            continue
        r["words"] = retime_words(r["answer"], _model_words(p), start=r["start"], end=r["end"], aligned=tokens)
        r["word_times"] = _word_times(r["words"])


def _units_by_item(ans: _Answers) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item_id in sorted(set(ans.items) | set(ans.preds)):
        units = ans.units.get(item_id) or [None]
        out[item_id] = [_unit_record(ans, item_id, u) for u in units]
        if ans.realign and ans.task.item_kind == "audio" and units[0] is not None:
            _realign_units(ans, units, out[item_id])  # type: ignore[arg-type]
    return out


def delivered_units(job: Job, *, model_weight: int | None = None) -> list[dict[str, Any]]:
    """The delivered record of every unit of an audio job: one per short clip, one per work segment of a long
    recording (see the module docstring for the fields), in item and time order.

    Args:
        job: The job.
        model_weight: Copies of the model's answer in model-aware aggregation (default: the quality layer's
            ``DEFAULT_MODEL_WEIGHT``).
    """
    return [u for units in _units_by_item(_Answers(job, model_weight)).values() for u in units]


def _item_record(ans: _Answers, item_id: str, units: list[dict[str, Any]]) -> dict[str, Any]:
    p = ans.preds.get(item_id)
    item = ans.items.get(item_id, {})
    long = p is not None and p.segment is None and bool(p.payload.get("work_segments"))
    if not long:
        u = units[0]
        rec = {k: u[k] for k in ("item_id", "answer", "provenance", "annotators", "aggregation", "model_aware",
                                 "model_answer", "confidence", "role", "status", "error")}
    else:
        provs = {u["provenance"] for u in units}
        answer = " ".join(u["answer"] for u in units if u["answer"]) if any(u["answer"] is not None for u in units) \
            else None
        rec = {"item_id": item_id, "answer": answer, "provenance": provs.pop() if len(provs) == 1 else "mixed",
               "annotators": sorted({a for u in units for a in u["annotators"]}),
               "aggregation": next((u["aggregation"] for u in units if u["aggregation"]), None),
               "model_aware": any(u["model_aware"] for u in units), "model_answer": p.text,
               "confidence": p.confidence, "role": None, "status": p.status, "error": p.error}
    out = {"item_id": item_id, "task": ans.task.name, **rec,
           "model": f"{p.model.get('name')}@{p.model.get('version')}" if p else None}
    if ans.task.item_kind == "audio":
        out["audio_path"] = item.get("path") or (p.source if p else None)
        out["duration_s"] = p.payload.get("duration_s") if p else None
        out["segments"] = len(units) if long else None
        out["segments_checked"] = sum(u["checked"] for u in units) if long else None
    else:
        out["text"] = item.get("text")
    return out


def delivered_records(job: Job, *, model_weight: int | None = None) -> list[dict[str, Any]]:
    """The final record of every item of the job (see the module docstring), gold extras left out."""
    ans = _Answers(job, model_weight)
    return [_item_record(ans, item_id, units) for item_id, units in _units_by_item(ans).items()]


def delivered_tables(job: Job, *, model_weight: int | None = None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both delivered tables at once (the people's answers are read and aggregated once): the item records
    (:func:`delivered_records`) and the unit records (:func:`delivered_units`)."""
    ans = _Answers(job, model_weight)
    by_item = _units_by_item(ans)
    return ([_item_record(ans, item_id, units) for item_id, units in by_item.items()],
            [u for units in by_item.values() for u in units])


def transcript_document(item: dict[str, Any], units: list[dict[str, Any]], *,
                        subtitles: SubtitleOptions | None = None) -> tuple[dict[str, Any], list[Cue]]:
    """One recording's transcript document (the ``.json`` :func:`deliver` writes) and its subtitle cues.

    Args:
        item: The item's delivered record (:func:`delivered_records`).
        units: Its units' delivered records (:func:`delivered_units`), in time order.
        subtitles: The subtitle rules (default: :class:`~kdh_ai.subtitles.SubtitleOptions`).
    """
    opts = subtitles or SubtitleOptions()
    cues: list[Cue] = []
    segments = []
    for u in units:
        if u["words"] and u["end"] is not None:
            cues += make_cues(u["words"], start=u["start"], end=u["end"], segment=u["segment"], **opts.as_kwargs())
        segments.append({"index": u["segment"], "start": u["start"], "end": u["end"], "text": u["answer"] or "",
                         "model_text": u["model_answer"], "provenance": u["provenance"], "role": u["role"],
                         "checked": u["checked"], "checked_by": u["annotators"], "edited": u["edited"],
                         "model_wer": u["model_wer"], "confidence": u["confidence"], "word_times": u["word_times"], "words": u["words"]})
    doc = {"item_id": item["item_id"], "audio_path": item.get("audio_path"), "duration_s": item.get("duration_s"),
           "model": item.get("model"), "provenance": item["provenance"], "text": item["answer"] or "",
           "word_times_note": "A segment whose text people edited keeps its bounds; the words they kept keep "
                              "the model's times; the others are aligned to the audio (word_times 'aligned', "
                              "those words 'aligned': true) or, where that fails, share the time between the "
                              "kept words (word_times 'estimated', those words 'estimated': true).",
           "subtitle_rules": opts.as_kwargs(),
           "summary": {"segments": len(units), "checked": sum(u["checked"] for u in units),
                       "edited": sum(u["edited"] for u in units),
                       "checked_s": round(sum((u["duration_s"] or 0) for u in units if u["checked"]), 3)},
           "segments": segments, "cues": [c.to_dict() for c in cues]}
    return doc, cues


def file_stem(item_id: str, taken: set[str] | None = None) -> str:
    """A safe relative path (without extension) for an item's files: folders of the id kept, other characters
    replaced, no ``..``; a short hash of the id is added when two ids would share a name (``taken``).

    Example:
        >>> file_stem("interviews/day 1/talk:03"), file_stem("../x")
        ('interviews/day_1/talk_03', 'x')
    """
    parts = [re.sub(r"[^\w.-]+", "_", p).strip("._") for p in item_id.split("/") if p not in ("", ".", "..")]
    stem = "/".join(p for p in parts if p) or "item"
    if taken is not None:
        if stem.lower() in taken:
            stem = f"{stem}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}"
        taken.add(stem.lower())
    return stem


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _write_table(out: Path, name: str, records: list[dict[str, Any]]) -> list[Path]:
    """``name.jsonl``, ``name.parquet`` and a Hugging Face datasets folder of the records."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = out / f"{name}.jsonl"
    _write_text(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    table = pa.Table.from_pylist(records)
    pq.write_table(table, out / f"{name}.parquet")
    hf = out / ("hf" if name == "delivered" else f"hf_{name.removeprefix('delivered_')}")
    datasets.Dataset(table).save_to_disk(str(hf))
    return [jsonl, out / f"{name}.parquet", hf]


def _write_transcripts(out: Path, items: list[dict[str, Any]], by_item: dict[str, list[dict[str, Any]]],
                       per_file: str, subtitles: SubtitleOptions) -> dict[str, Path]:
    written: dict[str, Path] = {}
    taken: set[str] = set()
    for rec in items:
        if per_file == "none" or rec["answer"] is None or (per_file == "long" and not rec.get("segments")):
            continue
        doc, cues = transcript_document(rec, by_item[rec["item_id"]], subtitles=subtitles)
        base = out / "transcripts" / file_stem(rec["item_id"], taken)
        paragraphs = [s["text"] for s in doc["segments"] if s["text"]]
        _write_text(base.with_name(base.name + ".txt"), "\n\n".join(paragraphs) + "\n")
        _write_text(base.with_name(base.name + ".srt"), to_srt(cues))
        _write_text(base.with_name(base.name + ".vtt"), to_vtt(cues))
        _write_text(base.with_name(base.name + ".json"), json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        written[rec["item_id"]] = base
    return written


def deliver(job_dir: str | Path, out_dir: str | Path, *, model_weight: int | None = None,
            per_file: Literal["long", "all", "none"] = "long", subtitles: SubtitleOptions | None = None,
            realign: bool = True) -> DeliveryResult:
    """Write the delivered dataset (JSONL, Parquet, Hugging Face ``datasets``) for a job, and for audio the
    per-unit table and each long recording's transcript, subtitles and timed JSON (see the module docstring).

    Args:
        job_dir: The job directory.
        out_dir: Where to write (created; files are replaced).
        model_weight: Copies of the model's answer in model-aware aggregation (default: the quality
            layer's ``DEFAULT_MODEL_WEIGHT``).
        per_file: Which audio items get ``transcripts/ITEM.{txt,srt,vtt,json}``: ``"long"`` (recordings cut
            into work segments), ``"all"`` (every audio item with an answer) or ``"none"``.
        subtitles: The subtitle rules (default: 42 characters per line, 2 lines, 1 to 7 s per cue).
        realign: Time the words people changed in a segment by aligning their text to the segment's audio
            with the job's Whisper model (:mod:`kdh_ai.realign`; loaded only when a segment needs it); where
            that fails, or with ``False``, they share the time between the words people kept.

    Raises:
        InvalidInputError: Not a job directory, or ``per_file`` not one of :data:`PER_FILE`.
    """
    if per_file not in PER_FILE:
        raise InvalidInputError(f"per_file must be one of {', '.join(PER_FILE)}; got {per_file!r}")
    job = Job(Path(job_dir))
    if not job.read_manifest():
        raise InvalidInputError(f"{job.root} is not a job directory (no job.json); run `kdh prelabel` first")
    opts = subtitles or SubtitleOptions()
    ans = _Answers(job, model_weight, realign=realign)
    by_item = _units_by_item(ans)
    records = [_item_record(ans, item_id, units) for item_id, units in by_item.items()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = _write_table(out, "delivered", records)
    transcripts: dict[str, Path] = {}
    if ans.task.item_kind == "audio":
        files += _write_table(out, "delivered_segments", [u for us in by_item.values() for u in us])
        transcripts = _write_transcripts(out, records, by_item, per_file, opts)
    counts = dict(Counter(r["provenance"] for r in records))
    manifest = job.read_manifest()
    routed = routing_result(job)
    write_json_atomic(out / "delivery.json", {
        "job": str(job.root), "task": manifest.get("task"), "delivered_at": utc_now(), "items": len(records),
        "units": sum(len(us) for us in by_item.values()), "by_provenance": counts, "model": manifest.get("model"),
        "routing": {k: getattr(routed, k, None) for k in ("threshold", "human_share", "estimated_error",
                                                           "error_upper", "message")},
        "subtitle_rules": opts.as_kwargs(),
        "transcripts": {k: str(v.relative_to(out)) for k, v in transcripts.items()}})
    files.append(out / "delivery.json")
    logger.info("Delivered %d items (%d with transcript files) to %s (%s)", len(records), len(transcripts), out,
                counts)
    return DeliveryResult(out, counts, files, transcripts)
