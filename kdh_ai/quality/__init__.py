"""kdh_ai.quality: pure quality metrics and crowd aggregation.

The bottom layer of kdh_ai: it imports nothing else of the package. Every function
is pure, takes its options as keyword arguments, validates its input with
``ValueError`` messages that name the bad item and the valid choices, and raises
:class:`InsufficientDataError` (a ``ValueError``) instead of returning ``NaN`` when
there is not enough data.

* Transcription (:mod:`.text`): :func:`wer`, :func:`cer`, :func:`alignment_counts`,
  :func:`item_error_rates`, :func:`top_confusions`, :func:`normalize_text`.
  Default normalizer: ``"english"`` (Whisper's); ``"basic"`` for other languages.
* Classification (:mod:`.classification`): :func:`accuracy`,
  :func:`classification_report`, :func:`confusion_matrix`.
* Agreement (:mod:`.agreement`): :func:`percent_agreement`, :func:`cohen_kappa`,
  :func:`fleiss_kappa`, :func:`krippendorff_alpha`, :func:`agreement_summary`.
* Annotators vs gold (:mod:`.annotators`): :func:`gold_accuracy` (Wilson 95 %
  interval), :func:`annotator_wer`, :func:`wilson_interval`.
* Aggregation (:mod:`.aggregation`, crowd-kit): :func:`aggregate_labels`,
  :func:`aggregate_texts`, with optional model answers as weighted pseudo-workers.
* Effort (:mod:`.effort`): :func:`real_time_factor`, :func:`compare_prelabel_effort`,
  :func:`effort_per_audio_minute` (human seconds per audio minute, with and without pre-labels).
* Review of long recordings (:mod:`.review`): :func:`review_coverage` (per file: segments and seconds people
  checked, human seconds per audio minute).

Example:
    >>> from kdh_ai import quality
    >>> quality.wer("the cat sat on the mat", "the cat sat on a mat")
    0.16666666666666666
"""

from __future__ import annotations

from ._common import InsufficientDataError
from .aggregation import (
    DEFAULT_MODEL_WEIGHT,
    LABEL_METHODS,
    MODEL_WORKER_PREFIX,
    TEXT_METHODS,
    TIE_BREAKS,
    aggregate_labels,
    aggregate_texts,
    with_model_answers,
)
from .agreement import (
    ALPHA_LEVELS,
    AgreementSummary,
    agreement_summary,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from .annotators import (
    AccuracyEstimate,
    AnnotatorWER,
    GoldAccuracy,
    annotator_wer,
    gold_accuracy,
    wilson_interval,
)
from .classification import (
    ClassificationReport,
    accuracy,
    classification_report,
    confusion_matrix,
)
from .effort import (
    EffortComparison,
    EffortPerMinute,
    RealTimeFactor,
    compare_prelabel_effort,
    effort_per_audio_minute,
    real_time_factor,
)
from .review import review_coverage
from .text import (
    DEFAULT_NORMALIZER,
    NORMALIZERS,
    AlignmentCounts,
    Normalizer,
    alignment_counts,
    cer,
    get_normalizer,
    item_error_rates,
    normalize_text,
    top_confusions,
    wer,
)

__all__ = [
    "ALPHA_LEVELS",
    "DEFAULT_MODEL_WEIGHT",
    "DEFAULT_NORMALIZER",
    "LABEL_METHODS",
    "MODEL_WORKER_PREFIX",
    "NORMALIZERS",
    "TEXT_METHODS",
    "TIE_BREAKS",
    "AccuracyEstimate",
    "AgreementSummary",
    "AlignmentCounts",
    "AnnotatorWER",
    "ClassificationReport",
    "EffortComparison",
    "EffortPerMinute",
    "GoldAccuracy",
    "InsufficientDataError",
    "Normalizer",
    "RealTimeFactor",
    "accuracy",
    "aggregate_labels",
    "aggregate_texts",
    "agreement_summary",
    "alignment_counts",
    "annotator_wer",
    "cer",
    "classification_report",
    "cohen_kappa",
    "compare_prelabel_effort",
    "confusion_matrix",
    "effort_per_audio_minute",
    "fleiss_kappa",
    "gold_accuracy",
    "get_normalizer",
    "item_error_rates",
    "krippendorff_alpha",
    "normalize_text",
    "percent_agreement",
    "real_time_factor",
    "review_coverage",
    "top_confusions",
    "wer",
    "wilson_interval",
    "with_model_answers",
]
