"""Word timings for a long file decoded exactly as the plain faster-whisper loop decodes it.

faster-whisper's ``word_timestamps=True`` does more than time the words: after each 30 s window it moves the
next window's start (``seek``) to the end of the last aligned word. On long recordings with noisy stretches
that changes which audio each window sees, and the transcript loses words the plain loop keeps
(``benchmarks/README.md``, long files). So a long file is decoded with ``word_timestamps=False`` (the plain
loop's text, by construction), and its words are timed afterwards, window by window, with the same
cross-attention alignment faster-whisper uses (:meth:`faster_whisper.WhisperModel.add_word_timestamps`) on
the window each segment was decoded from. The alignment of one window runs in a second thread while the
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

__all__ = ["PREPEND_PUNCTUATION", "APPEND_PUNCTUATION", "transcribe_then_align", "window_groups"]

PREPEND_PUNCTUATION = "\"'“¿([{-"
"""Punctuation merged into the next word (faster-whisper's default)."""
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
"""Punctuation merged into the previous word (faster-whisper's default)."""


def window_groups(segments: Iterable[Any]) -> Iterator[list[Any]]:
    """Group consecutive decoded segments by the window (``seek``, in mel frames) they were decoded from."""
    for _, group in itertools.groupby(segments, key=lambda s: s.seek):
        yield list(group)


def transcribe_then_align(model: Any, audio: np.ndarray, *, language: str | None, beam_size: int
                          ) -> tuple[list[dict[str, Any]], Any]:
    """Decode ``audio`` with the plain loop's settings, then time its words window by window.

    Args:
        model: A loaded :class:`faster_whisper.WhisperModel`.
        audio: 16 kHz mono float32 samples.
        language: The language code, or ``None`` to detect it.
        beam_size: Beam size of the decoding.

    Returns:
        ``(segments, info)``: one dict per decoded segment with text (``"start"``, ``"end"``, ``"tokens"``,
        ``"avg_logprob"``, ``"no_speech_prob"``, ``"compression_ratio"`` and ``"words"``, each word a dict
        with ``word``, ``start``, ``end``, ``probability``), in order; ``info`` is faster-whisper's
        ``TranscriptionInfo``.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    segments, info = model.transcribe(audio, language=language, beam_size=beam_size, word_timestamps=False,
                                      vad_filter=False, condition_on_previous_text=True)
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
                out.extend(done)
            pending = pool.submit(align, group, last_speech)
        if pending is not None:
            out.extend(pending.result()[0])
    return out, info
