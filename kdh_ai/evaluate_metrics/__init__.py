"""kdh's quality metrics as Hugging Face ``evaluate`` modules, loadable offline.

``evaluate.load("wer")`` fetches its metric script from the Hugging Face Hub at run time, so it fails on the
hub's offline machines. The modules here ship inside the ``kdh_ai`` package; ``evaluate.load`` accepts their
local paths and never touches the network. Each module is a thin wrapper over :mod:`kdh_ai.quality` (the
same normalizer, the same numbers):

* ``kdh_wer``: word error rate, :func:`kdh_ai.quality.wer` (``{"wer": ...}``);
* ``kdh_cer``: character error rate, :func:`kdh_ai.quality.cer` (``{"cer": ...}``);
* ``kdh_agreement``: inter-annotator agreement, :func:`kdh_ai.quality.agreement_summary` (percent agreement,
  Fleiss' kappa, Krippendorff's alpha, with the reason for each one that cannot be computed).

Example:
    >>> import evaluate
    >>> wer = evaluate.load(metric_path("kdh_wer"))
    >>> wer.compute(predictions=["the cat sat on a mat"], references=["The cat sat on the mat."])
    {'wer': 0.16666666666666666}
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["METRICS", "metric_path"]

METRICS: tuple[str, ...] = ("kdh_wer", "kdh_cer", "kdh_agreement")
"""The metric modules shipped with kdh_ai."""


def metric_path(name: str) -> str:
    """The local path to pass to ``evaluate.load`` for one of kdh's metrics.

    Args:
        name: One of :data:`METRICS` (``"wer"``, ``"cer"`` and ``"agreement"`` are accepted too).

    Returns:
        The path of the metric's script, as a string.

    Raises:
        ValueError: If ``name`` is not one of kdh's metrics.

    Example:
        >>> Path(metric_path("wer")).name
        'kdh_wer.py'
    """
    full = name if name.startswith("kdh_") else f"kdh_{name}"
    if full not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    return str(Path(__file__).resolve().parent / f"{full}.py")
