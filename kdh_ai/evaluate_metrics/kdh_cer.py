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

import datasets
import evaluate

from kdh_ai.quality import DEFAULT_NORMALIZER, cer

_DESCRIPTION = "Character error rate after Whisper's text normalization (kdh_ai.quality.cer)."
_KWARGS_DESCRIPTION = """
Args:
    predictions: The hypotheses (model or annotator transcripts), one string per item.
    references: The reference transcripts, one string per item.
    normalizer: "english" (default, Whisper's English normalizer), "basic" (any language) or "none".
Returns:
    {"cer": corpus-level character error rate as a fraction (0.05 = 5 %)}
Example:
    >>> import evaluate
    >>> from kdh_ai.evaluate_metrics import metric_path
    >>> evaluate.load(metric_path("kdh_cer")).compute(predictions=["hello word"], references=["Hello, world!"])
    {'cer': 0.09090909090909091}
"""
_CITATION = """@inproceedings{morris2004,
  title={From WER and RIL to MER and WIL: improved evaluation measures for connected speech recognition},
  author={Morris, Andrew Cameron and Maier, Viktoria and Green, Phil},
  booktitle={Interspeech}, year={2004}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KdhCer(evaluate.Metric):
    """Character error rate (``kdh_ai.quality.cer``)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            reference_urls=["https://github.com/jitsi/jiwer"])

    def _compute(self, predictions: list[str], references: list[str], normalizer: str = DEFAULT_NORMALIZER
                 ) -> dict[str, float]:
        return {"cer": cer(list(references), list(predictions), normalizer=normalizer)}  # type: ignore[arg-type]
