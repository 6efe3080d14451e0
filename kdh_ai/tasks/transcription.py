"""Transcription: Whisper (faster-whisper / CTranslate2) pre-labels with a confidence per item.

How an item is transcribed:

1. Its bytes are hashed, its duration probed and its audio decoded to 16 kHz mono. A missing, empty,
   corrupt or non-audio file, or one longer than ``max_duration_s``, becomes a ``status="error"`` record.
2. Voice activity detection (Silero, bundled with faster-whisper) finds speech. No speech: the item is
   ``status="no_speech"`` with empty text (Whisper alone answers "You" to silence).
3. **Short clips are packed**: the speech of several clips is laid into one window of at most
   ``pack_window_s`` seconds with ``pack_gap_s`` of silence between clips, the window is transcribed once with
   word timestamps, and each word goes back to the clip that holds its mid-time. Whisper encodes a full 30 s
   window whatever the input length, so packing spreads that cost over several clips.
   Long clips are transcribed alone, with VAD.
4. ``confidence`` is the geometric mean of the item's word probabilities: a number in [0, 1] that ranks
   items by expected error (higher means fewer errors). It is not a calibrated probability; routing
   calibrates a threshold on a human-labelled slice of each batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from kdh_ai.audio import SAMPLE_RATE, AudioError, load_audio, probe_duration
from kdh_ai.items import Item, sha256_file
from kdh_ai.records import Prediction
from kdh_ai.registry import DEFAULT_TRANSCRIPTION_MODEL, ResolvedModel, resolve_model
from kdh_ai.tasks.base import Prelabeler, TaskType

__all__ = ["Transcriber", "TranscribeOptions", "TranscriptionTask"]

logger = logging.getLogger(__name__)


@pydantic_dataclass(config=ConfigDict(extra="forbid", frozen=True))
class TranscribeOptions:
    """Options of the transcription job (flags of ``kdh prelabel transcribe`` or keys of its YAML).

    Attributes:
        model: A registry name (``kdh models list``) or a local CTranslate2 Whisper directory.
        compute_type: CTranslate2 compute type. ``int8`` is the fastest on CPUs and saves memory.
        beam_size: Beam width of decoding (1 = greedy).
        language: Language code (``"en"``, ``"sw"``...); ``None`` detects it (multilingual models).
        vad: Detect speech first; items without speech become ``no_speech`` (strongly recommended).
        pack_short_clips: Transcribe several short clips in one Whisper window (faster, same accuracy).
        pack_max_clip_s: Clips with at most this much speech are packed.
        pack_window_s: Length of a packed window (Whisper's window is 30 s).
        pack_gap_s: Silence between packed clips.
        max_duration_s: Longer files are refused as errors (protects the batch from a stray 10-hour file).
        cpu_threads: Threads for CTranslate2 (0 = its default).
    """

    model: str = DEFAULT_TRANSCRIPTION_MODEL
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = "int8"
    beam_size: int = Field(5, ge=1, le=16)
    language: str | None = None
    vad: bool = True
    pack_short_clips: bool = True
    pack_max_clip_s: float = Field(15.0, gt=0, le=28)
    pack_window_s: float = Field(28.0, ge=5, le=30)
    pack_gap_s: float = Field(1.0, ge=0.2, le=5)
    max_duration_s: float = Field(4 * 3600.0, gt=0)
    cpu_threads: int = Field(0, ge=0)

    def decode_signature(self) -> dict[str, Any]:
        """The options that change the model's answers (they go into the config hash)."""
        return {"compute_type": self.compute_type, "beam_size": self.beam_size, "language": self.language,
                "vad": self.vad, "pack_short_clips": self.pack_short_clips,
                "pack_max_clip_s": self.pack_max_clip_s, "pack_window_s": self.pack_window_s,
                "pack_gap_s": self.pack_gap_s}


class TranscriptionTask(TaskType):
    """Transcription in Label Studio: an Audio player and a TextArea pre-filled with the model's text."""

    name: ClassVar[str] = "transcription"
    item_kind: ClassVar[str] = "audio"
    from_name: ClassVar[str] = "transcription"
    to_name: ClassVar[str] = "audio"

    def label_config(self, *, labels: Iterable[str] | None = None) -> str:
        return ('<View>\n  <Audio name="audio" value="$audio"/>\n'
                '  <TextArea name="transcription" toName="audio" rows="4" editable="true" '
                'maxSubmissions="1" placeholder="Type what is said"/>\n</View>')

    def answer_to_result(self, answer: str) -> list[dict[str, Any]]:
        return [{"from_name": self.from_name, "to_name": self.to_name, "type": "textarea",
                 "value": {"text": [answer]}}]

    def result_to_answer(self, result: list[dict[str, Any]]) -> str | None:
        for r in result or []:
            if r.get("from_name") == self.from_name and r.get("type") == "textarea":
                texts = r.get("value", {}).get("text", [])
                return " ".join(t.strip() for t in texts if t and t.strip())
        return None


@dataclass
class _Pending:
    """A short clip waiting in the pack buffer."""

    item: Item
    sha256: str
    duration_s: float
    audio: np.ndarray  # the speech span of the clip
    offset_s: float  # where the speech span starts in the original clip
    start_in_window: float = 0.0
    words: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[int, dict[str, Any]] = field(default_factory=dict)


def _confidence(words: list[dict[str, Any]]) -> float:
    """Geometric mean of word probabilities (0 when there are none)."""
    if not words:
        return 0.0
    logs = [math.log(max(float(w["probability"]), 1e-6)) for w in words]
    return float(min(1.0, max(0.0, math.exp(sum(logs) / len(logs)))))


def _join_words(words: list[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in words).strip()


class Transcriber(Prelabeler):
    """Whisper pre-labeling over a stream of audio items.

    The model loads in the constructor. :meth:`predict` is a lazy generator.

    Args:
        options: The job's options.
        model: An already resolved model (default: resolve ``options.model`` through the registry).

    Example:
        >>> t = Transcriber(TranscribeOptions())               # doctest: +SKIP
        >>> for pred in t.predict([Item("a", path="a.wav")]):  # doctest: +SKIP
        ...     print(pred.status, pred.confidence, pred.text)
    """

    task: ClassVar[str] = "transcription"

    def __init__(self, options: TranscribeOptions, *, model: ResolvedModel | None = None) -> None:
        from faster_whisper import WhisperModel

        self.options = options
        self.resolved = model or resolve_model(options.model)
        self.model = WhisperModel(str(self.resolved.path), device="cpu", compute_type=options.compute_type,
                                  cpu_threads=options.cpu_threads)
        self.multilingual = bool(self.model.model.is_multilingual)
        self.language = options.language or (None if self.multilingual else "en")
        self.model_info = {"name": self.resolved.name, "version": self.resolved.version}
        bin_path = self.resolved.path / "model.bin"
        identity = {"name": self.resolved.name, "version": self.resolved.version,
                    "model_bin_size": bin_path.stat().st_size if bin_path.exists() else None,
                    "decode": options.decode_signature(), "engine": "faster-whisper"}
        self.config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------------------------------------------
    def _error(self, item: Item, message: str, sha: str | None, payload: dict[str, Any] | None = None
               ) -> list[Prediction]:
        return [Prediction.failed(item_id=item.item_id, task=self.task, error=message, model=self.model_info,
                                 config_hash=self.config_hash, source=item.path, sha256=sha, payload=payload)]

    def _record(self, item: Item, sha: str, duration: float, text: str, words: list[dict[str, Any]],
                segments: list[dict[str, Any]], language: str | None) -> Prediction:
        status = "ok" if text else "no_speech"
        return Prediction(item_id=item.item_id, task=self.task, text=text,
                          confidence=_confidence(words) if text else 1.0, status=status,
                          model=self.model_info, config_hash=self.config_hash, source=item.path, sha256=sha,
                          payload={"duration_s": round(duration, 3), "language": language,
                                   "segments": segments})

    def _speech_span(self, audio: np.ndarray) -> tuple[int, int] | None:
        """First and last speech sample found by VAD (padded by 0.2 s), or None when there is no speech."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        spans = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=500))
        if not spans:
            return None
        pad = int(0.2 * SAMPLE_RATE)
        return max(0, spans[0]["start"] - pad), min(len(audio), spans[-1]["end"] + pad)

    def _transcribe(self, audio: np.ndarray, *, vad: bool) -> tuple[list[Any], str | None]:
        segments, info = self.model.transcribe(
            audio, language=self.language, beam_size=self.options.beam_size, word_timestamps=True,
            vad_filter=vad, condition_on_previous_text=False)
        return list(segments), info.language

    def _single(self, item: Item, sha: str, audio: np.ndarray) -> Prediction:
        """Transcribe one (long) clip on its own."""
        duration = len(audio) / SAMPLE_RATE
        segs, language = self._transcribe(audio, vad=self.options.vad)
        words: list[dict[str, Any]] = []
        segments = []
        for s in segs:
            sw = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                   "probability": round(w.probability, 4)} for w in (s.words or [])]
            words.extend(sw)
            segments.append({"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip(),
                             "avg_logprob": round(s.avg_logprob, 4), "no_speech_prob": round(s.no_speech_prob, 4),
                             "compression_ratio": round(s.compression_ratio, 4), "words": sw})
        text = " ".join(s["text"] for s in segments if s["text"]).strip()
        return self._record(item, sha, duration, text, words, segments, language)

    def _flush(self, pending: list[_Pending]) -> list[Prediction]:
        """Transcribe a packed window and hand each word back to its clip."""
        if not pending:
            return []
        gap = np.zeros(int(self.options.pack_gap_s * SAMPLE_RATE), dtype=np.float32)
        parts: list[np.ndarray] = []
        pos = 0.0
        for i, p in enumerate(pending):
            if i:
                parts.append(gap)
                pos += len(gap) / SAMPLE_RATE
            p.start_in_window = pos
            parts.append(p.audio)
            pos += len(p.audio) / SAMPLE_RATE
        window = np.concatenate(parts)
        segs, language = self._transcribe(window, vad=False)
        half_gap = self.options.pack_gap_s / 2
        for si, s in enumerate(segs):
            for w in s.words or []:
                mid = (w.start + w.end) / 2
                owner = None
                for p in pending:
                    lo = p.start_in_window - half_gap
                    hi = p.start_in_window + len(p.audio) / SAMPLE_RATE + half_gap
                    if lo <= mid < hi:
                        owner = p
                        break
                if owner is None:
                    continue
                shift = owner.offset_s - owner.start_in_window
                word = {"word": w.word, "start": round(max(0.0, w.start + shift), 3),
                        "end": round(max(0.0, w.end + shift), 3), "probability": round(w.probability, 4)}
                owner.words.append(word)
                seg = owner.segments.setdefault(si, {
                    "avg_logprob": round(s.avg_logprob, 4), "no_speech_prob": round(s.no_speech_prob, 4),
                    "compression_ratio": round(s.compression_ratio, 4), "words": []})
                seg["words"].append(word)
        out = []
        for p in pending:
            segments = []
            for seg in p.segments.values():
                ws = seg["words"]
                segments.append({"start": ws[0]["start"], "end": ws[-1]["end"], "text": _join_words(ws),
                                 "avg_logprob": seg["avg_logprob"], "no_speech_prob": seg["no_speech_prob"],
                                 "compression_ratio": seg["compression_ratio"], "words": ws})
            out.append(self._record(p.item, p.sha256, p.duration_s, _join_words(p.words), p.words, segments,
                                    language))
        return out

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        """Lazily transcribe items; packed clips are yielded when their window is full (or at the end)."""
        opts = self.options
        pending: list[_Pending] = []
        packed_s = 0.0
        for item in items:
            if item.error:
                yield self._error(item, item.error, None)
                continue
            if not item.path:
                yield self._error(item, "item has no audio path; add it to the manifest", None)
                continue
            try:
                sha = sha256_file(item.path)
            except FileNotFoundError:
                yield self._error(item, f"file not found: {item.path}; check the path in the manifest or "
                                        "restore the file", None)
                continue
            except IsADirectoryError:
                yield self._error(item, f"not a regular file: {item.path}; give the path of an audio file", None)
                continue
            except OSError as exc:
                yield self._error(item, f"cannot read {item.path}: {exc.strerror}; fix the file's permissions "
                                        "or copy it again", None)
                continue
            try:
                duration = probe_duration(item.path)
                if duration > opts.max_duration_s:
                    yield self._error(item, f"audio is {duration:.0f} s long, over max_duration_s="
                                            f"{opts.max_duration_s:.0f}; split the file or raise the limit",
                                      sha, {"duration_s": round(duration, 3)})
                    continue
                audio = load_audio(item.path)
            except AudioError as exc:
                yield self._error(item, str(exc), sha)
                continue
            duration = len(audio) / SAMPLE_RATE
            span = self._speech_span(audio) if opts.vad else (0, len(audio))
            if span is None:
                yield [self._record(item, sha, duration, "", [], [], self.language)]
                continue
            speech = audio[span[0]:span[1]]
            speech_s = len(speech) / SAMPLE_RATE
            if not (opts.pack_short_clips and speech_s <= opts.pack_max_clip_s):
                yield [self._single(item, sha, audio)]
                continue
            needed = speech_s + (opts.pack_gap_s if pending else 0.0)
            if pending and packed_s + needed > opts.pack_window_s:
                yield self._flush(pending)
                pending, packed_s, needed = [], 0.0, speech_s
            pending.append(_Pending(item, sha, duration, speech, span[0] / SAMPLE_RATE))
            packed_s += needed
        if pending:
            yield self._flush(pending)
