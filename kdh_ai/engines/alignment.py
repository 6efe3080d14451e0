"""Word timings for a long file decoded exactly as the plain faster-whisper loop decodes it.

faster-whisper's ``word_timestamps=True`` does more than time the words: after each 30 s window it moves the
next window's start (``seek``) to the end of the last aligned word. On long recordings with noisy stretches
that changes which audio each window sees, and the transcript loses words the plain loop keeps
(``benchmarks/README.md``, long files). So a long file is decoded with ``word_timestamps=False`` (the plain
loop's text, by construction), and its words are timed afterwards, window by window, with the same
cross-attention alignment faster-whisper uses (:meth:`faster_whisper.WhisperModel.add_word_timestamps`) on
the window each segment was decoded from; a window's words end where the next window starts
(:func:`end_words_by`). The alignment of one window runs in a second thread while the
next window decodes, so a single long file keeps both cores busy.

Example:
    >>> from kdh_ai.engines.alignment import window_groups
    >>> class S:
    ...     def __init__(self, seek): self.seek = seek
    >>> [[s.seek for s in g] for g in window_groups([S(0), S(0), S(2900), S(5800)])]
    [[0, 0], [2900], [5800]]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["PREPEND_PUNCTUATION", "APPEND_PUNCTUATION", "end_words_by", "transcribe_then_align", "window_groups"]

PREPEND_PUNCTUATION = "\"'“¿([{-"
"""Punctuation merged into the next word (faster-whisper's default)."""
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
"""Punctuation merged into the previous word (faster-whisper's default)."""


def window_groups(segments: Iterable[Any]) -> Iterator[list[Any]]:
    """Group consecutive decoded segments by the window (``seek``, in mel frames) they were decoded from."""
    for _, group in itertools.groupby(segments, key=lambda s: s.seek):
        yield list(group)


def end_words_by(segments: list[dict[str, Any]], t: float) -> None:
    """Make the words of one window's segments end by ``t``, the start of the next window (in place).

    When the plain loop's window ends in an unfinished segment, the next window starts (``seek``) at the last
    timestamp, before the audio the aligner was shown; the aligner then stretches the window's last words over
    that audio (on a 10-minute recording: "of" from 131.2 s to 139.8 s, and "fine" after "typography," that
    the next window times at 131.7 s). The words from the first one that ends after ``t`` are spread evenly
    over ``[its start (at most t), t]``, so word times never go back and never cross into the next window.

    Example:
        >>> segs = [{"start": 0.0, "end": 9.0, "words": [
        ...     {"word": " an", "start": 0.0, "end": 0.5}, {"word": " of", "start": 0.5, "end": 8.5},
        ...     {"word": " fine", "start": 8.5, "end": 9.0}]}]
        >>> end_words_by(segs, 1.5)
        >>> [(w["word"], w["start"], w["end"]) for w in segs[0]["words"]], segs[0]["end"]
        ([(' an', 0.0, 0.5), (' of', 0.5, 1.0), (' fine', 1.0, 1.5)], 1.5)
    """
    words = [w for seg in segments for w in seg.get("words") or []]
    late = next((i for i, w in enumerate(words) if w["end"] > t), None)
    if late is None:
        return
    lo = min(float(words[late]["start"]), t)
    step = (t - lo) / (len(words) - late)
    for k, w in enumerate(words[late:]):
        w["start"], w["end"] = round(lo + k * step, 3), round(lo + (k + 1) * step, 3)
    for seg in segments:
        if seg.get("words"):
            seg["start"], seg["end"] = min(seg["start"], seg["words"][0]["start"]), min(seg["end"], t)


def transcribe_then_align(model: Any, audio: np.ndarray, *, language: str | None, beam_size: int,
                          initial_prompt: str | None = None) -> tuple[list[dict[str, Any]], Any]:
    """Decode ``audio`` with the plain loop's settings, then time its words window by window.

    Args:
        model: A loaded :class:`faster_whisper.WhisperModel`.
        audio: 16 kHz mono float32 samples.
        language: The language code, or ``None`` to detect it.
        beam_size: Beam size of the decoding.
        initial_prompt: Text the first window is conditioned on (the end of the previous chunk's transcript
            when a long file is decoded chunk by chunk: conditioning goes on across the cut).

    Returns:
        ``(segments, info)``: one dict per decoded segment with text (``"start"``, ``"end"``, ``"tokens"``,
        ``"avg_logprob"``, ``"no_speech_prob"``, ``"compression_ratio"`` and ``"words"``, each word a dict
        with ``word``, ``start``, ``end``, ``probability``), in order; ``info`` is faster-whisper's
        ``TranscriptionInfo``.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    segments, info = model.transcribe(audio, language=language, beam_size=beam_size, word_timestamps=False,
                                      vad_filter=False, condition_on_previous_text=True,
                                      initial_prompt=initial_prompt or None)
    fe = model.feature_extractor
    features = fe(audio)  # the same log-mel faster-whisper decodes from (its clamp is over the whole file)
    content_frames = features.shape[-1] - 1
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                          language=info.language)

    def align(group: list[Any], last_speech: float) -> tuple[list[dict[str, Any]], float]:
        seek = group[0].seek
        size = min(fe.nb_max_frames, content_frames - seek)
        encoder_output = model.encode(pad_or_trim(features[:, seek:seek + size]))
        segs = [{"seek": seek, "start": s.start, "end": s.end, "tokens": list(s.tokens),
                 "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
                 "compression_ratio": s.compression_ratio} for s in group]
        last = model.add_word_timestamps([segs], tokenizer, encoder_output, size, PREPEND_PUNCTUATION,
                                         APPEND_PUNCTUATION, last_speech_timestamp=last_speech)
        return segs, float(last or last_speech)

    out: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kdh-align") as pool:
        pending: Future[tuple[list[dict[str, Any]], float]] | None = None
        last_speech = 0.0
        for group in window_groups(segments):  # decoding the next window overlaps aligning this one
            if pending is not None:
                done, last_speech = pending.result()
                end_words_by(done, group[0].seek * fe.time_per_frame)
                last_speech = min(last_speech, group[0].seek * fe.time_per_frame)
                out.extend(done)
            pending = pool.submit(align, group, last_speech)
        if pending is not None:
            out.extend(pending.result()[0])
    return out, info
