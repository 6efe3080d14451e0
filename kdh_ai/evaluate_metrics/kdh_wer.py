"""``kdh_wer``: kdh's word error rate as a Hugging Face ``evaluate`` metric (works offline).

Load it by path (``evaluate.load("wer")`` would fetch a script from the Hub)::

    import evaluate
    from kdh_ai.evaluate_metrics import metric_path
    wer = evaluate.load(metric_path("kdh_wer"))
    wer.compute(predictions=hypotheses, references=references, normalizer="english")

It returns exactly :func:`kdh_ai.quality.wer` on the same inputs: both sides normalized with Whisper's English
normalizer by default (``"basic"`` for other languages, ``"none"`` for whitespace only), then errors summed over
items and divided by the reference words (corpus-level WER, Morris et al., 2004).
"""

from __future__ import annotations

from typing import ClassVar

import evaluate

from kdh_ai.evaluate_metrics.error_rate import CITATION, ErrorRateMetric, kwargs_description
from kdh_ai.quality import wer

_DESCRIPTION = "Word error rate after Whisper's text normalization (kdh_ai.quality.wer)."
_KWARGS_DESCRIPTION = kwargs_description("wer", "word error rate", "{'wer': 0.5}")
_CITATION = CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KdhWer(ErrorRateMetric):
    """Word error rate (``kdh_ai.quality.wer``)."""

    key: ClassVar[str] = "wer"
    score = staticmethod(wer)
    description: ClassVar[str] = _DESCRIPTION
    inputs_description: ClassVar[str] = _KWARGS_DESCRIPTION
