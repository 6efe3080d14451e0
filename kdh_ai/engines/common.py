"""What the Whisper engines share: the job's options, reading an item, voice activity, confidence, the record.

Both engines (:mod:`kdh_ai.engines.faster_whisper`, the default, and :mod:`kdh_ai.engines.openai_whisper`)
read an item the same way, find its speech with the same VAD, score an answer the same way and write the
same :class:`~kdh_ai.records.Prediction`; those rules live here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from kdh_ai.audio import SAMPLE_RATE, AudioError, load_audio, probe_duration
from kdh_ai.errors import InvalidInputError
from kdh_ai.items import Item, sha256_file
from kdh_ai.records import Prediction
from kdh_ai.registry import DEFAULT_TRANSCRIPTION_MODEL
from kdh_ai.segments import cut_segments, empty_confidence, word_confidence

__all__ = ["ENGINES", "VAD_FRAME", "PlausibilityCheck", "TranscribeOptions", "UnreadableItem", "check_item",
           "empty_confidence", "error_record", "join_words", "read_item_audio", "segment_record", "speech_bounds",
           "transcription_record", "vad_probabilities", "word_confidence", "word_record", "work_segments"]

VAD_FRAME = 512
"""Samples per Silero VAD speech probability (32 ms at 16 kHz)."""

ENGINES: tuple[str, ...] = ("faster-whisper", "openai-whisper")
"""Transcription engines: faster-whisper (CTranslate2, the default) or OpenAI's ``whisper`` package
(:mod:`kdh_ai.engines.openai_whisper`)."""


@pydantic_dataclass(config=ConfigDict(extra="forbid", frozen=True))
class TranscribeOptions:
    """Options of the transcription job (flags of ``kdh prelabel transcribe`` or keys of its YAML).

    Attributes:
        model: A registry name (``kdh models list``) or a local CTranslate2 Whisper directory.
        compute_type: CTranslate2 compute type. ``int8`` is the fastest on CPUs and saves memory.
        beam_size: Beam width of decoding (1 = greedy).
        language: Language code (``"en"``, ``"sw"``...); ``None`` detects it (multilingual models).
        vad: Detect speech first; items without speech become ``no_speech`` (strongly recommended).
        pack_short_clips: Transcribe several short clips in one Whisper window (off by default). Packing
            is faster, but a packed clip's answer depends on which clips share its window (Whisper's
            encoder attends across the whole window and its decoder reads the previous clip's words): on the
            demo's own clips it turned "in being comparatively modern." into "the" at a confidence near 1.
            Off: every clip (and every piece of a long file) is decoded in a window of its own, so an item's
            answer depends only on its own audio (windows of different items are still decoded together
            in a batch, which does not change their text).
        pack_max_clip_s: Clips with at most this much speech are one piece; long files cut at pauses
            (``long_audio="packed"``) are cut into pieces of at most this length.
        pack_window_s: Length of a packed window (Whisper's window is 30 s).
        pack_gap_s: Silence between packed clips.
        long_audio: ``"whole"`` (default): audio with more speech than ``pack_max_clip_s`` is transcribed
            whole, window after window, by faster-whisper's own loop with the plain loop's settings (its VAD
            filter off: VAD has already found the speech), so its text is the plain loop's. ``"packed"``: it is cut at VAD pauses and the pieces are decoded in windows of
            their own (packed with other pieces when ``pack_short_clips``): faster on long files but words
            at the cuts are lost (measured in ``benchmarks/README.md``).
        batch_size: Windows decoded together in one model call (speed only; 1 = one at a time).
        workers: Decoding workers (CTranslate2 model replicas decoding batches at the same time; 2 uses both
            cores of the hub's machines while the next batch's audio is read and VAD runs).
        redo_checks: Check every piece's transcript against its speech without trusting Whisper's own
            probabilities (words per second of speech, words stretched over speech, speech no word covers)
            and decode a failing piece again on its own; an item that still fails keeps the better
            transcript, half its confidence and a ``check`` entry in its payload saying why.
        max_duration_s: Longer files are refused as errors (protects the batch from a stray 10-hour file).
        cpu_threads: Threads per decoding worker (0 = the machine's cores divided by ``workers``).
        engine: ``"faster-whisper"`` (default) or ``"openai-whisper"`` (OpenAI's reference implementation on the
            same weights; see :mod:`kdh_ai.engines.openai_whisper` for the options that apply to it).
        second_opinion: A second model (registry name or local directory, as ``model``) that transcribes every
            decoded item too; their disagreement lowers the item's routing score (:mod:`kdh_ai.second_opinion`).
            ``None`` (default): routing uses the confidence alone.
        segment_over_s: A recording longer than this (s) is also cut into **work segments** of at most about
            30 s at pauses (``payload["work_segments"]``, :func:`kdh_ai.segments.cut_segments`), each with its
            text, words, confidence and plausibility check, so that routing and review work on segments;
            shorter clips stay whole. The file's own ``text`` and ``confidence`` are unchanged.
    """

    model: str = DEFAULT_TRANSCRIPTION_MODEL
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = "int8"
    beam_size: int = Field(5, ge=1, le=16)
    language: str | None = None
    vad: bool = True
    pack_short_clips: bool = False
    pack_max_clip_s: float = Field(15.0, gt=0, le=28)
    pack_window_s: float = Field(28.0, ge=5, le=30)
    pack_gap_s: float = Field(1.0, ge=0.2, le=5)
    long_audio: Literal["whole", "packed"] = "whole"
    batch_size: int = Field(8, ge=1, le=64)
    workers: int = Field(2, ge=1, le=16)
    redo_checks: bool = True
    max_duration_s: float = Field(4 * 3600.0, gt=0)
    cpu_threads: int = Field(0, ge=0)
    engine: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    second_opinion: str | None = None
    segment_over_s: float = Field(30.0, gt=0)

    def __post_init__(self) -> None:
        if self.second_opinion is not None and self.second_opinion == self.model:
            raise InvalidInputError(f"second_opinion must name another model than model ({self.model!r}): the same "
                             "model agrees with itself; try whisper-base for whisper-tiny.en, or the reverse")

    def decode_signature(self) -> dict[str, Any]:
        """The options that change the model's answers (they go into the config hash)."""
        return {"compute_type": self.compute_type, "beam_size": self.beam_size, "language": self.language,
                "vad": self.vad, "pack_short_clips": self.pack_short_clips,
                "pack_max_clip_s": self.pack_max_clip_s, "pack_window_s": self.pack_window_s,
                "pack_gap_s": self.pack_gap_s, "redo_checks": self.redo_checks, "engine_version": 5,
                "long_audio": self.long_audio, "segment_over_s": self.segment_over_s}



# ----------------------------------------------------------------------------------------------------------
# Reading an item


@dataclass(frozen=True)
class UnreadableItem:
    """Why an item cannot be transcribed: it becomes a ``status="error"`` record saying what to do."""

    message: str
    sha256: str | None = None
    payload: dict[str, Any] | None = None


def check_item(item: Item, *, max_duration_s: float) -> tuple[str, float] | UnreadableItem:
    """The item's SHA-256 and duration (from its header, nothing decoded yet), or why it cannot be read.

    A manifest error, a missing path, a missing, unreadable, empty or non-audio file, and a file longer
    than ``max_duration_s`` are refused with a message that names the problem and what to do.
    """
    if item.error:
        return UnreadableItem(item.error)
    if not item.path:
        return UnreadableItem("item has no audio path; add it to the manifest")
    try:
        sha = sha256_file(item.path)
    except FileNotFoundError:
        return UnreadableItem(f"file not found: {item.path}; check the path in the manifest or restore the file")
    except IsADirectoryError:
        return UnreadableItem(f"not a regular file: {item.path}; give the path of an audio file")
    except OSError as exc:
        return UnreadableItem(f"cannot read {item.path}: {exc.strerror}; fix the file's permissions or copy it "
                              "again")
    try:
        duration = probe_duration(item.path)
    except AudioError as exc:
        return UnreadableItem(str(exc), sha)
    if duration > max_duration_s:
        return UnreadableItem(f"audio is {duration:.0f} s long, over max_duration_s={max_duration_s:.0f}; "
                              "split the file or raise the limit", sha, {"duration_s": round(duration, 3)})
    return sha, duration


def read_item_audio(item: Item, *, max_duration_s: float) -> tuple[str, np.ndarray] | UnreadableItem:
    """The item's SHA-256 and its audio decoded to 16 kHz mono, or why it cannot be read.

    Refuses what :func:`check_item` refuses, and a corrupt, damaged or truncated file.
    """
    checked = check_item(item, max_duration_s=max_duration_s)
    if isinstance(checked, UnreadableItem):
        return checked
    sha, _ = checked
    try:
        return sha, load_audio(item.path)  # type: ignore[arg-type]
    except AudioError as exc:
        return UnreadableItem(str(exc), sha)


# ----------------------------------------------------------------------------------------------------------
# Voice activity


def vad_probabilities(audio: np.ndarray) -> np.ndarray:
    """Silero VAD's speech probability for every :data:`VAD_FRAME` samples of 16 kHz audio."""
    from faster_whisper.vad import get_vad_model

    padded = np.pad(audio, (0, VAD_FRAME - len(audio) % VAD_FRAME))
    return np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)


def speech_bounds(probs: np.ndarray, n_samples: int, *, pad_s: float = 0.4) -> tuple[int, int] | None:
    """The sample span from the first to the last frame that VAD finds even weakly speech-like (>= 0.2),
    padded by ``pad_s`` (a strict VAD cuts off the quiet ends of band-limited speech); ``None`` when no frame
    reaches 0.5 (no speech).

    Example:
        >>> probs = np.array([0.0, 0.3, 0.9, 0.9, 0.1, 0.0], dtype=np.float32)
        >>> speech_bounds(probs, 6 * VAD_FRAME, pad_s=0.0), speech_bounds(probs * 0.5, 6 * VAD_FRAME)
        ((512, 2048), None)
    """
    if probs.size == 0 or float(probs.max()) < 0.5:
        return None
    pad = int(pad_s * SAMPLE_RATE)
    weak = np.flatnonzero(probs >= 0.2)
    return max(0, int(weak[0]) * VAD_FRAME - pad), min(n_samples, (int(weak[-1]) + 1) * VAD_FRAME + pad)


# ----------------------------------------------------------------------------------------------------------
# Words, segments, confidence and the record


def join_words(words: list[dict[str, Any]]) -> str:
    """The text of a list of word records (Whisper's words carry their leading space).

    Example:
        >>> join_words([{"word": " Hello"}, {"word": ","}, {"word": " world."}])
        'Hello, world.'
    """
    return "".join(w["word"] for w in words).strip()


def word_record(word: str, start: float, end: float, probability: float, *, offset_s: float = 0.0
                ) -> dict[str, Any]:
    """A word of the payload: its text, start and end (seconds into the item) and probability."""
    return {"word": word, "start": round(max(0.0, float(start) + offset_s), 3),
            "end": round(max(0.0, float(end) + offset_s), 3), "probability": round(float(probability), 4)}


def segment_record(words: list[dict[str, Any]], *, avg_logprob: float, no_speech_prob: float,
                   compression_ratio: float) -> dict[str, Any]:
    """A decoder segment of the payload (keys in the payload schema's order); ``words`` must not be empty."""
    return {"start": words[0]["start"], "end": words[-1]["end"], "text": join_words(words),
            "avg_logprob": round(float(avg_logprob), 4), "no_speech_prob": round(float(no_speech_prob), 4),
            "compression_ratio": round(float(compression_ratio), 4), "words": words}


def error_record(item: Item, failure: UnreadableItem, *, task: str, model: dict[str, Any], config_hash: str
                 ) -> Prediction:
    """The ``status="error"`` record of an item that cannot be transcribed."""
    return Prediction.failed(item_id=item.item_id, task=task, error=failure.message, model=model,
                             config_hash=config_hash, source=item.path, sha256=failure.sha256,
                             payload=failure.payload)


@dataclass(frozen=True)
class PlausibilityCheck:
    """Is a stretch's transcript plausible for its speech? Uses VAD and word timings only, never Whisper's
    probabilities (they cannot see the words that are missing: "the" for "in being comparatively modern."
    scored near 1).

    On stretches with at least ``min_speech_s`` of speech (VAD probability >= 0.5):

    1. words per second of speech within ``[min_words_per_speech_s, max_words_per_speech_s]`` (read speech
       runs at 2-4; "the" for 1.8 s of speech is 0.6);
    2. no word stretched over more than ``max_word_speech_s`` of speech (the word aligner stretches the last
       word it has over speech whose words are missing, so word timestamps alone look like full coverage);
    3. at most ``max_uncovered_s`` of speech, in one stretch or after the last word, that no word covers.
    """

    min_speech_s: float = 1.0
    min_words_per_speech_s: float = 1.0
    max_words_per_speech_s: float = 6.5
    max_word_speech_s: float = 1.6
    max_uncovered_s: float = 1.0

    @staticmethod
    def speech_s(speech: np.ndarray, lo: float, hi: float) -> float:
        """Seconds of speech (VAD probability >= 0.5) between ``lo`` and ``hi`` (seconds into ``speech``)."""
        if hi <= lo:
            return 0.0
        a = int(lo * SAMPLE_RATE) // VAD_FRAME
        b = int(math.ceil(hi * SAMPLE_RATE / VAD_FRAME))
        return float(np.count_nonzero(speech[max(0, a):max(0, b)] >= 0.5)) * VAD_FRAME / SAMPLE_RATE

    def problems(self, words: list[dict[str, Any]], speech: np.ndarray, *, offset_s: float, length_s: float
                 ) -> list[str]:
        """What is implausible (empty: nothing) about ``words`` (times in the recording) for the stretch of
        ``length_s`` seconds starting at ``offset_s`` whose VAD speech probabilities are ``speech``.

        Example:
            >>> speech = np.ones(int(3.0 * SAMPLE_RATE) // VAD_FRAME, np.float32)  # 3 s of clear speech
            >>> PlausibilityCheck().problems([{"word": " the", "start": 0.1, "end": 0.3}], speech,
            ...                              offset_s=0.0, length_s=3.0)[0]
            '1 words for 3.0 s of speech (0.34/s, expected at least 1/s): words are missing'
        """
        total = self.speech_s(speech, 0.0, length_s)
        if total < self.min_speech_s:
            return []
        out: list[str] = []
        spans = [(w["start"] - offset_s, w["end"] - offset_s, w["word"].strip()) for w in words]
        rate = len(spans) / total
        if rate < self.min_words_per_speech_s:
            out.append(f"{len(spans)} words for {total:.1f} s of speech ({rate:.2f}/s, expected at least "
                       f"{self.min_words_per_speech_s:g}/s): words are missing")
        elif rate > self.max_words_per_speech_s:
            out.append(f"{len(spans)} words for {total:.1f} s of speech ({rate:.2f}/s, expected at most "
                       f"{self.max_words_per_speech_s:g}/s): words are invented or repeated")
        longest = max(spans, key=lambda w: self.speech_s(speech, w[0], w[1]), default=None)
        if longest is not None:
            stretched = self.speech_s(speech, longest[0], longest[1])
            if stretched > self.max_word_speech_s:
                out.append(f"the word {longest[2]!r} is stretched over {stretched:.1f} s of speech: words are "
                           "missing")
        reach, gaps = 0.0, []
        for lo, hi, _ in sorted(spans):
            if lo > reach:
                gaps.append((reach, lo))
            reach = max(reach, hi)
        gaps.append((reach, length_s))
        worst = max((self.speech_s(speech, lo, hi) for lo, hi in gaps), default=0.0)
        if worst > self.max_uncovered_s:
            out.append(f"{worst:.1f} s of speech in one stretch has no words")
        return out


def work_segments(words: list[dict[str, Any]], *, duration_s: float, speech_probs: np.ndarray | None,
                  check: PlausibilityCheck | None = PlausibilityCheck(), failed_check_factor: float = 0.5
                  ) -> list[dict[str, Any]]:
    """The work segments of a long recording as stored in ``payload["work_segments"]``.

    :func:`kdh_ai.segments.cut_segments` cuts the words at pauses (skipped speech becomes a wordless,
    low-confidence segment); then every segment with words gets the engine's plausibility check
    (:class:`PlausibilityCheck`, ``None``: skip it) on its own stretch of audio, so a file whose check fails
    says *which* segments are suspect: a failing segment's ``check`` lists its problems and its confidence is
    multiplied by ``failed_check_factor`` (once, also when ``cut_segments`` flagged it already).
    """
    segments = cut_segments(words, duration_s=duration_s, speech_probs=speech_probs,
                            frame_s=VAD_FRAME / SAMPLE_RATE)
    out = []
    for seg in segments:
        if check is not None and speech_probs is not None and seg.words:
            first = int(seg.start * SAMPLE_RATE) // VAD_FRAME
            offset = first * VAD_FRAME / SAMPLE_RATE
            last = int(math.ceil(seg.end * SAMPLE_RATE / VAD_FRAME))
            problems = check.problems(seg.words, speech_probs[first:last], offset_s=offset,
                                      length_s=seg.end - offset)
            if problems:
                if not seg.check:
                    seg.confidence *= failed_check_factor
                seg.check = [*(seg.check or []), *problems]
        out.append(seg.to_dict())
    return out


def transcription_record(item: Item, *, task: str, sha256: str, duration_s: float, text: str,
                         words: list[dict[str, Any]], segments: list[dict[str, Any]], language: str | None,
                         speech_max: float | None, model: dict[str, Any], config_hash: str,
                         check: list[str] | None = None, failed_check_factor: float = 0.5,
                         segment_over_s: float | None = None, speech_probs: np.ndarray | None = None,
                         segment_check: PlausibilityCheck | None = PlausibilityCheck()) -> Prediction:
    """The record of a transcribed item: ``ok``, or ``no_speech`` when ``text`` (:func:`join_words` of
    ``words``) is empty.

    ``confidence`` is :func:`word_confidence`, or :func:`empty_confidence` for an empty transcript. A
    non-empty ``check`` (the transcript failed the plausibility check even when decoded again on its own:
    Whisper's probabilities cannot see words that are missing) multiplies the confidence by
    ``failed_check_factor``, so routing sends the item to people, and the payload says why.

    A recording longer than ``segment_over_s`` also gets ``payload["work_segments"]`` (:func:`work_segments`
    of ``words``, the VAD's ``speech_probs`` and ``segment_check``); shorter ones (and ``None``) stay whole.
    """
    payload: dict[str, Any] = {"duration_s": round(duration_s, 3), "language": language, "segments": segments}
    if speech_max is not None:
        payload["speech_prob_max"] = round(speech_max, 4)
    confidence = word_confidence(words) if text else empty_confidence(speech_max)
    if check:
        confidence *= failed_check_factor
        payload["check"] = {"passed": False, "problems": check}
    if segment_over_s is not None and duration_s > segment_over_s:
        payload["work_segments"] = work_segments(words, duration_s=duration_s, speech_probs=speech_probs,
                                                 check=segment_check, failed_check_factor=failed_check_factor)
    return Prediction(item_id=item.item_id, task=task, text=text, confidence=confidence,
                      status="ok" if text else "no_speech", model=model, config_hash=config_hash,
                      source=item.path, sha256=sha256, payload=payload)
