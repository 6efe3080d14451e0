"""Re-align people's text to the audio: word times for a segment whose text people edited.

When people correct a segment, the model's word times no longer fit the words. :class:`Realigner` times the
people's words on the segment's own audio with Whisper's cross-attention alignment, the alignment
faster-whisper uses for its word timestamps (:meth:`faster_whisper.WhisperModel.add_word_timestamps`, after
Radford et al., 2022, *Robust Speech Recognition via Large-Scale Weak Supervision*): the text is forced, only
its timing is searched. A segment is at most about 30 s (one Whisper window), so one encoder pass aligns it.

The segment keeps its bounds: aligned words are clipped to them. Only the audio of the segments to align is
kept in memory (:func:`read_spans` decodes the file once, as a stream).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.audio import SAMPLE_RATE

__all__ = ["Realigner", "read_spans"]

logger = logging.getLogger(__name__)


def read_spans(path: str | Path, spans: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    """The audio of each ``(start, end)`` span (seconds) of a file, as float32 mono at 16 kHz, decoded in one
    streaming pass that keeps only those spans.

    Raises:
        kdh_ai.audio.AudioError: The file cannot be read.

    Example:
        >>> from kdh_ai.audio import load_audio
        >>> from kdh_ai.samples import ljspeech_clip
        >>> path = ljspeech_clip("LJ001-0001")
        >>> a, b = read_spans(path, [(0.5, 1.0), (2.0, 2.25)])
        >>> len(a), len(b), bool(np.allclose(b, load_audio(path)[32000:36000], atol=1e-4))
        (8000, 4000, True)
    """
    import av

    from kdh_ai.audio import AudioError

    bounds = [(int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))) for a, b in spans]
    pieces: list[list[np.ndarray]] = [[] for _ in spans]
    last = max((b for _, b in bounds), default=0)
    pos = 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    lo, hi = pos, pos + len(chunk)
                    for k, (a, b) in enumerate(bounds):
                        if a < hi and b > lo:
                            pieces[k].append(chunk[max(a, lo) - lo:min(b, hi) - lo])
                    pos = hi
                if pos >= last:
                    break
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise AudioError(f"cannot read {Path(path).name} to re-align edited segments: {exc}") from exc
    return [np.concatenate(p).astype(np.float32) / 32768.0 if p else np.zeros(0, np.float32) for p in pieces]


class Realigner:
    """Forced alignment of a segment's text to its audio with a Whisper model (CTranslate2, CPU).

    The model loads in the constructor (a few seconds for tiny.en); :meth:`align` then takes well under a
    second per segment on a CPU.

    Args:
        model: A registry name (``kdh models list``) or a local CTranslate2 Whisper directory.
        language: The language of the text (``None``: the model's default, English for ``.en`` models).
        cpu_threads: CTranslate2 threads (0: its default).
    """

    def __init__(self, model: str = "whisper-tiny.en", *, language: str | None = "en", cpu_threads: int = 0) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        from kdh_ai.registry import resolve_model

        path = Path(model) if Path(model).is_dir() else resolve_model(model).path
        self.model_ = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=cpu_threads)
        lang = language if self.model_.model.is_multilingual else None
        self.tokenizer_ = Tokenizer(self.model_.hf_tokenizer, self.model_.model.is_multilingual,
                                    task="transcribe", language=lang or ("en" if self.model_.model.is_multilingual
                                                                         else None))

    def align(self, audio: np.ndarray, text: str, *, start: float, end: float) -> list[dict[str, Any]] | None:
        """Word times of ``text`` spoken in ``audio`` (the segment's samples, starting at ``start`` s).

        Returns:
            The words (``word``, ``start``, ``end``, ``probability``, ``estimated: False``), in the recording's
            time and inside ``[start, end]``; ``None`` when the segment cannot be aligned (no text or audio,
            longer than one 30 s window, or the alignment returned no words).
        """
        from faster_whisper.audio import pad_or_trim

        from kdh_ai.engines.alignment import APPEND_PUNCTUATION, PREPEND_PUNCTUATION

        fe = self.model_.feature_extractor
        if not text.strip() or len(audio) < SAMPLE_RATE // 10 or len(audio) > fe.n_samples:
            return None
        tokens = [t for t in self.tokenizer_.encode(" " + " ".join(text.split())) if t < self.tokenizer_.eot]
        features = fe(audio)
        size = min(fe.nb_max_frames, features.shape[-1] - 1)
        encoder_output = self.model_.encode(pad_or_trim(features[:, :size]))
        segs = [{"seek": 0, "start": 0.0, "end": len(audio) / SAMPLE_RATE, "tokens": tokens}]
        self.model_.add_word_timestamps([segs], self.tokenizer_, encoder_output, size, PREPEND_PUNCTUATION,
                                        APPEND_PUNCTUATION, last_speech_timestamp=0.0)
        words = segs[0].get("words") or []
        if not words or "".join(w["word"] for w in words).split() != text.split():
            return None
        out = []
        for w in words:
            s = min(max(start + float(w["start"]), start), end)
            e = min(max(start + float(w["end"]), s), end)
            out.append({"word": str(w["word"]), "start": round(s, 3), "end": round(e, 3),
                        "probability": round(float(w["probability"]), 4), "estimated": False})
        return out
