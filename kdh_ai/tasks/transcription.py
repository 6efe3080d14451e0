"""The transcription task type: an audio item, answered by its transcript, scored by word errors.

What a transcription answer is in Label Studio (an Audio player and a TextArea, :class:`TranscriptionTask`)
and how an answer is scored against a reference (word errors after Whisper's English normalization). The
models that produce the answers are engines in :mod:`kdh_ai.engines` (faster-whisper by default), one layer
above: import :class:`~kdh_ai.engines.TranscribeOptions` and :func:`~kdh_ai.engines.make_transcriber` from
there, and the faster-whisper engine, :class:`~kdh_ai.engines.faster_whisper.Transcriber`, from its module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from kdh_ai.tasks.base import TaskType

__all__ = ["TranscriptionTask"]


class TranscriptionTask(TaskType):
    """Transcription in Label Studio: an Audio player and a TextArea pre-filled with the model's text."""

    name: ClassVar[str] = "transcription"
    item_kind: ClassVar[str] = "audio"
    from_name: ClassVar[str] = "transcription"
    to_name: ClassVar[str] = "audio"

    def label_config(self, *, labels: Iterable[str] | None = None) -> str:
        """One template for short clips and for the segments of long recordings (:mod:`kdh_ai.labelstudio.segments`).

        A header from the task data (what to transcribe), the Audio player, the model's text before the segment,
        the text box, the model's text after it. A segment is marked in its clip by a pre-annotated region of
        the hidden ``segment`` Labels control (annotators cannot draw new regions); short clips have no region
        and empty context lines. Header and context are Header tags, not Text objects: the template then has
        one data key (``$audio``), which Label Studio's direct file upload (``--audio upload``) requires.
        """
        return ('<View>\n  <Header value="$kdh_header" size="5"/>\n  <Audio name="audio" value="$audio"/>\n'
                '  <View style="display: none">\n    <Labels name="segment" toName="audio">'
                '<Label value="to transcribe" background="#f5a623"/></Labels>\n  </View>\n'
                '  <View style="color: #555; font-style: italic"><Header value="$context_before" '
                'size="6"/></View>\n'
                '  <TextArea name="transcription" toName="audio" rows="4" editable="true" '
                'maxSubmissions="1" placeholder="Type what is said"/>\n'
                '  <View style="color: #555; font-style: italic"><Header value="$context_after" '
                'size="6"/></View>\n</View>')

    def answer_to_result(self, answer: str) -> list[dict[str, Any]]:
        return [{"from_name": self.from_name, "to_name": self.to_name, "type": "textarea",
                 "value": {"text": [answer]}}]

    def result_to_answer(self, result: list[dict[str, Any]]) -> str | None:
        for r in result or []:
            if r.get("from_name") == self.from_name and r.get("type") == "textarea":
                texts = r.get("value", {}).get("text", [])
                return " ".join(t.strip() for t in texts if t and t.strip())
        return None

    def item_errors(self, answers: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Word errors (substitutions + deletions + insertions) and reference words of each transcript, after
        Whisper's English normalization (the project's default for WER)."""
        import jiwer

        from kdh_ai.quality import normalize_text

        if len(answers) != len(references):
            raise ValueError(f"{len(answers)} answers but {len(references)} references")
        out = np.zeros((len(answers), 2))
        for i, (hyp, ref) in enumerate(zip(answers, references)):
            h, r = normalize_text(hyp or ""), normalize_text(ref or "")
            if not r:
                out[i] = (len(h.split()), 0.0)
                continue
            m = jiwer.process_words(r, h) if h else None
            out[i] = ((m.substitutions + m.deletions + m.insertions) if m else len(r.split()), len(r.split()))
        return out

