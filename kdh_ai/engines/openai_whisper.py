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
import math
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from kdh_ai.audio import SAMPLE_RATE, AudioError, load_audio, probe_duration
from kdh_ai.engines.whisper_checkpoint import CONVERTER_VERSION, alignment_heads, openai_whisper_checkpoint
from kdh_ai.items import Item, sha256_file
from kdh_ai.records import Prediction
from kdh_ai.registry import ModelNotAvailableError, ResolvedModel, resolve_model
from kdh_ai.tasks.base import Prelabeler
from kdh_ai.tasks.transcription import TranscribeOptions

__all__ = ["ENGINE", "OPENAI_WHISPER_INSTALL", "OpenAIWhisperTranscriber"]

logger = logging.getLogger(__name__)

ENGINE = "openai-whisper"
"""The engine's name (``TranscribeOptions.engine``)."""

OPENAI_WHISPER_INSTALL = "pip install --no-deps openai-whisper==20250625"
"""How ``make install`` installs the package (its real runtime dependencies are pinned in pyproject.toml)."""

_VAD_FRAME = 512  # samples per Silero VAD probability (32 ms)
_TRIM_PAD_S = 0.4


def _confidence(words: list[dict[str, Any]]) -> float:
    """Geometric mean of word probabilities (the default engine's confidence)."""
    if not words:
        return 0.0
    logs = [math.log(max(float(w["probability"]), 1e-6)) for w in words]
    return float(min(1.0, max(0.0, math.exp(sum(logs) / len(logs)))))


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
                               "compute_type": "float32"},
                    "empty_confidence": "1-vad_max"}
        self.config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------------------------------------------

    def _error(self, item: Item, message: str, sha: str | None, payload: dict[str, Any] | None = None
               ) -> Prediction:
        return Prediction.failed(item_id=item.item_id, task=self.task, error=message, model=self.model_info,
                                 config_hash=self.config_hash, source=item.path, sha256=sha, payload=payload)

    def _read(self, item: Item) -> Prediction | tuple[str, np.ndarray]:
        """The item's SHA-256 and decoded audio, or its error record (the default engine's rules)."""
        if item.error:
            return self._error(item, item.error, None)
        if not item.path:
            return self._error(item, "item has no audio path; add it to the manifest", None)
        try:
            sha = sha256_file(item.path)
        except FileNotFoundError:
            return self._error(item, f"file not found: {item.path}; check the path in the manifest or restore "
                                     "the file", None)
        except IsADirectoryError:
            return self._error(item, f"not a regular file: {item.path}; give the path of an audio file", None)
        except OSError as exc:
            return self._error(item, f"cannot read {item.path}: {exc.strerror}; fix the file's permissions or "
                                     "copy it again", None)
        try:
            duration = probe_duration(item.path)
            if duration > self.options.max_duration_s:
                return self._error(item, f"audio is {duration:.0f} s long, over max_duration_s="
                                         f"{self.options.max_duration_s:.0f}; split the file or raise the limit",
                                   sha, {"duration_s": round(duration, 3)})
            return sha, load_audio(item.path)
        except AudioError as exc:
            return self._error(item, str(exc), sha)

    def _speech(self, audio: np.ndarray) -> tuple[tuple[int, int] | None, float | None]:
        """The stretch of audio to transcribe (``None``: no speech) and the highest VAD speech probability."""
        if not self.options.vad:
            return (0, len(audio)), None
        from faster_whisper.vad import get_vad_model

        padded = np.pad(audio, (0, _VAD_FRAME - len(audio) % _VAD_FRAME))
        probs = np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)
        speech_max = float(probs.max(initial=0.0))
        if probs.size == 0 or speech_max < 0.5:
            return None, speech_max
        weak = np.flatnonzero(probs >= 0.2)
        pad = int(_TRIM_PAD_S * SAMPLE_RATE)
        start = max(0, int(weak[0]) * _VAD_FRAME - pad)
        end = min(len(audio), (int(weak[-1]) + 1) * _VAD_FRAME + pad)
        return (start, end), speech_max

    def _transcribe(self, item: Item) -> Prediction:
        read = self._read(item)
        if isinstance(read, Prediction):
            return read
        sha, audio = read
        duration = len(audio) / SAMPLE_RATE
        span, speech_max = self._speech(audio)
        payload: dict[str, Any] = {"duration_s": round(duration, 3), "language": self.language, "segments": []}
        if speech_max is not None:
            payload["speech_prob_max"] = round(speech_max, 4)
        words: list[dict[str, Any]] = []
        if span is not None:
            start, end = span
            offset = start / SAMPLE_RATE
            result = self._whisper.transcribe(
                self.model, audio[start:end], language=self.language, beam_size=self.options.beam_size,
                word_timestamps=True, condition_on_previous_text=False, fp16=False, verbose=None)
            payload["language"] = result.get("language") or self.language
            for s in result["segments"]:
                sw = [{"word": w["word"], "start": round(float(w["start"]) + offset, 3),
                       "end": round(float(w["end"]) + offset, 3), "probability": round(float(w["probability"]), 4)}
                      for w in s.get("words") or []]
                if not sw:
                    continue
                words.extend(sw)
                payload["segments"].append({
                    "start": sw[0]["start"], "end": sw[-1]["end"], "text": "".join(w["word"] for w in sw).strip(),
                    "avg_logprob": round(float(s["avg_logprob"]), 4),
                    "no_speech_prob": round(float(s["no_speech_prob"]), 4),
                    "compression_ratio": round(float(s["compression_ratio"]), 4), "words": sw})
        text = "".join(w["word"] for w in words).strip()
        if text:
            confidence = _confidence(words)
        else:  # the default engine's rule for an empty transcript (see kdh_ai.tasks.transcription)
            confidence = 0.0 if speech_max is None else float(min(1.0, max(0.0, 1.0 - speech_max)))
        return Prediction(item_id=item.item_id, task=self.task, text=text, confidence=confidence,
                          status="ok" if text else "no_speech", model=self.model_info,
                          config_hash=self.config_hash, source=item.path, sha256=sha, payload=payload)

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        """Lazily transcribe items, one record per item (errors included), in input order."""
        for item in items:
            yield [self._transcribe(item)]
