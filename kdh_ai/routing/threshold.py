"""Choosing the auto-accept threshold from a calibration slice, with a finite-sample guarantee.

The client's target applies to the **whole delivered batch**. An item whose model confidence is at least the
threshold is delivered with the model's answer; the others go to people and are delivered with the people's
answer, which has errors too. On a calibration slice (a random sample of the batch, labelled to gold quality)
we know, for each item ``i``, the model's errors ``e_i`` against the gold answer and its size ``n_i``
(reference words for transcription, 1 for classification).

**What is bounded.** Each item's error ratio ``x_i = min(1, e_i / n_i)`` (its own WER, counted at most 100%;
0 or 1 for a label) lies in [0, 1]. For a threshold ``t`` the delivered loss of an item is ``x_i`` if
``c_i >= t`` and ``h+`` (an upper bound of the people's error rate) if not. The promise is on the batch's
per-item mean of these losses, combined with the share ``f`` of items people touch anyway (calibration, gold,
failed items): of those, the share ``g`` delivered with the people's answers has their error rate, the rest
(gold items, a reviewed calibration slice) is delivered exact: ``R_batch(t) = (1 - f) M(t) + g h+``. (The
point estimate shown beside the bound is the word-weighted ratio, the WER a client computes; the simulation
in ``benchmarks/routing.py`` checks the realised word-weighted WER against the promise.)

**The model's part: a betting test, valid in finite samples.** Per-item errors are bounded but heavy-tailed
(most clips have none, a few noisy ones have most words wrong), so a CLT bound is too optimistic on a slice
of tens of items. For each threshold we test ``H0: M(t) > (target - g h+) / (1 - f)`` with the betting
(hedged capital) test of Waudby-Smith and Ramdas ("Estimating means of bounded random variables by betting",
JRSS-B 2023), in its form for sampling *without replacement* from the batch (Waudby-Smith and Ramdas,
"Confidence sequences for sampling without replacement", NeurIPS 2020): the slice is a random subset of the
batch's routable items, so the bound covers the items actually delivered, not a population mean. The wealth
is averaged over a few fixed orderings of the slice (an average of e-values is an e-value); ``H0`` is
rejected when it reaches ``1 / delta_model``. With earlier batches' slices pooled
(``kdh route --prior-calibration``) the items of those slices and of this batch are assumed exchangeable
(i.i.d. draws of the client's stream): given their values, the pooled slice is then a uniformly random subset
of the pooled slice and the batch together, so the same without-replacement test bounds that larger
population's mean, and the batch's own losses follow by subtracting the slice's. (An earlier version bounded
the stream's mean and added the batch's sampling noise with a Chernoff bound for Bernoulli losses; for a
batch of a few dozen units, a single 10-minute recording, that noise term alone exceeded a 10% target.)

**The people's part.** ``h+`` is a Clopper-Pearson upper bound on the people's word (or label) error rate
from the gold answers (:func:`people_upper_bound`, assuming their errors are independent across words; it is
an upper bound, so a few gold answers without an error do not promise people who never err). The error
level is split: ``delta / 3`` for the people, ``2 delta / 3`` for the model (Bonferroni,
:func:`split_delta`), so the promise holds with probability at least ``1 - delta`` in finite samples. An
assumed rate (``--human-wer``) is taken as exact and the model gets all of ``delta``.

**Which threshold (Learn then Test, fixed sequence).** Candidate thresholds are ordered from "everything to
people" to "everything auto-accepted"; we stop at the first whose null cannot be rejected, and the chosen
threshold is the last one rejected, i.e. the smallest human share whose risk is controlled. Fixed-sequence
testing controls the family-wise error at ``delta`` without a correction for the number of thresholds
(Angelopoulos, Bates, Candes, Jordan, Lei: "Learn then Test: Calibrating Predictive Algorithms to Achieve
Risk Control", 2021, section 4). ``benchmarks/routing.py`` measures how often the target held on several
pools (``benchmarks/routing.md``).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(size=400)
    >>> units = np.full(400, 20)
    >>> errors = rng.binomial(20, 0.25 * (1 - conf))     # low confidence, more errors
    >>> choice = choose_threshold(conf[:200], errors[:200], units[:200], batch_confidence=conf[200:],
    ...                           human_error_rate=0.02, human_error_upper=0.03, target=0.08)
    >>> choice.reachable, round(choice.human_share, 2) < 1.0, choice.risk_upper <= 0.08
    (True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kdh_ai.errors import InvalidInputError

__all__ = ["ThresholdChoice", "betting_upper_bound", "choose_threshold", "item_error_ratio", "people_upper_bound",
           "rate_and_se", "ratio_upper_bound", "risk_at_threshold", "split_delta"]

_ORDERINGS = 8   # fixed orderings of the slice the betting wealth is averaged over
_TRUNCATE = 0.75  # largest bet, as a share of what keeps the wealth non-negative (Waudby-Smith & Ramdas)


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
        human_error_upper: The upper bound of the people's rate used in the promise (Clopper-Pearson on gold).
        curve: One row per candidate threshold: ``threshold``, ``human_share``, ``risk``, ``risk_upper``,
            ``controlled`` (its bound meets the target and so do all before it in the fixed sequence).
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


def split_delta(delta: float, *, people_measured: bool) -> tuple[float, float]:
    """Error levels ``(people, model)`` whose sum is ``delta``: a third to the people's bound (Clopper-Pearson on
    words is tight), two thirds to the model's (the heavy-tailed part); all to the model when the people's rate
    is an assumption."""
    return (delta / 3, 2 * delta / 3) if people_measured else (0.0, delta)


def item_error_ratio(errors: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Each item's error ratio ``min(1, errors / units)`` (an item's WER counted at most 100%).

    An item with an empty reference (silence, a wordless segment of a long recording) counts 1 when the answer
    has words (insertions) and 0 when it is empty too.

    Example:
        >>> item_error_ratio(np.array([1, 0, 2, 30]), np.array([10, 0, 0, 20])).tolist()
        [0.1, 0.0, 1.0, 1.0]
    """
    e = np.asarray(errors, dtype=float)
    n = np.asarray(units, dtype=float)
    return np.clip(np.divide(e, n, out=(e > 0).astype(float), where=n > 0), 0.0, 1.0)


def people_upper_bound(errors: float, units: float, *, delta: float) -> float:
    """Clopper-Pearson upper bound, at level ``1 - delta``, of the people's error rate from gold answers.

    ``errors`` word (or label) errors in ``units`` words (labels), taken as independent trials (Clopper and
    Pearson, "The use of confidence or fiducial limits illustrated in the case of the binomial", Biometrika
    1934). Zero errors still give a positive bound.

    Example:
        >>> round(people_upper_bound(0, 150, delta=0.025), 4)
        0.0243
    """
    if units <= 0:
        return 1.0
    k = min(float(errors), float(units))
    if k >= units:
        return 1.0
    return float(stats.beta.ppf(1 - delta, k + 1, units - k))


def _log_wealth(x: np.ndarray, m0: np.ndarray, population: int | None, log_inv_delta: float) -> np.ndarray:
    """Log of the betting wealth against ``H0: mean >= m0``, averaged over fixed orderings of the slice.

    Args:
        x: ``(k, m)`` item losses in [0, 1] (one row per hypothesis, the slice in its drawn order).
        m0: ``(k,)`` null means of the population (the batch's routable items, or the stream).
        population: Size of the finite population the slice was drawn from without replacement (``None``:
            i.i.d.).
        log_inv_delta: ``log(1 / delta)``, which sizes the bets (predictable plug-in, Waudby-Smith & Ramdas).
    """
    k, m = x.shape
    rng = np.random.default_rng(12345)
    orders = [np.arange(m)] + [rng.permutation(m) for _ in range(_ORDERINGS - 1)]
    xs = np.stack([x[:, o] for o in orders], axis=1)  # (k, P, m)
    # Everything the bet at step i uses comes from the items before i (predictable): cumulative sums.
    csum = np.cumsum(xs, axis=2)
    seen = np.concatenate([np.zeros(xs.shape[:2] + (1,)), csum[:, :, :-1]], axis=2)   # sum before step i
    steps = np.arange(m)
    mu_hat = (0.5 + seen) / (steps + 1)                                                   # estimate before step i
    sq = (xs - mu_hat) ** 2
    var_sum = 0.25 + np.concatenate([np.zeros(xs.shape[:2] + (1,)), np.cumsum(sq, axis=2)[:, :, :-1]], axis=2)
    sigma2 = var_sum / (steps + 1)
    m0b = np.asarray(m0, dtype=float)[:, None, None]
    if population is None:
        mu0 = np.broadcast_to(m0b, xs.shape)
    else:
        mu0 = (population * m0b - seen) / np.maximum(population - steps, 1)
    impossible = np.any(mu0 > 1 + 1e-12, axis=2)  # the rest cannot bring the mean up to m0: H0 is false
    mu0 = np.clip(mu0, 0.0, 1.0)
    lam = np.minimum(np.sqrt(2 * log_inv_delta / (m * sigma2)), _TRUNCATE / np.maximum(1 - mu0, 1e-9))
    log_w = np.where(impossible, np.inf, np.sum(np.log1p(lam * (mu0 - xs)), axis=2))
    with np.errstate(invalid="ignore"):
        top = np.max(log_w, axis=1, keepdims=True)
        out = top[:, 0] + np.log(np.mean(np.exp(log_w - np.where(np.isfinite(top), top, 0.0)), axis=1))
    return np.where(np.isinf(top[:, 0]), top[:, 0], out)


def betting_upper_bound(x: np.ndarray, *, delta: float, population: int | None = None, iters: int = 22
                        ) -> np.ndarray:
    """Upper confidence bounds, at level ``1 - delta``, of the mean of [0, 1] losses (one per row of ``x``).

    The mean is that of the finite population of ``population`` items the slice was drawn from without
    replacement (``None``: of the i.i.d. stream). Betting test inverted by bisection (the wealth grows with the
    null mean). See the module docstring.

    Example:
        >>> x = np.array([[0.0] * 90 + [1.0] * 10])
        >>> up = betting_upper_bound(x, delta=0.05)[0]
        >>> bool(0.1 < up < 0.25)
        True
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    k, m = x.shape
    if m == 0:
        return np.ones(k)
    lo, hi = np.zeros(k), np.ones(k)
    log_inv = float(np.log(1 / delta))
    for _ in range(iters):
        mid = (lo + hi) / 2
        rejected = _log_wealth(x, mid, population, log_inv) >= log_inv
        hi = np.where(rejected, mid, hi)
        lo = np.where(rejected, lo, mid)
    return hi


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
        raise InvalidInputError("need at least one item with a positive size to estimate an error rate")
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
        raise InvalidInputError("need at least one item with a positive size to estimate an error rate")
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
    human_error_upper: float | None = None,
    human_error_se: float | None = None,
    people_delta: float = 0.0,
    target: float | None = None,
    budget: float | None = None,
    fixed_human_share: float = 0.0,
    fixed_error_share: float | None = None,
    start_threshold: float | None = None,
    population: int | None = None,
    delta: float = 0.05,
    n_candidates: int = 100,
    curve_bounds: bool = True,
) -> ThresholdChoice:
    """Choose the auto-accept threshold (see the module docstring for the method and its guarantee).

    Args:
        confidence: Model confidence of each calibration item.
        errors: Model errors of each calibration item against its gold-quality answer.
        units: Size of each calibration item (reference words; 1 for classification).
        batch_confidence: Confidence of every item that routing decides on (the batch without the fixed
            shares); the human share of a threshold is computed exactly on it.
        human_error_rate: People's measured error rate (WER, or 1 - accuracy).
        human_error_upper: Its upper bound at level ``1 - people_delta`` (:func:`people_upper_bound`);
            ``None``: the rate is taken as exact (an assumption).
        human_error_se: Instead of ``human_error_upper`` (older callers): the bound is taken as
            ``rate + z * se`` at level ``1 - people_delta``.
        people_delta: Error level spent on the people's bound (:func:`split_delta`); the model's part gets
            ``delta - people_delta``.
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
        population: The number of items the slice and the batch were drawn from, when larger than the slice
            plus ``batch_confidence`` (routing again after people answered some items: those left the batch but
            not the population). The slice (this batch's random slice, with earlier batches' slices pooled
            under the exchangeability assumption of the module docstring) is a random subset of it; the bound
            covers the model's losses on every item not in the slice, a superset of the batch's (conservative).
        delta: Error level of the whole promise (people and model): it holds with probability at least
            ``1 - delta``.
        n_candidates: Number of candidate thresholds (quantiles of ``batch_confidence``).
        curve_bounds: Compute every candidate's upper bound for the curve (by bisection; the simulation turns
            it off: the decision needs only the test at the target and the chosen row's bound).

    Raises:
        ValueError: Neither or both of ``target`` and ``budget``; inputs of different lengths; values
            outside their range.
    """
    conf = np.asarray(confidence, dtype=float)
    err = np.asarray(errors, dtype=float)
    n = np.asarray(units, dtype=float)
    _check_choice_inputs(conf, err, n, target=target, budget=budget, delta=delta, people_delta=people_delta,
                         fixed_human_share=fixed_human_share, human_error_rate=human_error_rate)
    h = float(human_error_rate)
    h_up = _people_upper(h, human_error_upper, human_error_se, people_delta)
    f = fixed_human_share
    g = f if fixed_error_share is None else float(fixed_error_share)
    if not 0 <= g <= f + 1e-12:
        raise InvalidInputError(f"fixed_error_share must lie in [0, fixed_human_share={f}], got {fixed_error_share}")
    batch = np.sort(np.asarray(batch_confidence, dtype=float))
    started = start_threshold is not None and start_threshold < float("inf")
    cands = _candidates(batch, n_candidates, start_threshold if started else None)
    test = _SliceTest.build(conf, item_error_ratio(err, n), cands, batch, delta_model=delta - people_delta,
                            population=population, h_up=h_up)

    rows = []
    for j, t in enumerate(cands):
        share_routed = 1 - test.n_auto[j] / test.n_batch if test.n_batch else 0.0
        # Point estimate: the word-weighted ratio (model errors where auto-accepted, people's rate elsewhere).
        losses = risk_at_threshold(conf, err, n, t, human_error_rate=h)
        rows.append({"threshold": t, "human_share": f + (1 - f) * share_routed,
                     "risk": (1 - f) * float(losses.sum() / float(n.sum())) + g * h})
    curve = pd.DataFrame(rows)
    if curve_bounds or target is None:
        m_up = test.batch_upper(np.arange(len(cands))) if test.n_batch else np.zeros(len(cands))
        curve["risk_upper"] = np.maximum(curve["risk"], (1 - f) * m_up + g * h_up)
    else:
        curve["risk_upper"] = np.nan
    if target is not None:
        meets = test.meets_target(target, fixed_human_share=f, fixed_error_share=g)
        curve["meets_target"] = meets & (curve["risk"].to_numpy() <= target)
        return _choose_for_target(curve, test, target=target, first=1 if started else 0, fixed=(f, g),
                                  delta=delta, human_error_rate=human_error_rate)
    return _choose_within_budget(curve, budget, delta=delta, human_error_rate=human_error_rate, h_up=h_up)


def _check_choice_inputs(conf: np.ndarray, err: np.ndarray, n: np.ndarray, *, target: float | None,
                         budget: float | None, delta: float, people_delta: float, fixed_human_share: float,
                         human_error_rate: float) -> None:
    """Refuse :func:`choose_threshold`'s inputs out of their range, naming the valid one."""
    if (target is None) == (budget is None):
        raise InvalidInputError("give exactly one of target= (least human share) or budget= (best quality)")
    if not (len(conf) == len(err) == len(n)):
        raise InvalidInputError(f"confidence, errors and units differ in length ({len(conf)}, {len(err)}, {len(n)})")
    if len(conf) < 2:
        raise InvalidInputError(f"the calibration slice has {len(conf)} labelled item(s); at least 2 are needed "
                         "(30 or more for a meaningful bound)")
    if not 0 < delta < 0.5:
        raise InvalidInputError(f"delta must lie in (0, 0.5), got {delta}")
    if not 0 <= people_delta < delta:
        raise InvalidInputError(f"people_delta must lie in [0, delta={delta}), got {people_delta}")
    if not 0 <= fixed_human_share < 1:
        raise InvalidInputError(f"fixed_human_share must lie in [0, 1), got {fixed_human_share}")
    if not 0 <= human_error_rate <= 1:
        raise InvalidInputError(f"human_error_rate must lie in [0, 1], got {human_error_rate}")
    if target is not None and not 0 < target < 1:
        raise InvalidInputError(f"target must lie in (0, 1), got {target}")


def _people_upper(h: float, human_error_upper: float | None, human_error_se: float | None,
                  people_delta: float) -> float:
    """The people's error rate used in the promise: their upper bound, ``rate + z * se``, or the rate."""
    if human_error_upper is not None:
        return max(h, float(human_error_upper))
    if not human_error_se:
        return h
    return min(1.0, h + float(stats.norm.ppf(1 - max(people_delta, 1e-9))) * float(human_error_se))


def _candidates(batch: np.ndarray, n_candidates: int, start_threshold: float | None) -> list[float]:
    """Candidates from "all human" (inf) down to "all auto" (-inf), at quantiles of the batch's confidence
    (after ``inf``, the sequence starts at ``start_threshold`` when one is given)."""
    qs = np.linspace(1.0, 0.0, n_candidates + 1)
    cands = [float("inf")] + sorted({float(np.quantile(batch, q)) for q in qs[1:-1]} if len(batch) else set(),
                                     reverse=True) + [float("-inf")]
    if start_threshold is not None:
        cands = [float("inf"), float(start_threshold)] + [c for c in cands if c < start_threshold]
    return cands


@dataclass
class _SliceTest:
    """The calibration slice's evidence at every candidate threshold: the betting test at the target and the
    upper bound of the batch's loss (see the module docstring)."""

    y: np.ndarray  # (k, m): model losses of the slice's auto-accepted items at each candidate
    y_uniq: np.ndarray  # one row per distinct split of the slice (one betting test each)
    inverse: np.ndarray  # candidate -> its row of y_uniq
    n_auto: np.ndarray  # batch items auto-accepted at each candidate
    n_batch: int
    population: int  # the finite population the slice is a random subset of (slice + batch, or more)
    delta_model: float
    h_up: float

    @classmethod
    def build(cls, conf: np.ndarray, x: np.ndarray, cands: list[float], batch: np.ndarray, *, delta_model: float,
              population: int | None, h_up: float) -> _SliceTest:
        t_arr = np.array(cands)
        auto = conf[None, :] >= t_arr[:, None]                        # (k, m): slice items auto-accepted
        y = np.where(auto, x[None, :], 0.0)                           # model losses of auto-accepted items
        n_auto = np.array([int(np.sum(batch >= t)) for t in cands])   # batch items auto-accepted
        uniq, inverse = np.unique(auto, axis=0, return_inverse=True)  # one betting test per distinct slice split
        pop = max(len(x) + len(batch), int(population or 0))
        return cls(y, np.where(uniq, x[None, :], 0.0), np.asarray(inverse).reshape(-1), n_auto, len(batch), pop,
                   delta_model, h_up)

    def null(self, allowed: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Null mean of the auto-accepted losses for a total of ``allowed`` in the batch's auto-accepted items."""
        return (self.y[rows].sum(axis=1) + allowed) / self.population

    def batch_upper(self, j_rows: np.ndarray) -> np.ndarray:
        """Upper bound of the batch's per-item mean loss (before the fixed shares) at candidates ``j_rows``."""
        up = betting_upper_bound(self.y_uniq[self.inverse[j_rows]], delta=self.delta_model,
                                 population=self.population)
        auto_sum = self.population * up - self.y[j_rows].sum(axis=1)
        auto_sum = np.clip(auto_sum, 0.0, self.n_auto[j_rows])
        return (auto_sum + (self.n_batch - self.n_auto[j_rows]) * self.h_up) / max(self.n_batch, 1)

    def meets_target(self, target: float, *, fixed_human_share: float, fixed_error_share: float) -> np.ndarray:
        """The test at the target at every candidate: the auto-accepted items may carry at most ``allowed``
        model losses in all."""
        f, g, h_up, n_batch, n_auto = fixed_human_share, fixed_error_share, self.h_up, self.n_batch, self.n_auto
        meets = np.zeros(len(n_auto), dtype=bool)
        if n_batch == 0:
            meets[:] = g * h_up <= target
            return meets
        tau_rest = (target - g * h_up) / (1 - f)
        allowed = n_batch * tau_rest - (n_batch - n_auto) * h_up
        meets |= (allowed >= n_auto) & (allowed >= 0)           # holds even if every auto item were wrong
        undecided = (allowed >= 0) & ~meets
        if undecided.any():
            rows_u = np.nonzero(undecided)[0]
            log_inv = float(np.log(1 / self.delta_model))
            wealth = _log_wealth(self.y_uniq[self.inverse[rows_u]], self.null(allowed[rows_u], rows_u),
                                 self.population, log_inv)
            meets[rows_u] = wealth >= log_inv
        return meets


def _choose_for_target(curve: pd.DataFrame, test: _SliceTest, *, target: float, first: int,
                       fixed: tuple[float, float], delta: float, human_error_rate: float) -> ThresholdChoice:
    """Target mode: the last threshold of the fixed sequence (from row ``first``) whose test and all before
    it meet the target; the first row (everything to people) is the fallback."""
    f, g = fixed
    controlled = [False] * first
    still = True
    for ok_j in curve["meets_target"].iloc[first:]:
        still = still and bool(ok_j)
        controlled.append(still)
    curve["controlled"] = controlled
    ok = curve[curve["controlled"]]
    j = int(ok.index[-1]) if not ok.empty else 0
    if np.isnan(curve.at[j, "risk_upper"]):
        up = float(test.batch_upper(np.array([j]))[0]) if test.n_batch else 0.0
        curve.at[j, "risk_upper"] = max(float(curve.at[j, "risk"]), (1 - f) * up + g * test.h_up)
    row = curve.iloc[j]
    # The test at the target passed: the target itself is a bound at this level.
    upper = min(float(row["risk_upper"]), target) if bool(row["meets_target"]) else float(row["risk_upper"])
    if ok.empty:
        return ThresholdChoice(float("inf"), float(row["human_share"]), float(row["risk"]), upper,
                               bool(row["meets_target"]), target, delta, human_error_rate, test.h_up, curve,
                               "target")
    return ThresholdChoice(float(row["threshold"]), float(row["human_share"]), float(row["risk"]), upper,
                           True, target, delta, human_error_rate, test.h_up, curve, "target")


def _choose_within_budget(curve: pd.DataFrame, budget: float | None, *, delta: float, human_error_rate: float,
                          h_up: float) -> ThresholdChoice:
    """Budget mode: the lowest upper bound among the thresholds whose human share fits the budget."""
    if budget is None or not 0 <= budget <= 1:
        raise InvalidInputError(f"budget must be a share in [0, 1], got {budget}")
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
