"""Choosing the auto-accept threshold from a calibration slice, with a statistical guarantee.

The client's target applies to the **whole delivered batch**. An item whose model confidence is at least the
threshold is delivered with the model's answer; the others go to people and are delivered with the people's
answer, which has errors too. On a calibration slice (a random sample of the batch, labelled to gold quality)
we know, for each item ``i``, the model's errors ``e_i`` against the gold answer and its size ``n_i``
(reference words for transcription, 1 for classification). The people's error rate ``h`` is measured on gold
items or by overlap. For a threshold ``t`` the delivered error rate is estimated by the ratio

    R(t) = sum_i L_i(t) / sum_i n_i,   L_i(t) = e_i if c_i >= t else h * n_i

and combined with the share ``f`` of items people touch anyway (calibration, gold, items that failed): of
those, the share ``g`` delivered with the people's answers has their error rate, the rest (gold items, a
calibration slice checked by trusted reviewers) is delivered exact: ``R_batch(t) = (1 - f) R(t) + g h``.

**Guarantee (Learn then Test, fixed sequence).** Candidate thresholds are ordered from "everything to people"
to "everything auto-accepted". For each in turn we test ``H0: R_batch(t) > target`` with a one-sided p-value
from the estimator's standard error (delta method for the ratio, Student t quantile). The people's error rate
is measured on other items (gold), so its sampling error enters the variance once, weighted by how much of
the delivered batch people answer: ``((1 - f) B(t) + g)^2 se(h)^2`` with ``B(t)`` the routed share of units
(one bound for the sum, not an upper bound of ``h`` stacked on an upper bound of ``R``, which would spend
``delta`` twice). We stop at the first threshold whose null cannot be rejected at level ``delta``; the chosen
threshold is the last one rejected, i.e. the smallest human share whose risk is controlled. Fixed-sequence
testing controls the family-wise error at ``delta`` without any further correction for the number of
thresholds searched (Angelopoulos, Bates, Candes, Jordan, Lei: "Learn then Test: Calibrating Predictive
Algorithms to Achieve Risk Control", 2021, section 4). The standard error also counts the sampling noise of
the batch itself (its ``len(batch_confidence)`` items), so the bound covers the error rate the client
actually receives, not only its expectation. The model's part has a binomial floor with one pseudo-error on
the auto-accepted units, so a slice whose confident items show no error does not promise a perfect model.
The p-values are asymptotic (CLT), so the guarantee is approximate for small slices;
``benchmarks/routing.py`` measures how often the target actually held (for transcription, 92-95% of
simulated batches with an 80-clip slice alone, 95-98% with one earlier batch's slice pooled:
``benchmarks/routing.md``).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(size=400)
    >>> units = np.full(400, 20)
    >>> errors = rng.binomial(20, 0.25 * (1 - conf))     # low confidence, more errors
    >>> choice = choose_threshold(conf, errors, units, batch_confidence=conf, human_error_rate=0.02,
    ...                           target=0.06)
    >>> choice.reachable, round(choice.human_share, 2) < 1.0, choice.risk_upper <= 0.06
    (True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ThresholdChoice", "choose_threshold", "rate_and_se", "ratio_upper_bound", "risk_at_threshold"]


@dataclass
class ThresholdChoice:
    """The routing threshold and what it promises.

    Attributes:
        threshold: Auto-accept items with confidence >= threshold (``inf``: everything to people).
        human_share: Share of the batch people touch at this threshold, fixed shares included.
        risk: Point estimate of the delivered batch's error rate (WER or 1 - accuracy).
        risk_upper: Its upper confidence bound at level ``1 - delta``.
        reachable: False when even sending everything to people does not meet the target.
        target: The target error rate (``None`` in budget mode).
        delta: Error level of the guarantee.
        human_error_rate: People's measured error rate.
        human_error_upper: Its upper confidence bound (``rate + t * se``; reported, the test uses ``se``).
        curve: One row per candidate threshold: ``threshold``, ``human_share``, ``risk``, ``risk_upper``,
            ``p_value``, ``controlled`` (rejected in the fixed sequence).
        mode: ``"target"`` or ``"budget"``.
    """

    threshold: float
    human_share: float
    risk: float
    risk_upper: float
    reachable: bool
    target: float | None
    delta: float
    human_error_rate: float
    human_error_upper: float
    curve: pd.DataFrame
    mode: str = "target"


def _ratio_se(losses: np.ndarray, units: np.ndarray, r: float, n_predict: int | None) -> tuple[float, float]:
    """Standard error of the ratio estimate (delta method) and Johnson's skewness shift.

    With ``n_predict``, the error covers the realized error rate of ``n_predict`` further items from the
    same population (a prediction bound for the delivered batch). Item errors are right-skewed (most items
    have none, a few have many), which makes a plain t bound too optimistic; Johnson's correction
    (N. J. Johnson, "Modified t tests and confidence intervals for asymmetrical populations", JASA 1978)
    shifts the estimate up by ``mu3 / (6 s^2 m)``.
    """
    m = len(units)
    if m < 2:
        return float("inf"), 0.0
    resid = (losses - r * units) / units.mean()
    var = resid.var(ddof=1)
    extra = var / n_predict if n_predict else 0.0
    shift = float(np.mean(resid**3) / (6 * var * m)) if var > 0 else 0.0
    return float(np.sqrt(var / m + extra)), max(0.0, shift)


def ratio_upper_bound(losses: np.ndarray, units: np.ndarray, *, delta: float = 0.05,
                      n_predict: int | None = None) -> tuple[float, float]:
    """Ratio estimate ``sum(losses) / sum(units)`` and its one-sided upper bound at level ``1 - delta``.

    The standard error comes from the delta method for a ratio of means, with a Student t quantile. With
    ``n_predict``, the bound covers the realized error rate of a batch of ``n_predict`` further items (what
    the client receives), not only the population mean.

    Example:
        >>> r, up = ratio_upper_bound(np.array([1, 0, 2, 1]), np.array([10, 10, 10, 10]))
        >>> round(r, 3), up > r
        (0.1, True)
    """
    losses = np.asarray(losses, dtype=float)
    units = np.asarray(units, dtype=float)
    m = len(units)
    if m == 0 or units.sum() <= 0:
        raise ValueError("need at least one item with a positive size to estimate an error rate")
    r = losses.sum() / units.sum()
    if m < 2:
        return float(r), float("inf")
    se, shift = _ratio_se(losses, units, r, n_predict)
    return float(r), float(r + shift + stats.t.ppf(1 - delta, df=m - 1) * se)


def rate_and_se(errors: np.ndarray, units: np.ndarray) -> tuple[float, float]:
    """Error rate ``sum(errors) / sum(units)`` measured on other items (gold), and its standard error.

    The standard error is the larger of the delta-method one (items are clusters of units: the words of one
    clip share its noise) and a binomial one on the units with one pseudo-error in two pseudo-units added
    (after Agresti and Coull, "Approximate is better than 'exact' for interval estimation of binomial
    proportions", The American Statistician 1998), so that a handful of gold items without a single error
    does not claim people who never err.

    Example:
        >>> rate, se = rate_and_se(np.zeros(20), np.ones(20))   # 20 gold labels, all right
        >>> rate, round(se, 3)
        (0.0, 0.047)
    """
    errors = np.asarray(errors, dtype=float)
    units = np.asarray(units, dtype=float)
    if len(units) == 0 or units.sum() <= 0:
        raise ValueError("need at least one item with a positive size to estimate an error rate")
    total = float(units.sum())
    rate = float(errors.sum() / total)
    se = 0.0
    if len(units) >= 2:
        se, _ = _ratio_se(errors, units, rate, None)
    p = (errors.sum() + 1) / (total + 2)
    return rate, float(max(se, np.sqrt(p * (1 - p) / total)))


def risk_at_threshold(confidence: np.ndarray, errors: np.ndarray, units: np.ndarray, threshold: float, *,
                      human_error_rate: float) -> np.ndarray:
    """Per-item delivered losses ``L_i(t)`` (model errors if auto-accepted, expected human errors if not)."""
    auto = np.asarray(confidence) >= threshold
    return np.where(auto, np.asarray(errors, dtype=float), human_error_rate * np.asarray(units, dtype=float))


def choose_threshold(
    confidence: np.ndarray,
    errors: np.ndarray,
    units: np.ndarray,
    *,
    batch_confidence: np.ndarray,
    human_error_rate: float,
    human_error_se: float | None = None,
    human_error_upper: float | None = None,
    target: float | None = None,
    budget: float | None = None,
    fixed_human_share: float = 0.0,
    fixed_error_share: float | None = None,
    start_threshold: float | None = None,
    delta: float = 0.05,
    n_candidates: int = 100,
) -> ThresholdChoice:
    """Choose the auto-accept threshold (see the module docstring for the method and its guarantee).

    Args:
        confidence: Model confidence of each calibration item.
        errors: Model errors of each calibration item against its gold-quality answer.
        units: Size of each calibration item (reference words; 1 for classification).
        batch_confidence: Confidence of every item that routing decides on (the batch without the fixed
            shares); the human share of a threshold is computed exactly on it.
        human_error_rate: People's measured error rate (WER, or 1 - accuracy).
        human_error_se: Its standard error (see :func:`rate_and_se`); 0 for an assumed, exact rate.
        human_error_upper: Instead of ``human_error_se``: an upper bound at level ``1 - delta``, from which
            the standard error is taken as ``(upper - rate) / z``. Neither: the rate is taken as exact.
        target: Target error rate of the delivered batch (target mode).
        budget: Largest human share allowed, fixed shares included (budget mode).
        fixed_human_share: Share of the batch people touch whatever the threshold (calibration, gold, failed
            items), counted in the human share.
        fixed_error_share: Share of the batch delivered with the people's answers among those fixed items
            (default: all of them). Gold items, and a calibration slice checked by trusted reviewers, are
            delivered exact and do not count here.
        start_threshold: Where the fixed sequence starts (default: ``inf``, everything to people). When the
            people may be worse than the model on its confident items, starting at "everything to people"
            stops at once although a mix would meet the target; a start where the model's *expected* error
            equals the people's (``1 - h`` for a calibrated probability) tests that mix first. It must not
            come from the calibration slice's errors (that would void the guarantee). When nothing in the
            sequence meets the target, everything goes to people, reachable if their own bound allows.
        delta: Error level: the guarantee holds with probability about ``1 - delta``.
        n_candidates: Number of candidate thresholds (quantiles of ``batch_confidence``).

    Raises:
        ValueError: Neither or both of ``target`` and ``budget``; inputs of different lengths; values
            outside their range.
    """
    if (target is None) == (budget is None):
        raise ValueError("give exactly one of target= (least human share) or budget= (best quality)")
    conf = np.asarray(confidence, dtype=float)
    err = np.asarray(errors, dtype=float)
    n = np.asarray(units, dtype=float)
    if not (len(conf) == len(err) == len(n)):
        raise ValueError(f"confidence, errors and units differ in length ({len(conf)}, {len(err)}, {len(n)})")
    if len(conf) < 2:
        raise ValueError(f"the calibration slice has {len(conf)} labelled item(s); at least 2 are needed "
                         "(30 or more for a meaningful bound)")
    if not 0 < delta < 0.5:
        raise ValueError(f"delta must lie in (0, 0.5), got {delta}")
    if not 0 <= fixed_human_share < 1:
        raise ValueError(f"fixed_human_share must lie in [0, 1), got {fixed_human_share}")
    if not 0 <= human_error_rate <= 1:
        raise ValueError(f"human_error_rate must lie in [0, 1], got {human_error_rate}")
    h = float(human_error_rate)
    z = float(stats.norm.ppf(1 - delta))
    if human_error_se is None:
        human_error_se = 0.0 if human_error_upper is None else max(0.0, human_error_upper - h) / z
    h_se = float(human_error_se)
    h_up = h + z * h_se if human_error_upper is None else float(human_error_upper)
    f = fixed_human_share
    g = f if fixed_error_share is None else float(fixed_error_share)
    if not 0 <= g <= f + 1e-12:
        raise ValueError(f"fixed_error_share must lie in [0, fixed_human_share={f}], got {fixed_error_share}")
    batch = np.sort(np.asarray(batch_confidence, dtype=float))
    n_batch = len(batch) or None
    m = len(n)
    t_q = float(stats.t.ppf(1 - delta, df=m - 1))
    u_all = float(n.sum())
    started = start_threshold is not None and start_threshold < float("inf")

    # Candidates from "all human" (inf) down to "all auto" (-inf), at quantiles of the batch's confidence.
    qs = np.linspace(1.0, 0.0, n_candidates + 1)
    cands = [float("inf")] + sorted({float(np.quantile(batch, q)) for q in qs[1:-1]} if len(batch) else set(),
                                     reverse=True) + [float("-inf")]
    if started:
        cands = [float("inf"), float(start_threshold)] + [c for c in cands if c < start_threshold]
    rows = []
    for t in cands:
        share_routed = float(np.mean(batch < t)) if len(batch) else 0.0
        human_share = f + (1 - f) * share_routed
        losses = risk_at_threshold(conf, err, n, t, human_error_rate=h)
        r = float(losses.sum() / u_all)
        se, shift = _ratio_se(losses, n, r, n_batch)
        # Floor for the model's part: its errors on the auto-accepted units as a binomial count with one
        # pseudo-error (as for the people, :func:`rate_and_se`): a slice whose confident items happen to show
        # no error must not promise a model that never errs (one label per item makes this common).
        auto = conf >= t
        u_auto = float(n[auto].sum())
        if u_auto > 0:
            p_auto = (float(err[auto].sum()) + 1) / (u_auto + 2)
            floor = u_auto * p_auto * (1 - p_auto) / u_all**2 * (1 + (m / n_batch if n_batch else 0.0))
            se = float(np.sqrt(max(se**2, floor)))
        h_weight = (1 - f) * (1 - u_auto / u_all) + g  # share of the batch's units people answer
        r_batch = (1 - f) * r + g * h
        se_batch = float(np.sqrt(((1 - f) * se) ** 2 + (h_weight * h_se) ** 2))
        r_up = r_batch + (1 - f) * shift + t_q * se_batch
        if target is None:
            p = float("nan")
        elif se_batch == 0:
            p = 0.0 if r_batch < target else 1.0
        else:
            p = float(stats.t.sf((target - r_batch - (1 - f) * shift) / se_batch, df=m - 1))
        rows.append({"threshold": t, "human_share": human_share, "risk": r_batch, "risk_upper": r_up,
                     "p_value": p})
    curve = pd.DataFrame(rows)

    if target is not None:
        # The first row (everything to people) is the fallback; the sequence starts at row 1 when a start
        # threshold is given, else at row 0.
        first = 1 if started else 0
        controlled = [False] * first
        still = True
        for p in curve["p_value"].iloc[first:]:
            still = still and p <= delta
            controlled.append(still)
        curve["controlled"] = controlled
        ok = curve[curve["controlled"]]
        if ok.empty:
            row = curve.iloc[0]
            return ThresholdChoice(float("inf"), float(row["human_share"]), float(row["risk"]),
                                   float(row["risk_upper"]), bool(row["p_value"] <= delta), target, delta,
                                   human_error_rate, h_up, curve, "target")
        row = ok.iloc[-1]
        return ThresholdChoice(float(row["threshold"]), float(row["human_share"]), float(row["risk"]),
                               float(row["risk_upper"]), True, target, delta, human_error_rate, h_up, curve,
                               "target")

    if budget is None or not 0 <= budget <= 1:
        raise ValueError(f"budget must be a share in [0, 1], got {budget}")
    curve["controlled"] = curve["human_share"] <= budget + 1e-12
    within = curve[curve["controlled"]]
    if within.empty:  # the fixed shares alone exceed the budget
        row = curve.iloc[-1]
        return ThresholdChoice(float("-inf"), float(row["human_share"]), float(row["risk"]),
                               float(row["risk_upper"]), False, None, delta, human_error_rate, h_up, curve,
                               "budget")
    row = within.loc[within["risk_upper"].idxmin()]
    return ThresholdChoice(float(row["threshold"]), float(row["human_share"]), float(row["risk"]),
                           float(row["risk_upper"]), True, None, delta, human_error_rate, h_up, curve, "budget")
