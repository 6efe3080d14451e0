"""Transcription with OpenAI's ``whisper`` package (``--engine openai-whisper``), offline.

The reference implementation of Whisper (PyTorch) as a second engine next to faster-whisper (CTranslate2,
the default). It runs the same model weights: the packaged CTranslate2 model is converted once into an
OpenAI Whisper checkpoint (:mod:`kdh_ai.engines.whisper_checkpoint`, cached and verified by SHA-256), so
``whisper.load_model`` never downloads anything.

An item goes through the same steps and rules as with the default engine, and gives the same record:

1. Bytes hashed, duration probed, audio decoded to 16 kHz mono by :mod:`kdh_ai.audio`; a missing, empty,
   corrupt or over-long file becomes a ``status="error"`` record that says what to do.
2. Silero voice activity detection (bundled with faster-whisper): no speech gives ``status="no_speech"``
   with confidence ``1 -`` the highest speech probability (Whisper alone answers "You" to silence).
3. The speech, from its first to its last weakly speech-like frame (padded by 0.4 s), is transcribed by
   ``whisper.transcribe`` (beam search at temperature 0 with Whisper's temperature fallback, word
   timestamps on, no conditioning on previous text), window after window for long audio.
4. ``confidence`` is the geometric mean of the word probabilities, as with the default engine.
5. A recording longer than ``segment_over_s`` gets work segments (``payload["work_segments"]``), cut and
   checked as with the default engine (:func:`kdh_ai.engines.common.work_segments`).

What differs: the engine runs float32 PyTorch (``compute_type`` does not apply), one item at a time
(``pack_short_clips``, ``batch_size``, ``long_audio`` and ``redo_checks`` do not apply), and it is slower
(measured in ``benchmarks/README.md``). The engine, its version and the converter's version enter the
``config_hash``: switching engines in a job directory re-transcribes, switching back reuses the records.

Install: ``openai-whisper`` is installed by ``make install`` without its ``triton`` dependency (a ~1 GB GPU
compiler the CPU never uses); see ``pyproject.toml``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from kdh_ai.audio import SAMPLE_RATE
from kdh_ai.engines.common import (TranscribeOptions, UnreadableItem, error_record, join_words,
                                   read_item_audio, segment_record, speech_bounds, transcription_record,
                                   vad_probabilities, word_record)
from kdh_ai.engines.whisper_checkpoint import CONVERTER_VERSION, alignment_heads, openai_whisper_checkpoint
from kdh_ai.items import Item
from kdh_ai.records import Prediction
from kdh_ai.registry import ModelNotAvailableError, ResolvedModel, resolve_model
from kdh_ai.tasks.base import Prelabeler

__all__ = ["ENGINE", "OPENAI_WHISPER_INSTALL", "OpenAIWhisperTranscriber"]

logger = logging.getLogger(__name__)

ENGINE = "openai-whisper"
"""The engine's name (``TranscribeOptions.engine``)."""

OPENAI_WHISPER_INSTALL = "pip install --no-deps openai-whisper==20250625"
"""How ``make install`` installs the package (its real runtime dependencies are pinned in pyproject.toml)."""



class OpenAIWhisperTranscriber(Prelabeler):
    """Whisper pre-labeling with OpenAI's ``whisper`` package, one item at a time.

    The model loads (and is converted on first use) in the constructor. :meth:`predict_batches` is a lazy
    generator that yields one record per item.

    Args:
        options: The job's options (``engine="openai-whisper"``).
        model: An already resolved model (default: resolve ``options.model`` through the registry).

    Raises:
        ModelNotAvailableError: The ``whisper`` package is not installed, or the model cannot be converted.

    Example:
        >>> t = OpenAIWhisperTranscriber(TranscribeOptions(engine="openai-whisper"))  # doctest: +SKIP
        >>> for pred in t.predict([Item("a", path="a.wav")]):                       # doctest: +SKIP
        ...     print(pred.status, pred.confidence, pred.text)
    """

    task: ClassVar[str] = "transcription"

    def __init__(self, options: TranscribeOptions, *, model: ResolvedModel | None = None) -> None:
        try:
            import whisper
        except ImportError:
            raise ModelNotAvailableError(
                "the openai-whisper engine needs the `whisper` package: run `make install`, or "
                f"`{OPENAI_WHISPER_INSTALL}` in this environment") from None
        import torch

        self.options = options
        self.resolved = model or resolve_model(options.model)
        checkpoint = openai_whisper_checkpoint(self.resolved)
        if options.cpu_threads:
            torch.set_num_threads(options.cpu_threads)
        self.model = whisper.load_model(str(checkpoint), device="cpu")
        heads = alignment_heads(self.resolved.path)
        if heads:  # the model's own word-alignment heads (load_model sets them only for named models)
            mask = np.zeros((self.model.dims.n_text_layer, self.model.dims.n_text_head), dtype=bool)
            for layer, head in heads:
                mask[layer, head] = True
            self.model.set_alignment_heads(base64.b85encode(gzip.compress(mask.tobytes())))
        if options.compute_type not in ("float32", "default"):
            logger.info("openai-whisper runs float32 on the CPU; compute_type=%s applies to faster-whisper only",
                        options.compute_type)
        self.multilingual = bool(self.model.is_multilingual)
        self.language = options.language or (None if self.multilingual else "en")
        self._whisper = whisper
        self.engine_version = str(whisper.__version__)
        self.model_info = {"name": self.resolved.name, "version": self.resolved.version}
        bin_path = self.resolved.path / "model.bin"
        identity = {"name": self.resolved.name, "version": self.resolved.version,
                    "model_bin_size": bin_path.stat().st_size, "engine": ENGINE,
                    "engine_version": self.engine_version, "converter_version": CONVERTER_VERSION,
                    "decode": {"beam_size": options.beam_size, "language": options.language, "vad": options.vad,
                               "compute_type": "float32", "segment_over_s": options.segment_over_s},
                    "empty_confidence": "1-vad_max"}
        self.config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------------------------------------------

    def _speech(self, audio: np.ndarray) -> tuple[tuple[int, int] | None, np.ndarray | None]:
        """The stretch of audio to transcribe (``None``: no speech) and VAD's speech probabilities (``None``
        without VAD)."""
        if not self.options.vad:
            return (0, len(audio)), None
        probs = vad_probabilities(audio)
        return speech_bounds(probs, len(audio)), probs

    def _transcribe(self, item: Item) -> Prediction:
        read = read_item_audio(item, max_duration_s=self.options.max_duration_s)
        if isinstance(read, UnreadableItem):
            return error_record(item, read, task=self.task, model=self.model_info, config_hash=self.config_hash)
        sha, audio = read
        span, probs = self._speech(audio)
        speech_max = None if probs is None else float(probs.max(initial=0.0))
        language = self.language
        words: list[dict[str, Any]] = []
        segments: list[dict[str, Any]] = []
        if span is not None:
            start, end = span
            offset = start / SAMPLE_RATE
            result = self._whisper.transcribe(
                self.model, audio[start:end], language=self.language, beam_size=self.options.beam_size,
                word_timestamps=True, condition_on_previous_text=False, fp16=False, verbose=None)
            language = result.get("language") or self.language
            for s in result["segments"]:
                sw = [word_record(w["word"], w["start"], w["end"], w["probability"], offset_s=offset)
                      for w in s.get("words") or []]
                if sw:
                    words.extend(sw)
                    segments.append(segment_record(sw, avg_logprob=s["avg_logprob"],
                                                   no_speech_prob=s["no_speech_prob"],
                                                   compression_ratio=s["compression_ratio"]))
        return transcription_record(item, task=self.task, sha256=sha, duration_s=len(audio) / SAMPLE_RATE,
                                    text=join_words(words), words=words, segments=segments, language=language,
                                    speech_max=speech_max, model=self.model_info, config_hash=self.config_hash,
                                    segment_over_s=self.options.segment_over_s, speech_probs=probs)

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        """Lazily transcribe items, one record per item (errors included), in input order."""
        for item in items:
            yield [self._transcribe(item)]
