"""``kdh_agreement``: inter-annotator agreement as a Hugging Face ``evaluate`` metric (works offline).

Load it by path::

    import evaluate
    from kdh_ai.evaluate_metrics import metric_path
    agreement = evaluate.load(metric_path("kdh_agreement"))
    agreement.compute(task=df["task"], worker=df["worker"], label=df["label"], level="nominal")

The inputs are the columns of kdh's (and crowd-kit's) ratings table, one row per rating: ``task`` and
``worker`` ids (read as strings) and the ``label`` (strings, integers or floats). It returns exactly the
numbers of :func:`kdh_ai.quality.agreement_summary` on the same table: percent agreement, Fleiss' kappa
(Fleiss, 1971) and Krippendorff's alpha (Krippendorff, 2011) at ``level``. A statistic that cannot be computed
(one annotator per task, one label throughout) is ``None`` and ``reasons`` says why.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import datasets
import evaluate
import pandas as pd

from kdh_ai.quality import agreement_summary

_DESCRIPTION = "Inter-annotator agreement: percent agreement, Fleiss' kappa, Krippendorff's alpha."
_KWARGS_DESCRIPTION = """
Args:
    task: The task (item) id of each rating.
    worker: The annotator id of each rating.
    label: The label given (strings, integers or floats; all of one kind).
    level: Level of measurement of Krippendorff's alpha: "nominal" (default), "ordinal", "interval", "ratio".
    labels: Optional label schema (and order, for "ordinal"); a label outside it is a ValueError.
Returns:
    {"percent_agreement", "fleiss_kappa", "krippendorff_alpha": float or None, "n_ratings", "n_tasks",
     "n_annotators", "n_tasks_multi": int, "level": str, "reasons": {statistic: why it is None}}
Example:
    >>> import evaluate
    >>> from kdh_ai.evaluate_metrics import metric_path
    >>> result = evaluate.load(metric_path("kdh_agreement")).compute(
    ...     task=["t1", "t1", "t2", "t2"], worker=["ann", "bob", "ann", "bob"], label=["pos", "pos", "neg", "pos"])
    >>> result["percent_agreement"], result["n_annotators"]
    (0.5, 2)
"""
_CITATION = """@article{fleiss1971, title={Measuring nominal scale agreement among many raters},
  author={Fleiss, Joseph L}, journal={Psychological Bulletin}, volume={76}, number={5}, year={1971}}
@misc{krippendorff2011, title={Computing Krippendorff's Alpha-Reliability}, author={Krippendorff, Klaus},
  year={2011}}"""


def _features(label: datasets.Value) -> datasets.Features:
    return datasets.Features({"task": datasets.Value("string"), "worker": datasets.Value("string"),
                              "label": label})


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KdhAgreement(evaluate.Metric):
    """Inter-annotator agreement (``kdh_ai.quality.agreement_summary``)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=[_features(datasets.Value("string")), _features(datasets.Value("int64")),
                      _features(datasets.Value("float64"))],
            reference_urls=["https://github.com/pln-fing-udelar/fast-krippendorff"])

    def _compute(self, task: list[str], worker: list[str], label: list[Any], level: str = "nominal",
                 labels: Sequence[Hashable] | None = None) -> dict[str, Any]:
        df = pd.DataFrame({"task": list(task), "worker": list(worker), "label": list(label)})
        s = agreement_summary(df, level=level, labels=labels)  # type: ignore[arg-type]
        return {"percent_agreement": s.percent_agreement, "fleiss_kappa": s.fleiss_kappa,
                "krippendorff_alpha": s.krippendorff_alpha, "n_ratings": s.n_ratings, "n_tasks": s.n_tasks,
                "n_annotators": s.n_annotators, "n_tasks_multi": s.n_tasks_multi, "level": s.level,
                "reasons": dict(s.reasons)}
