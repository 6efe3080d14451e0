"""What ``kdh_wer`` and ``kdh_cer`` share: an ``evaluate`` metric over one of :mod:`kdh_ai.quality`'s error rates.

Each metric module subclasses :class:`ErrorRateMetric` with its name, its function and its texts.
``evaluate.load`` takes the first non-abstract ``evaluate`` module class it finds in the loaded script, so
the base class is abstract (its ``score`` is).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import datasets
import evaluate

from kdh_ai.quality import DEFAULT_NORMALIZER

__all__ = ["CITATION", "ErrorRateMetric", "kwargs_description"]

CITATION = """@inproceedings{morris2004,
  title={From WER and RIL to MER and WIL: improved evaluation measures for connected speech recognition},
  author={Morris, Andrew Cameron and Maier, Viktoria and Green, Phil},
  booktitle={Interspeech}, year={2004}}"""


def kwargs_description(key: str, what: str, example: str) -> str:
    """The inputs description of an error-rate metric ``key`` (``"wer"``, ``"cer"``) measuring ``what``."""
    return f"""
Args:
    predictions: The hypotheses (model or annotator transcripts), one string per item.
    references: The reference transcripts, one string per item.
    normalizer: "english" (default, Whisper's English normalizer), "basic" (any language) or "none".
Returns:
    {{"{key}": corpus-level {what} as a fraction (0.05 = 5 %)}}
Example:
    >>> import evaluate
    >>> from kdh_ai.evaluate_metrics import metric_path
    >>> evaluate.load(metric_path("kdh_{key}")).compute(predictions=["hello word"], references=["Hello, world!"])
    {example}
"""


class ErrorRateMetric(evaluate.Metric, metaclass=abc.ABCMeta):
    """An error rate of :mod:`kdh_ai.quality` (``score(references, hypotheses, normalizer=...)``) as a metric.

    Subclasses set ``key`` (the result's key), ``score``, ``description`` and ``inputs_description``.
    """

    key: ClassVar[str]
    description: ClassVar[str]
    inputs_description: ClassVar[str]

    @staticmethod
    @abc.abstractmethod
    def score(references: list[str], hypotheses: list[str], *, normalizer: str) -> float:
        """The error rate of ``hypotheses`` against ``references`` (a :mod:`kdh_ai.quality` function)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.description, citation=CITATION, inputs_description=self.inputs_description,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            reference_urls=["https://github.com/jitsi/jiwer"])

    def _compute(self, predictions: list[str], references: list[str], normalizer: str = DEFAULT_NORMALIZER
                 ) -> dict[str, float]:
        return {self.key: self.score(list(references), list(predictions), normalizer=normalizer)}
