"""Review tasks for the work segments of long recordings: a clip with context, the segment marked in it.

A long recording is routed segment by segment (:meth:`kdh_ai.job.Job.units`); only its uncertain segments go to
people. Each goes to Label Studio as **one task per segment**:

* the audio is a clip of the recording from ``context_s`` seconds before the segment to ``context_s`` after it
  (cut by :func:`cut_clip` into the job's ``clips/`` folder, then linked or uploaded like any other audio), so
  the annotator hears how the sentence starts and ends;
* the segment is a pre-annotated region of the player (label ``to transcribe``), so the annotator sees which
  part of the clip to write down (and plays it alone by clicking it);
* the model's text of the segment is pre-filled in the text box, as for short clips;
* the model's text of the segments before and after is shown above and below the box, as context; the header
  names the recording, the segment and its times in the recording.

Short clips keep their task as before (the whole clip, its text); the same labeling template serves both
kinds (:meth:`kdh_ai.tasks.transcription.TranscriptionTask.label_config`). See ``docs/labelstudio.md``,
"Long recordings", for why this design and what it costs.

Example:
    >>> clip_bounds(60.0, 75.0, file_duration_s=600.0, context_s=3.0)
    (57.0, 78.0)
    >>> clip_bounds(1.0, 12.0, file_duration_s=13.0, context_s=3.0)
    (0.0, 13.0)
    >>> clock(3725.5)
    '1:02:05.5'
"""

from __future__ import annotations

import hashlib
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.records import Prediction

__all__ = ["CONTEXT_S", "REGION_LABEL", "SegmentClip", "clip_bounds", "clip_name", "clock", "cut_clip",
           "region_result", "segment_clip", "segment_data", "short_clip_data"]

CONTEXT_S = 3.0
"""Seconds of audio before and after a segment in its review clip."""

REGION_LABEL = "to transcribe"
"""The label of the region that marks the segment in its clip."""


def clock(seconds: float) -> str:
    """A time in the recording as ``m:ss.s`` (``h:mm:ss.s`` from one hour)."""
    seconds = max(0.0, float(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h >= 1 else f"{int(m)}:{s:04.1f}"


def clip_bounds(start: float, end: float, *, file_duration_s: float | None, context_s: float = CONTEXT_S
                ) -> tuple[float, float]:
    """The clip of a segment: ``context_s`` before and after it, within the recording."""
    lo = max(0.0, float(start) - context_s)
    hi = float(end) + context_s
    if file_duration_s:
        hi = min(float(file_duration_s), hi)
    return round(lo, 3), round(max(hi, lo), 3)


@dataclass
class SegmentClip:
    """Where a segment's review clip lies in its recording and where the segment lies in the clip.

    Attributes:
        start: Clip start in the recording (s).
        end: Clip end in the recording (s).
        region: The segment inside the clip: ``(start, end)`` in clip time (s).
    """

    start: float
    end: float
    region: tuple[float, float]


def segment_clip(unit: Prediction, *, context_s: float = CONTEXT_S) -> SegmentClip:
    """The review clip of a segment unit (:meth:`kdh_ai.records.Prediction.units`)."""
    start, end = float(unit.payload["start"]), float(unit.payload["end"])
    lo, hi = clip_bounds(start, end, file_duration_s=unit.payload.get("file_duration_s"), context_s=context_s)
    return SegmentClip(lo, hi, (round(start - lo, 3), round(min(end, hi) - lo, 3)))


def _texts_around(units: list[Prediction], index: int, *, chars: int) -> tuple[str, str]:
    """The model's text before and after segment ``index`` (about ``chars`` characters each way)."""
    by_index = {u.segment: u for u in units}
    before: list[str] = []
    i = index - 1
    while i in by_index and sum(len(t) for t in before) < chars:
        before.insert(0, by_index[i].text or "[no words]")
        i -= 1
    after: list[str] = []
    i = index + 1
    while i in by_index and sum(len(t) for t in after) < chars:
        after.append(by_index[i].text or "[no words]")
        i += 1
    b, a = " ".join(before), " ".join(after)
    if len(b) > chars:
        b = "… " + b[-chars:].split(" ", 1)[-1]
    if len(a) > chars:
        a = a[:chars].rsplit(" ", 1)[0] + " …"
    return b, a


def segment_data(unit: Prediction, siblings: list[Prediction], *, context_s: float = CONTEXT_S,
                 context_chars: int = 240) -> dict[str, Any]:
    """The task data of a segment (besides the audio URL): ``item_id``, ``segment``, the header, the model's
    text before and after, and where the clip and the segment lie in the recording."""
    clip = segment_clip(unit, context_s=context_s)
    before, after = _texts_around(siblings, int(unit.segment or 0), chars=context_chars)
    n = len(siblings)
    start, end = float(unit.payload["start"]), float(unit.payload["end"])
    header = (f"{unit.item_id}, segment {int(unit.segment or 0) + 1} of {n} ({clock(start)}–{clock(end)} of the "
              f"recording). Transcribe only the highlighted part of the audio ({clock(clip.region[0])}–"
              f"{clock(clip.region[1])} of this clip); the seconds before and after it are there for context.")
    return {"item_id": unit.item_id, "segment": unit.segment, "kdh_header": header,
            "context_before": f"Before (the model's text): {before}" if before else "Before: (start of the recording)",
            "context_after": f"After (the model's text): {after}" if after else "After: (end of the recording)",
            "clip_start_s": clip.start, "clip_end_s": clip.end, "segment_start_s": start, "segment_end_s": end}


def short_clip_data(item_id: str) -> dict[str, Any]:
    """The task data of a short clip (besides the audio URL): the same keys as a segment's, so one template
    serves both; the context lines are empty."""
    return {"item_id": item_id, "kdh_header": "Type what is said in the whole clip.", "context_before": "",
            "context_after": ""}


def cut_clip(source: str | Path, clips: list[tuple[str, float, float]], folder: str | Path) -> dict[str, tuple[str, str]]:
    """Cut clips of one recording into WAV files (16 kHz mono, 16-bit) under ``folder``.

    The recording is decoded once (:func:`kdh_ai.audio.load_audio`) for all its clips. A clip already written
    is kept.

    Args:
        source: The recording.
        clips: ``(file name, start s, end s)`` of each clip.
        folder: Where to write them (created).

    Returns:
        ``{file name: (path, sha256)}``.

    Raises:
        AudioError: The recording cannot be decoded.
    """
    from kdh_ai.audio import SAMPLE_RATE, load_audio
    from kdh_ai.items import sha256_file

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio: np.ndarray | None = None
    out: dict[str, tuple[str, str]] = {}
    for name, lo, hi in clips:
        path = out_dir / name
        if not path.is_file():
            if audio is None:
                audio = load_audio(source)
            part = audio[int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)]
            tmp = path.with_suffix(".tmp")
            with wave.open(str(tmp), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SAMPLE_RATE)
                w.writeframes((np.clip(part, -1, 1) * 32767).astype("<i2").tobytes())
            os.replace(tmp, path)
        out[name] = (str(path), sha256_file(path))
    return out


def clip_name(item_id: str, segment: int, lo: float, hi: float) -> str:
    """The file name of a segment's clip (stable; changes when the clip's bounds change)."""
    import re

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._")[:60] or "item"
    tag = hashlib.sha256(f"{item_id}:{segment}:{lo:.3f}:{hi:.3f}".encode()).hexdigest()[:8]
    return f"{stem}-seg{segment:04d}-{tag}.wav"


def region_result(region: tuple[float, float], *, to_name: str = "audio") -> dict[str, Any]:
    """The pre-annotated region that marks the segment in its clip (a Label Studio ``labels`` result)."""
    return {"id": "kdh-segment", "from_name": "segment", "to_name": to_name, "type": "labels",
            "value": {"start": float(region[0]), "end": float(region[1]), "channel": 0, "labels": [REGION_LABEL]}}
