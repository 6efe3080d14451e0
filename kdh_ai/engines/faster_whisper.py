"""The default transcription engine: Whisper on faster-whisper (CTranslate2), a confidence per item.

How an item is transcribed:

1. Its bytes are hashed, its duration probed and its audio decoded to 16 kHz mono. A missing, empty,
   corrupt or non-audio file, or one longer than ``max_duration_s``, becomes a ``status="error"`` record.
2. Voice activity detection (Silero, bundled with faster-whisper) finds speech. No speech: the item is
   ``status="no_speech"`` with empty text (Whisper alone answers "You" to silence).
3. The speech becomes **pieces**: a short clip is one piece (its leading and trailing silence trimmed).
   A long file (more speech than ``pack_max_clip_s``) is transcribed whole by faster-whisper, window after
   window (``long_audio="whole"``, the default), or cut at pauses into pieces of at most
   ``pack_max_clip_s`` that are packed like short clips (``long_audio="packed"``: faster, less accurate).
   A file longer than ``stream_chunk_s`` (240 s) on the default path is never held whole: it is read, checked
   by VAD and decoded chunk by chunk, each chunk cut in a pause (:meth:`Transcriber._stream`), so a 2-hour
   recording needs the memory of a short one (``benchmarks/long_memory.py``).
4. **Each piece gets a Whisper window of its own** (its audio padded with silence to 30 s), so an item's
   answer depends only on its own audio, never on which items share its batch (``pack_short_clips=True``
   packs several pieces into one window instead: faster, but a packed clip's text depends on its
   companions, see :class:`TranscribeOptions`).
5. **Windows are decoded in batches** of ``batch_size``: one beam-search call and one word-alignment call
   for the whole batch (each window's text is the same as decoded alone; the tests check it), by
   ``workers`` CTranslate2 replicas at once (both cores busy), while the next items are read and VAD runs.
6. **Checks that do not trust Whisper's probabilities**: a piece whose words are implausible for its
   speech (words per second of VAD speech, a word stretched over speech, speech no word covers), or whose
   text fails Whisper's compression check, is decoded again on its own by faster-whisper's full loop
   (temperature fallback included); the more plausible transcript is kept. An item still implausible gets
   half its confidence and a ``check`` entry in its payload saying why. (Confidence from word probabilities
   cannot see words that are missing: "the" for "in being comparatively modern." scored near 1.)
7. A recording longer than ``segment_over_s`` (30 s) also gets **work segments**
   (``payload["work_segments"]``): its words cut at pauses into segments of at most about 30 s that tile the
   recording, each with its text, words, confidence and plausibility check (speech Whisper skipped becomes a
   wordless, low-confidence segment), so routing and review work on segments
   (:func:`kdh_ai.engines.common.work_segments`).
8. ``confidence`` is the geometric mean of the item's word probabilities: a number in [0, 1] that ranks
   items by expected error (higher means fewer errors). It is not a calibrated probability; routing
   calibrates a threshold on a human-labelled slice of each batch. An empty transcript (``no_speech``)
   gets ``1 -`` the highest speech probability VAD found in the audio: silence about 1, speech that VAD
   nearly missed (noisy, telephone band) about 0.5, and speech Whisper wrote nothing for at most 0.5, so
   routing sends doubtful empties to people instead of auto-accepting them.

Speed and accuracy against a plain faster-whisper loop are measured in ``benchmarks/transcription_speed.py``
(results in ``benchmarks/README.md``).
"""


from __future__ import annotations

import math

import hashlib
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from kdh_ai.audio import SAMPLE_RATE, AudioError, load_audio
from kdh_ai.engines.alignment import APPEND_PUNCTUATION, PREPEND_PUNCTUATION, transcribe_then_align
from kdh_ai.engines.common import (VAD_FRAME, PlausibilityCheck, TranscribeOptions, UnreadableItem, check_item,
                                   error_record, join_words, segment_record, speech_bounds, transcription_record,
                                   vad_probabilities, word_confidence, word_record)
from kdh_ai.engines.streaming import AudioChunks, release_memory, resume_at
from kdh_ai.items import Item
from kdh_ai.records import Prediction
from kdh_ai.registry import ResolvedModel, resolve_model
from kdh_ai.tasks.base import Prelabeler

__all__ = ["Transcriber"]

logger = logging.getLogger(__name__)



# ----------------------------------------------------------------------------------------------------------
# Work in flight: an item (unit) cut into pieces; pieces packed into windows.


@dataclass
class _Unit:
    """An item whose speech is being transcribed."""

    item: Item
    sha256: str
    duration_s: float
    pieces: list[_Piece] = field(default_factory=list)
    remaining: int = 0
    language: str | None = None
    speech_max: float | None = None  # highest VAD speech probability (None without VAD)
    probs: np.ndarray | None = None  # VAD speech probabilities of the whole item (its work segments' evidence)


@dataclass
class _Piece:
    """A stretch of one item's speech, transcribed inside a window."""

    unit: _Unit
    audio: np.ndarray
    offset_s: float  # where the piece starts in the item's audio
    speech: np.ndarray | None = None  # VAD speech probability per 512 samples of the piece
    start_in_window: float = 0.0
    tries: int = 0
    group: int = 0  # pieces to transcribe again, from one window, keep together (0: a fresh piece)
    spans: list[tuple[float, float]] = field(default_factory=list)  # decoder segments that gave it words
    words: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    check: list[str] = field(default_factory=list)  # plausibility problems left after decoding it again

    @property
    def length_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass
class _WholeFile:
    """A long file to transcribe whole (see :meth:`Transcriber._whole`)."""

    item: Item
    sha256: str
    audio: np.ndarray
    speech_max: float | None = None
    probs: np.ndarray | None = None


@dataclass
class _StreamedFile:
    """A long file to read and transcribe chunk by chunk (see :meth:`Transcriber._stream`)."""

    item: Item
    sha256: str
    duration_s: float  # from its header


@dataclass
class _Window:
    """Up to ``pack_window_s`` seconds of pieces separated by silence, decoded as one Whisper window."""

    pieces: list[_Piece] = field(default_factory=list)
    length_s: float = 0.0


@dataclass
class _Decoded:
    """What the model made of one window."""

    segments: list[dict[str, Any]]  # start, end, tokens, words (window time)
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    language: str | None


def _compression_ratio(text: str) -> float:
    from faster_whisper.transcribe import get_compression_ratio

    return float(get_compression_ratio(text)) if text else 0.0


class Transcriber(Prelabeler):
    """Whisper pre-labeling over a stream of audio items.

    The model loads in the constructor. :meth:`predict_batches` is a lazy generator: it holds at most
    ``batch_size`` windows of audio (plus the long file being cut into pieces), whatever the batch size.

    Args:
        options: The job's options.
        model: An already resolved model (default: resolve ``options.model`` through the registry).

    Example:
        >>> t = Transcriber(TranscribeOptions())               # doctest: +SKIP
        >>> for pred in t.predict([Item("a", path="a.wav")]):  # doctest: +SKIP
        ...     print(pred.status, pred.confidence, pred.text)
    """

    task: ClassVar[str] = "transcription"

    # Whisper's own quality checks (faster-whisper's defaults): a window above this compression ratio or below
    # this mean log-probability is decoded again (as in faster-whisper's temperature fallback).
    compression_ratio_threshold: ClassVar[float] = 2.4
    log_prob_threshold: ClassVar[float] = -1.0
    # A piece is transcribed again alone when its words leave more than this much of its speech uncovered
    # at its start or end, or in one stretch inside it.
    max_uncovered_s: ClassVar[float] = 1.0
    # Long audio: VAD speech chunks closer than this are kept in one piece (with the pause between them).
    merge_pause_s: ClassVar[float] = 1.0
    # Plausibility check (independent of Whisper's probabilities), on pieces with at least
    # ``min_check_speech_s`` of speech (VAD): words per second of speech within these bounds (read speech
    # runs at 2-4; "the" for 1.8 s of speech is 0.6), and no word stretched over more than
    # ``max_word_speech_s`` of speech (the word aligner stretches the last word it has over speech whose
    # words are missing, so word timestamps alone look like full coverage).
    min_check_speech_s: ClassVar[float] = 1.0
    min_words_per_speech_s: ClassVar[float] = 1.0
    max_words_per_speech_s: ClassVar[float] = 6.5
    max_word_speech_s: ClassVar[float] = 1.6
    failed_check_factor: ClassVar[float] = 0.5
    # Long files (``long_audio="whole"``, VAD on) longer than ``stream_chunk_s`` are read, VAD-checked and
    # decoded in chunks of at most this length, each cut in the longest pause of its last ``stream_search_s``
    # seconds; each chunk's first window is conditioned on the previous chunk's last ``prompt_words`` words.
    # Memory stays flat whatever the file's length (benchmarks/long_memory.py).
    stream_chunk_s: ClassVar[float] = 240.0
    stream_search_s: ClassVar[float] = 30.0
    prompt_words: ClassVar[int] = 120
    recover_min_s: ClassVar[float] = 1.5

    def __init__(self, options: TranscribeOptions, *, model: ResolvedModel | None = None) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.options = options
        self.resolved = model or resolve_model(options.model)
        threads = options.cpu_threads or max(1, (os.cpu_count() or 1) // options.workers)
        self.model = WhisperModel(str(self.resolved.path), device="cpu", compute_type=options.compute_type,
                                  cpu_threads=threads, num_workers=options.workers)
        self.multilingual = bool(self.model.model.is_multilingual)
        self.language = options.language or (None if self.multilingual else "en")
        self._tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe",
                                    language=self.language or "en")
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])
        self.model_info = {"name": self.resolved.name, "version": self.resolved.version}
        bin_path = self.resolved.path / "model.bin"
        identity = {"name": self.resolved.name, "version": self.resolved.version,
                    "model_bin_size": bin_path.stat().st_size if bin_path.exists() else None,
                    "decode": options.decode_signature(), "engine": "faster-whisper",
                    "empty_confidence": "1-vad_max",
                    "stream": [self.stream_chunk_s, self.stream_search_s, self.prompt_words, self.recover_min_s]}
        self.config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        # Counters (for benchmarks and logs): windows decoded, pieces decoded, pieces sent to another window,
        # tails cut off, pieces decoded alone, pieces decoded again by faster-whisper's loop, pieces (and
        # whole files) still implausible after that.
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"windows": 0, "pieces": 0, "requeued": 0, "tails": 0, "alone": 0,
                                      "second_opinions": 0, "flagged": 0, "chunks": 0}
        self.log_progress = False
        """Show a progress bar in seconds of audio while a long file is decoded chunk by chunk (set by
        :func:`kdh_ai.prelabel.run_prelabel` from its own ``log_progress``)."""

    # ------------------------------------------------------------------------------------------------------
    # Records

    def _record(self, item: Item, sha: str, duration: float, text: str, words: list[dict[str, Any]],
                segments: list[dict[str, Any]], language: str | None, speech_max: float | None,
                check: list[str] | None = None, probs: np.ndarray | None = None) -> Prediction:
        return transcription_record(item, task=self.task, sha256=sha, duration_s=duration, text=text,
                                    words=words, segments=segments, language=language, speech_max=speech_max,
                                    model=self.model_info, config_hash=self.config_hash, check=check,
                                    failed_check_factor=self.failed_check_factor,
                                    segment_over_s=self.options.segment_over_s, speech_probs=probs,
                                    segment_check=self._check if self.options.redo_checks else None)

    def _error(self, item: Item, failure: UnreadableItem) -> Prediction:
        return error_record(item, failure, task=self.task, model=self.model_info, config_hash=self.config_hash)

    def _unit_record(self, unit: _Unit) -> Prediction:
        pieces = sorted(unit.pieces, key=lambda p: p.offset_s)
        words = [w for p in pieces for w in p.words]
        segments = [s for p in pieces for s in p.segments]
        check = [c for p in pieces for c in p.check]
        return self._record(unit.item, unit.sha256, unit.duration_s, join_words(words), words, segments,
                            unit.language or self.language, unit.speech_max, check, unit.probs)

    # ------------------------------------------------------------------------------------------------------
    # Reading an item and cutting it into pieces

    def _prepare(self, item: Item) -> list[Prediction] | _Unit | _WholeFile | _StreamedFile:
        """Read, check and cut one item: a finished record (error, no speech), a unit of pieces, a long
        file to transcribe whole, or a longer one to read and transcribe chunk by chunk."""
        opts = self.options
        checked = check_item(item, max_duration_s=opts.max_duration_s)
        if isinstance(checked, UnreadableItem):
            return [self._error(item, checked)]
        sha, probed = checked
        if opts.vad and opts.long_audio == "whole" and probed > self.stream_chunk_s:
            return _StreamedFile(item, sha, probed)
        try:
            audio = load_audio(item.path)  # type: ignore[arg-type]
        except AudioError as exc:
            return [self._error(item, UnreadableItem(str(exc), sha))]
        duration = len(audio) / SAMPLE_RATE
        if not opts.vad and duration > opts.pack_window_s:
            return _WholeFile(item, sha, audio)
        spans, probs = self._speech_spans(audio)
        speech_max = None if probs is None else float(probs.max(initial=0.0))
        if not spans:
            return [self._record(item, sha, duration, "", [], [], self.language, speech_max, probs=probs)]
        if len(spans) > 1 and opts.long_audio == "whole":
            return _WholeFile(item, sha, audio, speech_max, probs)
        unit = _Unit(item, sha, duration, speech_max=speech_max, probs=probs)
        for start, end in spans:
            speech = None if probs is None else probs[start // VAD_FRAME:(end + VAD_FRAME - 1) // VAD_FRAME]
            unit.pieces.append(_Piece(unit, audio[start:end], start / SAMPLE_RATE, speech))
        unit.remaining = len(unit.pieces)
        return unit

    def _speech_spans(self, audio: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray | None]:
        """Sample spans of the pieces to transcribe (none: no speech), and the VAD's speech probabilities.

        Audio whose speech fits in ``pack_max_clip_s`` is one piece: from the first to the last frame
        that VAD finds even weakly speech-like, padded by 0.4 s (a strict VAD cuts off the quiet ends of
        band-limited speech). Longer audio is cut at VAD pauses into pieces of at most ``pack_max_clip_s``.
        """
        if not self.options.vad:
            return [(0, len(audio))], None
        probs = vad_probabilities(audio)
        bounds = speech_bounds(probs, len(audio))
        if bounds is None:
            return [], probs
        start, end = bounds
        if end - start <= int(self.options.pack_max_clip_s * SAMPLE_RATE):
            return [(start, end)], probs
        return self._cut_at_pauses(probs, len(audio)), probs

    def _cut_at_pauses(self, probs: np.ndarray, n_samples: int) -> list[tuple[int, int]]:
        """Pieces of long audio: VAD speech chunks (Silero's hysteresis, 0.5/0.35, pauses >= 0.3 s), padded
        by 0.3 s, merged while the pause between them is under 1 s and the piece fits in
        ``pack_max_clip_s``; a chunk longer than that is cut at its quietest frame."""
        max_frames = int(self.options.pack_max_clip_s * SAMPLE_RATE) // VAD_FRAME
        min_pause = int(0.3 * SAMPLE_RATE) // VAD_FRAME
        pad = int(0.3 * SAMPLE_RATE) // VAD_FRAME
        merge = int(self.merge_pause_s * SAMPLE_RATE) // VAD_FRAME
        chunks: list[tuple[int, int]] = []
        start, quiet_since = -1, -1
        for i, p in enumerate(probs.tolist()):
            if p >= 0.5:
                if start < 0:
                    start = i
                quiet_since = -1
            elif start >= 0 and p < 0.35:
                if quiet_since < 0:
                    quiet_since = i
                elif i - quiet_since >= min_pause:
                    chunks.append((start, quiet_since))
                    start, quiet_since = -1, -1
        if start >= 0:
            chunks.append((start, quiet_since if quiet_since >= 0 else len(probs)))
        n_frames = len(probs)
        pieces: list[tuple[int, int]] = []
        for s, e in chunks:
            s, e = max(0, s - pad), min(n_frames, e + pad)
            if pieces and s < pieces[-1][1]:
                s = pieces[-1][1]
            if pieces and s - pieces[-1][1] <= merge and e - pieces[-1][0] <= max_frames:
                pieces[-1] = (pieces[-1][0], e)
                continue
            while e - s > max_frames:  # one long stretch of speech: cut at its quietest moment
                lo = s + max_frames // 2
                cut = lo + int(np.argmin(probs[lo:s + max_frames]))
                pieces.append((s, cut))
                s = cut
            pieces.append((s, e))
        return [(s * VAD_FRAME, min(n_samples, e * VAD_FRAME)) for s, e in pieces if e > s]

    # ------------------------------------------------------------------------------------------------------
    # Decoding a batch of windows

    def _window_audio(self, window: _Window) -> np.ndarray:
        gap = np.zeros(int(self.options.pack_gap_s * SAMPLE_RATE), dtype=np.float32)
        parts: list[np.ndarray] = []
        pos = 0
        for i, p in enumerate(window.pieces):
            if i:
                parts.append(gap)
                pos += len(gap)
            p.start_in_window = pos / SAMPLE_RATE
            parts.append(p.audio)
            pos += len(p.audio)
        return np.concatenate(parts)

    def _decode(self, windows: list[np.ndarray]) -> list[_Decoded]:
        """Encode, beam-search and word-align a batch of (<= 30 s) windows in three model calls."""
        from faster_whisper.audio import pad_or_trim

        m = self.model
        tok = self._tokenizer
        feats, frames = [], []
        n_samples = m.feature_extractor.n_samples
        n_frames = m.feature_extractor.nb_max_frames
        for w in windows:
            # Pad the audio with silence to 30 s before the log-mel (not the log-mel with zeros, as
            # faster-whisper does for a last window): zero log-mel frames read as a loud constant sound,
            # and Whisper then often stops transcribing several seconds before the end of a packed window.
            w = w[:n_samples]
            feats.append(pad_or_trim(m.feature_extractor(np.pad(w, (0, n_samples - len(w))))[..., :-1]))
            frames.append(min(len(w) // m.feature_extractor.hop_length, n_frames))
        # The encoder gains nothing from batching on a CPU, and its attention scores for a batch of 8 take
        # hundreds of MB: encode one window at a time and batch the decoder, which does gain from it.
        import ctranslate2

        encoded = np.concatenate([np.asarray(m.encode(f)) for f in feats])
        encoder_output = ctranslate2.StorageView.from_array(encoded)
        prompt = m.get_prompt(tok, [], without_timestamps=False)
        prompts = [list(prompt) for _ in windows]
        languages: list[str | None] = [self.language] * len(windows)
        if self.multilingual and self.language is None:
            lang_index = prompt.index(tok.language)
            for i, ranked in enumerate(m.model.detect_language(encoder_output)):
                token = ranked[0][0]
                prompts[i][lang_index] = tok.tokenizer.token_to_id(token)
                languages[i] = token[2:-2]
        results = m.model.generate(
            encoder_output, prompts, beam_size=self.options.beam_size, patience=1.0, length_penalty=1.0,
            max_length=m.max_length, return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self._suppress, max_initial_timestamp_index=int(round(1.0 / m.time_precision)))
        decoded: list[_Decoded] = []
        for i, r in enumerate(results):
            tokens = r.sequences_ids[0]
            avg_logprob = r.scores[0] * len(tokens) / (len(tokens) + 1)
            segs, _, _ = m._split_segments_by_timestamps(
                tokenizer=tok, tokens=tokens, time_offset=0.0, segment_size=frames[i],
                segment_duration=frames[i] * m.feature_extractor.time_per_frame, seek=0)
            segs = [s for s in segs if any(t < tok.eot for t in s["tokens"])]
            for s in segs:  # the decoder's own timestamps (word alignment may move start and end)
                s["span"] = (float(s["start"]), float(s["end"]))
            text = tok.decode([t for t in tokens if t < tok.eot])
            decoded.append(_Decoded(segs, float(avg_logprob), float(r.no_speech_prob), _compression_ratio(text),
                                    languages[i]))
        # Word timings and probabilities: one batched alignment over the windows that have text.
        with_text = [i for i, d in enumerate(decoded) if d.segments]
        if with_text:
            enc_sv = encoder_output if len(with_text) == len(decoded) else \
                ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[with_text]))
            seg_lists = [decoded[i].segments for i in with_text]
            m.add_word_timestamps(seg_lists, tok, enc_sv, [frames[i] for i in with_text], PREPEND_PUNCTUATION,
                                  APPEND_PUNCTUATION, 0.0)
        return decoded

    def _assign(self, window: _Window, dec: _Decoded) -> None:
        """Hand each word of a decoded window to the piece that holds its mid-time."""
        half_gap = self.options.pack_gap_s / 2
        bounds = [(p.start_in_window - half_gap, p.start_in_window + p.length_s + half_gap)
                  for p in window.pieces]
        for s in dec.segments:
            per_piece: dict[int, dict[str, Any]] = {}
            for w in s.get("words") or []:
                mid = (w["start"] + w["end"]) / 2
                owner = next((k for k, (lo, hi) in enumerate(bounds) if lo <= mid < hi), None)
                if owner is None:
                    continue
                p = window.pieces[owner]
                shift = p.offset_s - p.start_in_window
                word = word_record(w["word"], w["start"], w["end"], w["probability"], offset_s=shift)
                p.words.append(word)
                seg = per_piece.get(owner)
                if seg is None:
                    lo, hi = s["span"]
                    p.spans.append((max(0.0, lo - p.start_in_window), min(p.length_s, hi - p.start_in_window)))
                    seg = per_piece[owner] = {"avg_logprob": round(dec.avg_logprob, 4),
                                              "no_speech_prob": round(dec.no_speech_prob, 4),
                                              "compression_ratio": round(dec.compression_ratio, 4), "words": []}
                    p.segments.append(seg)
                seg["words"].append(word)
        for p in window.pieces:
            p.segments = [segment_record(seg["words"], avg_logprob=seg["avg_logprob"],
                                         no_speech_prob=seg["no_speech_prob"],
                                         compression_ratio=seg["compression_ratio"]) for seg in p.segments]
            if dec.language:
                p.unit.language = p.unit.language or dec.language

    @property
    def _check(self) -> PlausibilityCheck:
        return PlausibilityCheck(self.min_check_speech_s, self.min_words_per_speech_s, self.max_words_per_speech_s,
                                 self.max_word_speech_s, self.max_uncovered_s)

    def _speech_s(self, piece: _Piece, lo: float = 0.0, hi: float | None = None) -> float:
        """Seconds of speech (VAD probability >= 0.5) in the piece, or between ``lo`` and ``hi`` (seconds into
        the piece; without VAD, all of it)."""
        hi = piece.length_s if hi is None else hi
        if piece.speech is None:
            return max(0.0, hi - lo)
        return PlausibilityCheck.speech_s(piece.speech, lo, hi)

    def _implausible(self, piece: _Piece) -> list[str]:
        """What is implausible about a piece's words given its speech (empty: nothing; see
        :class:`~kdh_ai.engines.common.PlausibilityCheck`)."""
        if piece.speech is None:
            return []
        return self._check.problems(piece.words, piece.speech, offset_s=piece.offset_s, length_s=piece.length_s)

    def _verdict(self, piece: _Piece, dec: _Decoded, packed: bool) -> tuple[str, float]:
        """``("ok", 0)``, ``("whole", 0)``: transcribe the piece again, or ``("tail", t)``: the words stop at
        ``t`` seconds into the piece while speech goes on; transcribe the rest again (faster-whisper's
        seek). See the module docstring, step 6."""
        if not self.options.redo_checks:
            return "ok", 0.0
        if not piece.words:
            return "whole", 0.0
        # Whisper's own checks: a repetition loop (the piece's text compresses too well; per piece, as
        # a client's batch may hold the same sentence twice), or a window it was unsure of throughout.
        if _compression_ratio(join_words(piece.words)) > self.compression_ratio_threshold:
            return "whole", 0.0
        if packed and dec.avg_logprob < self.log_prob_threshold and dec.no_speech_prob <= 0.6:
            return "whole", 0.0
        # Speech after the last word (and nothing else wrong before it): the decoder stopped early.
        reach = max(w["end"] - piece.offset_s for w in piece.words)
        problems = self._implausible(piece)
        if (len(problems) == 1 and problems[0].endswith("has no words") and piece.tries <= 2
                and self._speech_s(piece, reach) > self.max_uncovered_s
                and not self._implausible(_Piece(piece.unit, piece.audio[:int(reach * SAMPLE_RATE)],
                                                 piece.offset_s, piece.speech, words=piece.words))):
            return "tail", reach
        return ("whole", 0.0) if problems else ("ok", 0.0)

    def _second_opinion(self, piece: _Piece) -> None:
        """Decode a piece that failed the checks again on its own, with faster-whisper's full decoding
        (temperature fallback, seek past an early stop); keep the more plausible transcript (then the more
        confident one) and record what is still wrong in ``piece.check``."""
        first = (list(piece.words), list(piece.segments))
        first_problems = self._implausible(piece) if piece.words else ["no words"]
        words, segments = self._transcribe_alone(piece.audio, piece.offset_s)
        piece.words, piece.segments = words, segments
        second_problems = self._implausible(piece) if words else ["no words"]
        self.stats["second_opinions"] += 1
        if (len(second_problems), -word_confidence(words)) > (len(first_problems), -word_confidence(first[0])):
            piece.words, piece.segments = first
            second_problems = first_problems
        piece.check = [] if piece.speech is None else second_problems
        if piece.check:
            with self._lock:
                self.stats["flagged"] += 1
            logger.info("%s: transcript still implausible after decoding it again: %s", piece.unit.item.item_id,
                        "; ".join(piece.check))

    def _transcribe_alone(self, audio: np.ndarray, offset_s: float) -> tuple[list[dict[str, Any]],
                                                                           list[dict[str, Any]]]:
        """faster-whisper's own loop over ``audio`` (no VAD: the audio is already speech)."""
        words, segments, _ = self._loop(audio, offset_s, condition_on_previous_text=False)
        return words, segments

    def _loop(self, audio: np.ndarray, offset_s: float, *, condition_on_previous_text: bool
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
        """faster-whisper's own decoding loop (VAD filter off) with word timestamps: the words, the segments
        (times ``offset_s`` later) and faster-whisper's transcription info.

        With ``condition_on_previous_text`` (the whole-file path: the plain loop's settings), the audio is
        decoded without word timestamps and its words are timed afterwards
        (:func:`kdh_ai.engines.alignment.transcribe_then_align`): faster-whisper's word timestamps move the
        next window's start to the last word's end, which changes the text of long noisy recordings."""
        if condition_on_previous_text:
            aligned, info = transcribe_then_align(self.model, audio, language=self.language,
                                                  beam_size=self.options.beam_size)
            found = [(s["words"], s) for s in aligned]
        else:
            segs, info = self.model.transcribe(
                audio, language=self.language, beam_size=self.options.beam_size, word_timestamps=True,
                vad_filter=False, condition_on_previous_text=False)
            found = [([{"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                       for w in (s.words or [])], {"avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
                                                   "compression_ratio": s.compression_ratio}) for s in segs]
        words: list[dict[str, Any]] = []
        segments = []
        for raw, s in found:
            sw = [word_record(w["word"], w["start"], w["end"], w["probability"], offset_s=offset_s) for w in raw]
            if sw:
                words.extend(sw)
                segments.append(segment_record(sw, avg_logprob=s["avg_logprob"], no_speech_prob=s["no_speech_prob"],
                                               compression_ratio=s["compression_ratio"]))
        return words, segments, info

    def _whole(self, job: _WholeFile) -> Prediction:
        """Long audio transcribed whole: faster-whisper's own sequential 30 s windows (``long_audio="whole"``,
        or VAD off and nothing to cut at). Runs in a decoding worker: two long files go at once."""
        item, sha, audio, speech_max, probs = job.item, job.sha256, job.audio, job.speech_max, job.probs
        # faster-whisper's own loop with the plain loop's settings: its VAD filter off (it joins the speech
        # chunks into one stream) and each window conditioned on the previous one's text. On a long recording
        # with noisy stretches and short pauses, the VAD filter together with condition_on_previous_text=False
        # (this path's settings before) deleted many words; with neither, this path matches the plain loop
        # (the "long_mixed" row of benchmarks/README.md). Its words are timed after decoding (see _loop), so the
        # text is exactly the plain loop's. VAD has already found speech in the file (else it is no_speech).
        words, segments, info = self._loop(audio, 0.0, condition_on_previous_text=True)
        check: list[str] = []
        if self.options.redo_checks and probs is not None and words:
            # The same plausibility check as for pieces, over the whole file (no second decoding: this
            # already was faster-whisper's full loop); a failure halves the confidence and is reported.
            check = self._check.problems(words, probs, offset_s=0.0, length_s=len(audio) / SAMPLE_RATE)
            if check:
                with self._lock:
                    self.stats["flagged"] += 1
        return self._record(item, sha, len(audio) / SAMPLE_RATE, join_words(words), words, segments,
                            info.language, speech_max, check, probs)

    def _stream(self, job: _StreamedFile) -> Prediction:
        """A long file read and transcribed chunk by chunk (:class:`~kdh_ai.engines.streaming.AudioChunks`):
        the whole-file path's decoding (:meth:`_whole`) with memory that does not grow with the file.

        Each chunk with speech is decoded by faster-whisper's loop with the plain loop's settings, its first
        window conditioned on the end of the transcript so far (as the plain loop conditions each window on
        the previous one's text). A chunk's last window sees less than 30 s of audio, where Whisper often
        stops early (the whole-file loop has this only at the file's end): its words are dropped and the next
        chunk starts at that window's start, or, when VAD hears speech between the last word kept and there
        (a window boundary in the middle of a phrase), at the pause after that word (:meth:`_chunk_words`),
        so the file's speech is decoded in full windows, as in the whole-file loop. Chunks without speech (VAD below 0.5 throughout) are not
        decoded. Only the words, the decoder segments and the VAD probabilities are kept. A file found
        damaged or truncated at the end of its stream becomes an error record: nothing of it is kept. Runs
        in a decoding worker."""
        from tqdm.auto import tqdm

        item = job.item
        chunks = AudioChunks(item.path, chunk_s=self.stream_chunk_s,  # type: ignore[arg-type]
                             search_s=self.stream_search_s)
        words: list[dict[str, Any]] = []
        segments: list[dict[str, Any]] = []
        language = self.language
        bar = tqdm(total=round(job.duration_s), unit="s", desc=f"{item.item_id} (audio s)", leave=False,
                   disable=not self.log_progress, dynamic_ncols=True)
        try:
            for chunk in chunks:
                done_s = chunk.length_s
                if float(chunk.probs.max(initial=0.0)) >= 0.5:
                    w, s, language, done_s = self._chunk_words(chunk, words, language)
                    words += w
                    segments += s
                    if done_s < chunk.length_s:
                        chunks.carry(done_s)
                    with self._lock:
                        self.stats["chunks"] += 1
                del chunk
                release_memory()
                bar.update(min(done_s, max(0.0, bar.total - bar.n)))
        except AudioError as exc:
            return self._error(item, UnreadableItem(str(exc), job.sha256))
        finally:
            bar.close()
        probs, duration = chunks.probs, chunks.n_samples / SAMPLE_RATE
        speech_max = float(probs.max(initial=0.0))
        check: list[str] = []
        if self.options.redo_checks and words:  # as in _whole
            check = self._check.problems(words, probs, offset_s=0.0, length_s=duration)
            if check:
                with self._lock:
                    self.stats["flagged"] += 1
        return self._record(item, job.sha256, duration, join_words(words), words, segments, language,
                            speech_max, check, probs)

    def _chunk_words(self, chunk: Any, before: list[dict[str, Any]], language: str | None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None, float]:
        """Decode one chunk of a streamed file: its words and decoder segments (times in the file), the
        language, and how many seconds of the chunk they cover (the rest starts the next chunk)."""
        prompt = join_words(before[-self.prompt_words:]) or None
        aligned, info = transcribe_then_align(self.model, chunk.audio, language=language or self.language,
                                              beam_size=self.options.beam_size, initial_prompt=prompt)
        done_s = chunk.length_s
        if not chunk.last and aligned:
            fe = self.model.feature_extractor
            last_seek = aligned[-1]["seek"] * fe.time_per_frame
            if last_seek > chunk.length_s - fe.chunk_length and last_seek >= chunk.length_s / 2:
                aligned = [s for s in aligned if s["seek"] < aligned[-1]["seek"]]  # its short last window
                done_s = last_seek
            # Speech between the last word kept and where the next chunk would start (a window boundary in
            # the middle of a phrase, or short windows that gave no text): start at the pause after that word.
            last_end = max((w["end"] for s in aligned for w in s["words"]), default=0.0)
            if last_end >= chunk.length_s / 2 and PlausibilityCheck.speech_s(chunk.probs, last_end, done_s) >= 0.3:
                done_s = resume_at(chunk.probs, last_end, done_s)
        words: list[dict[str, Any]] = []
        segments: list[dict[str, Any]] = []
        for s in aligned:
            sw = [word_record(w["word"], w["start"], w["end"], w["probability"], offset_s=chunk.offset_s)
                  for w in s["words"]]
            if sw:
                words.extend(sw)
                segments.append(segment_record(sw, avg_logprob=s["avg_logprob"], no_speech_prob=s["no_speech_prob"],
                                               compression_ratio=s["compression_ratio"]))
        words, segments = self._recover_skipped(chunk, done_s, words, segments)
        return words, segments, language or info.language, done_s

    def _recover_skipped(self, chunk: Any, done_s: float, words: list[dict[str, Any]],
                         segments: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Decode again, each on its own, the stretches of a chunk where VAD hears speech that no word covers.

        Whisper sometimes skips a whole window of a chunk (its no-speech rule on noisy audio): measured on the
        synthetic long recordings of ``benchmarks/long_recordings.py``, a chunk that started 20 s earlier than
        the whole-file loop's window lost 36 s of speech (143 words, WER 17% -> 31%). A stretch of at least
        ``recover_min_s`` of clear speech (VAD >= 0.5) more than 0.3 s from any word is decoded alone, as a
        short clip is (faster-whisper's loop with word timestamps, no conditioning), and its words are put in
        place. Words still missing after that are left to the per-segment check (a wordless segment goes to
        people)."""
        probs, frame_s = chunk.probs, VAD_FRAME / SAMPLE_RATE
        covered = np.zeros(len(probs), bool)
        for w in words:
            a = max(0, int((w["start"] - chunk.offset_s - 0.3) / frame_s))
            covered[a:int(math.ceil((w["end"] - chunk.offset_s + 0.3) / frame_s))] = True
        limit = min(len(probs), int(done_s / frame_s))
        speech = (probs[:limit] >= 0.5) & ~covered[:limit]
        spans: list[list[int]] = []
        for i in np.flatnonzero(speech):
            if spans and i - spans[-1][1] <= int(0.5 / frame_s):
                spans[-1][1] = int(i) + 1
            else:
                spans.append([int(i), int(i) + 1])
        found = 0
        for a, b in spans:
            if (b - a) * frame_s < self.recover_min_s:
                continue
            lo = max(0.0, a * frame_s - 0.3)
            hi = min(done_s, b * frame_s + 0.3)
            clip = chunk.audio[int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)]
            new_words, new_segments = self._transcribe_alone(clip, chunk.offset_s + lo)
            lo_t, hi_t = chunk.offset_s + lo, chunk.offset_s + hi
            keep = [w for w in new_words if lo_t <= w["start"] and w["end"] <= hi_t + 0.5]
            if keep:
                found += len(keep)
                words = sorted(words + keep, key=lambda w: (w["start"], w["end"]))
                segments = sorted(segments + [sg for sg in new_segments if sg["words"] and sg["words"][0] in keep],
                                  key=lambda sg: sg["start"])
        if found:
            with self._lock:
                self.stats["recovered_words"] = self.stats.get("recovered_words", 0) + found
        return words, segments

    def _finish(self, piece: _Piece, finished: list[Prediction]) -> None:
        piece.audio, piece.speech = np.empty(0, np.float32), None  # let the audio go
        piece.unit.remaining -= 1
        if piece.unit.remaining == 0:
            finished.append(self._unit_record(piece.unit))

    def _settle(self, windows: list[_Window], decoded: list[_Decoded]) -> tuple[list[Prediction], list[_Piece]]:
        """Hand a decoded batch's words to their pieces and check each piece; return the records of the items
        this finishes and the pieces to decode alone now.

        A packed piece to transcribe again waits for the next batch (it opens a window there); one that
        fails in two packed windows is decoded alone. A piece decoded in a window of its own that fails the
        checks gets a second opinion (:meth:`_second_opinion`), which is final.
        """
        finished: list[Prediction] = []
        alone: list[_Piece] = []
        for window, dec in zip(windows, decoded):
            self.stats["windows"] += 1
            self._assign(window, dec)
            packed = len(window.pieces) > 1
            self._groups += 1
            for p in window.pieces:
                self.stats["pieces"] += 1
                p.tries += 1
                kind, cut = self._verdict(p, dec, packed) if p.tries <= 3 else ("ok", 0.0)
                if kind == "tail":
                    self.stats["tails"] += 1
                    k = int(cut * SAMPLE_RATE)
                    tail = _Piece(p.unit, p.audio[k:], p.offset_s + cut,
                                  None if p.speech is None else p.speech[k // VAD_FRAME:], tries=p.tries,
                                  group=self._groups)
                    p.audio = p.audio[:k]
                    if p.speech is not None:
                        p.speech = p.speech[:(k + VAD_FRAME - 1) // VAD_FRAME]
                    p.unit.pieces.append(tail)
                    p.unit.remaining += 1
                    self._retry.append(tail)
                elif kind == "whole" and packed:
                    p.words, p.segments, p.spans = [], [], []
                    if p.tries == 1:
                        self.stats["requeued"] += 1
                        p.group = self._groups
                        self._retry.append(p)
                    else:
                        self.stats["alone"] += 1
                        alone.append(p)
                    continue
                elif kind == "whole":
                    self._second_opinion(p)
                self._finish(p, finished)
        return finished, alone

    def _run(self, windows: list[_Window]) -> list[Prediction]:
        """Decode a batch of windows (then the pieces to decode alone); return the records it finishes."""
        finished: list[Prediction] = []
        while windows:
            done, alone = self._settle(windows, self._decode([self._window_audio(w) for w in windows]))
            finished.extend(done)
            windows = [_Window([p], p.length_s) for p in alone]
        return finished

    def _pack(self, pieces: list[_Piece]) -> list[_Window]:
        """Pack pieces into windows (first fit, longest first: windows come out nearly full)."""
        opts = self.options
        if not opts.pack_short_clips:
            return [_Window([p], p.length_s) for p in pieces]
        gap = opts.pack_gap_s
        windows: list[_Window] = []

        def place(group: list[_Piece], length: float) -> None:
            for w in windows:
                if w.length_s + gap + length <= opts.pack_window_s:
                    w.pieces.extend(group)
                    w.length_s += gap + length
                    return
            windows.append(_Window(list(group), length))

        # Pieces to transcribe again go first, each window's leftovers together and in order (the
        # model stopped early in that window: this is faster-whisper's "seek"), then the fresh pieces,
        # longest first (first-fit decreasing fills windows nearly full).
        groups: dict[int, list[_Piece]] = {}
        for p in pieces:
            if p.group:
                groups.setdefault(p.group, []).append(p)
        for g in sorted(groups.values(), key=lambda g: -sum(p.length_s for p in g)):
            length = sum(p.length_s for p in g) + gap * (len(g) - 1)
            if length > opts.pack_window_s:  # cannot happen for one window's leftovers; be safe
                for p in g:
                    place([p], p.length_s)
            else:
                place(g, length)
        for p in sorted((p for p in pieces if not p.group), key=lambda p: -p.length_s):
            place([p], p.length_s)
        return windows

    # ------------------------------------------------------------------------------------------------------

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        """Lazily transcribe items; records come out when the batch of windows holding them is decoded.

        Pieces wait in a buffer until they fill about ``batch_size`` windows; the buffer is then packed and
        decoded. At most that much audio (plus the long file being cut) is held at any time.
        """
        opts = self.options
        self._retry: list[_Piece] = []
        self._groups = 0
        buffer: list[_Piece] = []
        capacity = opts.batch_size * opts.pack_window_s

        def full() -> bool:
            if not opts.pack_short_clips:
                return len(buffer) >= opts.batch_size
            return (sum(p.length_s + opts.pack_gap_s for p in buffer) >= capacity
                    or len(buffer) >= opts.batch_size * 8)

        def flush(final: bool) -> Iterator[list[Prediction]]:
            nonlocal buffer
            windows = self._pack(buffer)
            if not final and len(windows) > opts.batch_size:
                # the emptiest windows' pieces wait for the next batch
                windows.sort(key=lambda w: (not any(p.tries for p in w.pieces), -w.length_s))
                keep, windows = windows[opts.batch_size:], windows[:opts.batch_size]
                buffer = [p for w in keep for p in w.pieces]
            else:
                buffer = []
            for i in range(0, len(windows), opts.batch_size):
                batch = windows[i:i + opts.batch_size]
                audio = [self._window_audio(w) for w in batch]
                inflight.append((batch, pool.submit(self._decode, audio) if pool else None, audio))
                # Keep every worker busy while this thread reads and cuts the next items; hand out what is
                # done at once (a killed job loses at most the batches in flight).
                while inflight and (final or len(inflight) > opts.workers or ready()):
                    yield from settle_oldest()
            buffer = self._retry + buffer
            self._retry = []

        def ready() -> bool:
            future = inflight[0][1]
            return future is None or future.done()

        def settle_oldest() -> Iterator[list[Prediction]]:
            batch, future, audio = inflight.popleft()
            decoded = future.result() if future is not None else self._decode(audio)
            out, alone = self._settle(batch, decoded)
            out.extend(self._run([_Window([p], p.length_s) for p in alone]))
            if out:
                yield out

        from concurrent.futures import ThreadPoolExecutor

        inflight: deque[tuple[list[_Window], Any, list[np.ndarray]]] = deque()
        wholes: deque[Any] = deque()  # long files being transcribed whole in the workers
        pool = ThreadPoolExecutor(opts.workers, thread_name_prefix="kdh-whisper") if opts.workers > 1 else None
        try:
            for item in items:
                prepared = self._prepare(item)
                if isinstance(prepared, list):
                    yield prepared
                    continue
                if isinstance(prepared, (_WholeFile, _StreamedFile)):
                    run = self._whole if isinstance(prepared, _WholeFile) else self._stream
                    if pool is None:
                        yield [run(prepared)]  # type: ignore[arg-type]
                        continue
                    wholes.append(pool.submit(run, prepared))
                    while wholes and (wholes[0].done() or len(wholes) >= opts.workers):
                        yield [wholes.popleft().result()]
                    continue
                for piece in list(prepared.pieces):  # (tails of pieces get appended while we go)
                    buffer.append(piece)
                    if full():
                        yield from flush(final=False)
                while inflight and inflight[0][1] is not None and inflight[0][1].done():
                    yield from settle_oldest()
            while wholes:
                yield [wholes.popleft().result()]
            while True:
                while inflight:
                    yield from settle_oldest()
                buffer = self._retry + buffer
                self._retry = []
                if not buffer:
                    break
                yield from flush(final=True)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

