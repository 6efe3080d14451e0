"""Transcription engines: what turns audio items into transcription records.

- :mod:`kdh_ai.engines.faster_whisper`: the default engine, Whisper on faster-whisper (CTranslate2): batched
  decoding, a plausibility check that does not trust Whisper's probabilities, long-file handling.
- :mod:`kdh_ai.engines.openai_whisper`: OpenAI's reference ``whisper`` package on the same weights, converted
  offline by :mod:`kdh_ai.engines.whisper_checkpoint`.
- :mod:`kdh_ai.engines.alignment`: word timings for a long file decoded as the plain faster-whisper loop does.
- :mod:`kdh_ai.engines.common`: what both share (the job's :class:`TranscribeOptions`, reading an item, voice
  activity, confidence and the record).

The engines implement :class:`kdh_ai.tasks.base.Prelabeler` for the transcription task type
(:mod:`kdh_ai.tasks.transcription`, which says what a transcription answer is, how it is scored and shown in
Label Studio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdh_ai.engines.common import ENGINES, TranscribeOptions

if TYPE_CHECKING:
    from kdh_ai.registry import ResolvedModel
    from kdh_ai.tasks.base import Prelabeler

__all__ = ["ENGINES", "TranscribeOptions", "make_transcriber"]


def make_transcriber(options: TranscribeOptions, *, model: ResolvedModel | None = None) -> Prelabeler:
    """The transcription pre-labeler of ``options.engine`` (its model loads here).

    Args:
        options: The job's options.
        model: An already resolved model (default: resolve ``options.model``).
    """
    if options.second_opinion:  # a second model too: kdh_ai.second_opinion
        from kdh_ai.second_opinion import SecondOpinionTranscriber

        return SecondOpinionTranscriber(options, model=model, factory=make_transcriber)
    if options.engine == "openai-whisper":
        from kdh_ai.engines.openai_whisper import OpenAIWhisperTranscriber

        return OpenAIWhisperTranscriber(options, model=model)
    from kdh_ai.engines.faster_whisper import Transcriber

    return Transcriber(options, model=model)
