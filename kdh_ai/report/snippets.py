"""Small pieces the people-facing pages share: where a word is said, a few seconds of audio, a sentence diff.

Example:
    >>> diff_html("the cat sat", "the bat sat")
    'the <del title="said">cat</del> <ins title="you wrote">bat</ins> sat'
"""

from __future__ import annotations

import base64
import html
import io
import wave
from typing import Any

import numpy as np

from kdh_ai import quality

__all__ = ["DIFF_CSS", "clip_wav_b64", "diff_html", "word_time"]

DIFF_CSS = ("del{background:#fde2e1;color:#8a1c1c} ins{background:#e1f5e6;color:#14532d;text-decoration:none}")
"""Styles of :func:`diff_html`'s marks."""


def word_time(pred: Any, ref_words: list[str], index: int) -> float | None:
    """Time (s) in the clip (the recording, for a work segment's unit) of reference word ``index``, from the
    model's word timestamps where it got it."""
    import jiwer

    if pred is None:
        return None
    words = pred.payload.get("words") or [w for seg in pred.payload.get("segments", []) for w in seg.get("words", [])]
    norm = [quality.normalize_text(w["word"]) for w in words]
    if not words or not ref_words:
        return None
    out = jiwer.process_words(" ".join(ref_words), " ".join(n or "_" for n in norm))
    for chunk in out.alignments[0]:
        if chunk.ref_start_idx <= index < chunk.ref_end_idx and chunk.type in ("equal", "substitute"):
            j = chunk.hyp_start_idx + (index - chunk.ref_start_idx)
            if j < len(words):
                return float(words[j]["start"])
    return None


def clip_wav_b64(path: str | None, at_frac: float, at_s: float | None = None, *, before_s: float = 1.5,
              length_s: float = 5.0) -> str | None:
    """A few seconds of the clip around a point (``at_s`` seconds, else ``at_frac`` of its length), as a
    base64 WAV to embed in a page (``None`` when the audio cannot be read)."""
    if not path:
        return None
    from kdh_ai.audio import SAMPLE_RATE, AudioError, load_audio

    try:
        audio = load_audio(path)
    except AudioError:
        return None
    at = at_s if at_s is not None else at_frac * len(audio) / SAMPLE_RATE
    start = max(0, int((at - before_s) * SAMPLE_RATE))
    cut = audio[start:start + int(length_s * SAMPLE_RATE)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(cut, -1, 1) * 32767).astype("<i2").tobytes())
    return base64.b64encode(buf.getvalue()).decode()


def diff_html(reference: str, answer: str) -> str:
    """The sentence with the difference highlighted: missing words struck, extra or wrong words marked."""
    import jiwer

    if not reference:
        return html.escape(answer)
    out = jiwer.process_words(reference, answer or "")
    rw, hw = out.references[0], out.hypotheses[0]
    parts = []
    for c in out.alignments[0]:
        ref = html.escape(" ".join(rw[c.ref_start_idx:c.ref_end_idx]))
        hyp = html.escape(" ".join(hw[c.hyp_start_idx:c.hyp_end_idx]))
        if c.type == "equal":
            parts.append(ref)
        elif c.type == "delete":
            parts.append(f'<del title="you left this out">{ref}</del>')
        elif c.type == "insert":
            parts.append(f'<ins title="not said">{hyp}</ins>')
        else:
            parts.append(f'<del title="said">{ref}</del> <ins title="you wrote">{hyp}</ins>')
    return " ".join(parts)
