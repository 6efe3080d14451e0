"""``kdh_cer``: kdh's character error rate as a Hugging Face ``evaluate`` metric (works offline).

Load it by path (``evaluate.load("cer")`` would fetch a script from the Hub)::

    import evaluate
    from kdh_ai.evaluate_metrics import metric_path
    cer = evaluate.load(metric_path("kdh_cer"))
    cer.compute(predictions=hypotheses, references=references, normalizer="english")

It returns exactly :func:`kdh_ai.quality.cer` on the same inputs: both sides normalized with Whisper's English
normalizer by default (``"basic"`` for other languages, ``"none"`` for whitespace only), then character errors summed
over items and divided by the reference characters, spaces included (corpus-level CER).
"""

from __future__ import annotations

from typing import ClassVar

import evaluate

from kdh_ai.evaluate_metrics.error_rate import CITATION, ErrorRateMetric, kwargs_description
from kdh_ai.quality import cer

_DESCRIPTION = "Character error rate after Whisper's text normalization (kdh_ai.quality.cer)."
_KWARGS_DESCRIPTION = kwargs_description("cer", "character error rate", "{'cer': 0.09090909090909091}")
_CITATION = CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KdhCer(ErrorRateMetric):
    """Character error rate (``kdh_ai.quality.cer``)."""

    key: ClassVar[str] = "cer"
    score = staticmethod(cer)
    description: ClassVar[str] = _DESCRIPTION
    inputs_description: ClassVar[str] = _KWARGS_DESCRIPTION
