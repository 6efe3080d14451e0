"""Work segments of a long recording: cut a timed transcript at pauses into pieces people can review.

A long recording (interview, meeting, call) is one item, but not one unit of work: it is cut into
:class:`~kdh_ai.records.Segment` s of at most about 30 s, each with its own text, word timestamps and
confidence, so that routing can send only the uncertain ones to people and delivery can time every word.

The cut follows the engine's word timestamps (the engine owns how a long file is decoded) and, where the
engine ran voice activity detection, its speech probabilities:

* segments **tile** the recording from 0 s to its end: every second of audio belongs to exactly one segment;
* a cut falls in the middle of a pause between two words, preferring long pauses, never inside a word;
* a stretch between two words where VAD hears speech that no word covers (Whisper skipped it), or a pause
  longer than ``max_s``, becomes a segment of its own without words: empty text, ``status="no_speech"`` and the
  confidence of an empty transcript (``1 -`` the highest speech probability in it), so skipped speech goes to
  people and true silence does not;
* a segment with words whose speech VAD hears for much longer than its words last gets a ``check`` entry and
  half its confidence (words are missing inside it).

Example:
    >>> words = [{"word": " Hello", "start": 0.5, "end": 0.9, "probability": 0.9},
    ...          {"word": " there.", "start": 1.0, "end": 1.4, "probability": 0.8},
    ...          {"word": " Next", "start": 40.0, "end": 40.4, "probability": 0.95}]
    >>> [(s.index, s.start, s.end, s.text, s.status) for s in cut_segments(words, duration_s=41.0)]
    [(0, 0.0, 1.4, 'Hello there.', 'ok'), (1, 1.4, 20.7, '', 'no_speech'), (2, 20.7, 40.0, '', 'no_speech'), (3, 40.0, 41.0, 'Next', 'ok')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kdh_ai.records import Segment

__all__ = ["FRAME_S", "cut_segments", "empty_confidence", "word_confidence"]

FRAME_S = 0.032
"""Seconds per VAD speech probability (Silero VAD frames of 512 samples at 16 kHz)."""


def word_confidence(words: Sequence[dict[str, Any]]) -> float:
    """Geometric mean of word probabilities (0 when there are none).

    Example:
        >>> round(word_confidence([{"probability": 0.9}, {"probability": 0.4}]), 3)
        0.6
    """
    if not words:
        return 0.0
    logs = [math.log(max(float(w["probability"]), 1e-6)) for w in words]
    return float(min(1.0, max(0.0, math.exp(sum(logs) / len(logs)))))


def empty_confidence(speech_max: float | None) -> float:
    """Confidence of an empty transcript: ``1 -`` the highest speech probability VAD gave the audio.

    Silence gets about 1; speech that VAD barely missed (noisy or telephone-band audio) about 0.5; audio in
    which VAD found speech but Whisper wrote nothing at most 0.5. Without VAD there is no evidence: 0.

    Example:
        >>> empty_confidence(0.02), empty_confidence(None)
        (0.98, 0.0)
    """
    return 0.0 if speech_max is None else float(min(1.0, max(0.0, 1.0 - speech_max)))


def _join(words: Sequence[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in words).strip()


class _Speech:
    """Speech probabilities of the recording, read by time span (``None``: no VAD ran)."""

    def __init__(self, probs: np.ndarray | None, frame_s: float) -> None:
        self.probs, self.frame_s = probs, frame_s

    def _frames(self, lo: float, hi: float) -> np.ndarray:
        if self.probs is None or hi <= lo:
            return np.zeros(0, np.float32)
        a, b = int(lo / self.frame_s), int(math.ceil(hi / self.frame_s))
        return self.probs[max(0, a):max(0, b)]

    def max(self, lo: float, hi: float) -> float | None:
        """Highest speech probability in [lo, hi] (``None`` without VAD; 0 for an empty span)."""
        if self.probs is None:
            return None
        f = self._frames(lo, hi)
        return float(f.max()) if f.size else 0.0

    def seconds(self, lo: float, hi: float) -> float:
        """Seconds of clear speech (probability >= 0.5) in [lo, hi]."""
        return float((self._frames(lo, hi) >= 0.5).sum()) * self.frame_s


def _spans(words: Sequence[dict[str, Any]], duration_s: float, speech: _Speech, *, max_s: float,
           missed_speech_s: float, edge_s: float) -> list[tuple[float, float, list[dict[str, Any]]]]:
    """Alternating word runs and wordless gaps that must be segments of their own, as (start, end, words)."""
    out: list[tuple[float, float, list[dict[str, Any]]]] = []
    run: list[dict[str, Any]] = []
    prev_end = 0.0
    for w in list(words) + [None]:  # type: ignore[list-item]
        nxt = duration_s if w is None else float(w["start"])
        lo, hi = prev_end, max(prev_end, nxt)
        skipped = speech.seconds(lo + edge_s, hi - edge_s) >= missed_speech_s
        if w is not None and not skipped and hi - lo <= max_s:
            run.append(w)
            prev_end = max(prev_end, float(w["end"]))
            continue
        if run:
            out.append((float(run[0]["start"]), prev_end, run))
            run = []
        if hi - lo > 1e-3 and (skipped or hi - lo > max_s or not out):  # a short quiet end joins the last run
            out.append((lo, hi, []))
        if w is not None:
            run = [w]
            prev_end = max(prev_end, float(w["end"]))
    return out


def _cut_run(words: list[dict[str, Any]], *, max_s: float, target_s: float, pause_s: float) -> list[int]:
    """Indices ``i`` of a word run where a new segment starts at word ``i`` (cuts at the longest pauses)."""
    cuts: list[int] = []
    start = float(words[0]["start"])
    best: tuple[float, int] | None = None  # (pause, index of the word after it)
    for i in range(1, len(words)):
        gap = float(words[i]["start"]) - float(words[i - 1]["end"])
        length = float(words[i - 1]["end"]) - start
        if length >= target_s and gap >= pause_s:
            cuts.append(i)
            start, best = float(words[i]["start"]), None
            continue
        if float(words[i]["end"]) - start > max_s:
            at = best[1] if best is not None else i
            cuts.append(at)
            start = float(words[at]["start"])
            best = None
            for j in range(at + 1, i + 1):  # pauses after the cut stay candidates (not too close to it)
                g = float(words[j]["start"]) - float(words[j - 1]["end"])
                if float(words[j - 1]["end"]) - start >= min(target_s, max_s) / 3 and (best is None or g >= best[0]):
                    best = (g, j)
            continue
        if length >= min(target_s, max_s) / 3 and (best is None or gap >= best[0]):
            best = (gap, i)
    return cuts


def cut_segments(words: Sequence[dict[str, Any]], *, duration_s: float, speech_probs: np.ndarray | None = None,
                 frame_s: float = FRAME_S, max_s: float = 30.0, target_s: float = 12.0, pause_s: float = 0.5,
                 missed_speech_s: float = 1.0, edge_s: float = 0.3, missing_factor: float = 0.5) -> list[Segment]:
    """Cut a timed transcript into work segments that tile ``[0, duration_s]``.

    Args:
        words: The recording's word records in time order (``word``, ``start``, ``end``, ``probability``).
        duration_s: Length of the recording (s).
        speech_probs: VAD speech probability per frame of ``frame_s`` seconds (``None``: no VAD ran; wordless
            stretches then get confidence 0, as nothing says they are silent).
        frame_s: Seconds per speech probability.
        max_s: Longest segment with words (a longer pause becomes a wordless segment; a longer wordless
            stretch is split into pieces of at most ``max_s``).
        target_s: A segment with words ends at the first pause of at least ``pause_s`` after this length.
        pause_s: See ``target_s``.
        missed_speech_s: A pause between words that holds at least this much clear speech (VAD >= 0.5, more
            than ``edge_s`` away from the words around it) becomes a wordless segment: Whisper skipped speech.
        edge_s: See ``missed_speech_s``.
        missing_factor: Confidence factor of a segment whose speech outlasts its words by more than
            ``missed_speech_s`` plus half its words' time (the segment's ``check`` says why).

    Returns:
        The segments, indexed from 0 in time order.

    Raises:
        ValueError: ``duration_s`` not positive, or ``max_s``/``target_s`` out of order.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s!r}")
    if not 0 < target_s <= max_s:
        raise ValueError(f"need 0 < target_s <= max_s, got target_s={target_s!r}, max_s={max_s!r}")
    speech = _Speech(speech_probs, frame_s)
    spans = _spans(words, duration_s, speech, max_s=max_s, missed_speech_s=missed_speech_s, edge_s=edge_s)
    pieces: list[tuple[float, float, list[dict[str, Any]]]] = []
    for lo, hi, ws in spans:
        if not ws:
            n = max(1, math.ceil((hi - lo) / max_s - 1e-9))
            pieces += [(lo + (hi - lo) * k / n, lo + (hi - lo) * (k + 1) / n, []) for k in range(n)]
            continue
        bounds = [0, *_cut_run(ws, max_s=max_s, target_s=target_s, pause_s=pause_s), len(ws)]
        pieces += [(float(ws[a]["start"]), float(ws[b - 1]["end"]), ws[a:b]) for a, b in zip(bounds, bounds[1:])]
    return _tile(pieces, duration_s, speech, missed_speech_s=missed_speech_s, missing_factor=missing_factor)


def _tile(pieces: list[tuple[float, float, list[dict[str, Any]]]], duration_s: float, speech: _Speech, *,
          missed_speech_s: float, missing_factor: float) -> list[Segment]:
    """Stretch the pieces to meet half-way in the pauses between them, and score each."""
    out: list[Segment] = []
    for k, (lo, hi, ws) in enumerate(pieces):
        start = 0.0 if k == 0 else out[-1].end
        if k + 1 == len(pieces):
            end = duration_s
        else:
            nxt_lo, nxt_words = pieces[k + 1][0], pieces[k + 1][2]
            end = hi if not ws or not nxt_words else (hi + nxt_lo) / 2  # wordless pieces keep their edges
        start, end = round(start, 3), round(max(end, start), 3)
        vmax = speech.max(start, end)
        if not ws:
            out.append(Segment(index=k, start=start, end=end, text="", confidence=empty_confidence(vmax),
                               words=[], status="no_speech", speech_prob_max=vmax))
            continue
        conf, check = word_confidence(ws), None
        said = sum(float(w["end"]) - float(w["start"]) for w in ws)
        heard = speech.seconds(start, end)
        if heard > said * 1.5 + missed_speech_s:
            conf *= missing_factor
            check = [f"{heard:.1f} s of speech for {said:.1f} s of words: words may be missing"]
        out.append(Segment(index=k, start=start, end=end, text=_join(ws), confidence=conf, words=list(ws),
                           status="ok", speech_prob_max=vmax, check=check))
    return out
