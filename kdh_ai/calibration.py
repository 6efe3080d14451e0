"""Probability calibration: temperature scaling, and the expected calibration error that checks it.

A classifier's raw probabilities are rarely honest: logistic regression trained on ten examples per class says
0.3 where it is right most of the time (``benchmarks/README.md``). Routing needs the opposite: an item whose top probability is 0.9 should
be right about 90% of the time, so a threshold on confidence means what it says. Temperature scaling divides
all logits by one number ``T`` fitted to minimise the negative log-likelihood of held-out labels. It never
changes the predicted label, only how sure the model claims to be.

Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
    >>> labels = np.array([0, 1, 1, 0])
    >>> ts = TemperatureScaling().fit(logits, labels)
    >>> bool(ts.temperature_ > 1.0)   # right 3 times out of 4: soften
    True
    >>> softmax(logits[:1], temperature=1.0).round(3).tolist()
    [[0.881, 0.119]]
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.special import softmax as _softmax

__all__ = ["TemperatureScaling", "expected_calibration_error", "softmax"]


def softmax(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``.

    Raises:
        ValueError: ``temperature`` is not positive.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return _softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


class TemperatureScaling:
    """Temperature scaling of multiclass logits.

    Guo, Pleiss, Sun, Weinberger. *On Calibration of Modern Neural Networks*. ICML 2017.

    Args:
        bounds: Range searched for the temperature.

    Attributes:
        temperature_: The fitted temperature (1.0 until :meth:`fit`).
        nll_: Mean negative log-likelihood of the fitting labels at ``temperature_``.
    """

    def __init__(self, *, bounds: tuple[float, float] = (0.01, 100.0)) -> None:
        if not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
        self.bounds = bounds
        self.temperature_ = 1.0
        self.nll_: float | None = None

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> TemperatureScaling:
        """Fit ``T`` on held-out logits ``(n, k)`` and true class indices ``(n,)``.

        Raises:
            ValueError: Shapes disagree, or a label index is outside ``[0, k)``.
        """
        z = np.asarray(logits, dtype=np.float64)
        y = np.asarray(labels)
        if z.ndim != 2 or y.ndim != 1 or len(z) != len(y):
            raise ValueError(f"logits must be (n, k) and labels (n,), got {z.shape} and {y.shape}")
        if len(y) == 0:
            raise ValueError("no labels to fit a temperature on")
        if y.min() < 0 or y.max() >= z.shape[1]:
            raise ValueError(f"label indices must lie in [0, {z.shape[1]}), got {y.min()}..{y.max()}")
        rows = np.arange(len(y))

        def nll(log_t: float) -> float:
            return float(-log_softmax(z / np.exp(log_t), axis=1)[rows, y].mean())

        res = minimize_scalar(nll, bounds=(np.log(self.bounds[0]), np.log(self.bounds[1])), method="bounded",
                              options={"xatol": 1e-4})
        self.temperature_ = float(np.exp(res.x))
        self.nll_ = float(res.fun)
        return self

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return softmax(logits, temperature=self.temperature_)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, n_bins: int = 15) -> float:
    """Expected calibration error: the mean gap between confidence and accuracy over equal-width bins.

    Naeini, Cooper, Hauskrecht. *Obtaining Well Calibrated Probabilities Using Bayesian Binning*. AAAI 2015.

    Args:
        probabilities: ``(n, k)`` class probabilities.
        labels: ``(n,)`` true class indices.
        n_bins: Number of confidence bins.

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
        0.4
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probabilities must be (n, k) with n = len(labels), got {p.shape} and {y.shape}")
    if len(y) == 0:
        raise ValueError("no items to measure calibration on")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return round(float(total), 12)
