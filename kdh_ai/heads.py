"""Classification heads on sentence embeddings: zero-shot from the label names, or trained on human labels.

Both heads turn L2-normalised embeddings ``(n, d)`` into calibrated class probabilities ``(n, k)``; the top
probability is the item's confidence for routing.

* :class:`ZeroShotHead` compares each text with each label's *prototype*: the normalised mean embedding of the
  label's name and description (:func:`label_prototypes`). Probabilities are a softmax of the cosine
  similarities divided by a temperature. It needs no human label, so it pre-labels the first round.
* :class:`LogisticHead` is a multinomial logistic regression trained on the human labels that came back,
  with each label's prototype added as one more training example (so a label nobody has used yet can still be
  predicted, and the first few human labels already help: with one label per class they raise accuracy
  clearly, see ``benchmarks/README.md``). Its probabilities are calibrated by temperature scaling fitted on
  out-of-fold logits (:mod:`kdh_ai.calibration`), which also gives a cross-validated accuracy estimate. The
  texts it was trained on are answered with their out-of-fold logits (cross-fitting), so a human-labelled
  calibration slice that also trained the head still measures it as on unseen texts.

**A head never claims certainty from one class.** When the human labels cover fewer than two classes, or fewer
than ``min_class_coverage`` (half) of the label set, the head has not seen what the other classes look like:
300 labels that are all "ham" would otherwise give a cross-validated accuracy of 1.000 and confidence 1.0 on
every spam text. Such a head carries a :attr:`Head.calibration_warning`: its temperature is not fitted, no
cross-validated accuracy is reported, every prediction it makes is marked ``uncalibrated`` (routing never
auto-accepts those), the job's summary and ``job.json`` say so, and ``kdh select`` asks for the missing classes.

:func:`train_head` is the one call that the active-learning loop makes between rounds. Every head has an
``identity``: a hash of everything that decides its answers (for a trained head: the training labels and the
text hashes they belong to), so a retrained head gives a new configuration hash and redoes the predictions.
Heads are saved to and loaded from ``.npz`` files (:meth:`Head.save`, :func:`load_head`).

Example:
    >>> import numpy as np
    >>> protos = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> zs = ZeroShotHead(protos, ["ham", "spam"], temperature=0.1)
    >>> zs.predict(np.array([[0.9, 0.1]]))[0]
    ['ham']
    >>> x = np.array([[1.0, 0.1], [0.9, 0.0], [0.1, 1.0], [0.0, 0.8]])
    >>> head = train_head(x, ["ham", "ham", "spam", "spam"], classes=["ham", "spam"], calibration_folds=0)
    >>> head.predict(np.array([[0.05, 0.9]]))[0], head.n_train
    (['spam'], 4)
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from kdh_ai.calibration import TemperatureScaling, softmax
from kdh_ai.errors import InvalidInputError

if TYPE_CHECKING:
    from kdh_ai.embeddings import Embedder
    from kdh_ai.labels import LabelSet

__all__ = ["Head", "LogisticHead", "ZeroShotHead", "label_prototypes", "load_head", "train_head"]

logger = logging.getLogger(__name__)


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.all(np.abs(norms - 1.0) < 1e-5):  # already unit vectors: keep the bits (identities hash them)
        return x
    return x / np.where(norms > 0, norms, 1.0)


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _array_hash(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def label_prototypes(labels: LabelSet, embedder: Embedder) -> np.ndarray:
    """One unit vector per label: the normalised mean embedding of its name and description.

    Returns:
        A float32 array ``(len(labels.labels), embedder.dimension)``.
    """
    texts: list[str] = []
    owner: list[int] = []
    for i, label in enumerate(labels.labels):
        for t in label.prompt_texts():
            texts.append(t)
            owner.append(i)
    vecs = embedder.embed(texts)
    out = np.zeros((len(labels.labels), vecs.shape[1]), dtype=np.float32)
    np.add.at(out, np.array(owner), vecs)
    return _normalize(out)


class Head(abc.ABC):
    """A classification head over embeddings.

    Attributes:
        kind: ``"zero_shot"`` or ``"trained"`` (written into every prediction's payload).
        classes: The label names, one per probability column.
        n_train: Human labels the head was trained on (0 for zero-shot).
    """

    kind: ClassVar[str]
    classes: list[str]
    n_train: int

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """A hash of everything that decides this head's answers (part of the job's configuration hash)."""

    @abc.abstractmethod
    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """Uncalibrated scores ``(n, k)``."""

    @property
    @abc.abstractmethod
    def temperature(self) -> float:
        """The temperature that calibrates :meth:`logits`."""

    def predict_proba(self, embeddings: np.ndarray, *, keys: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated class probabilities ``(n, k)``, columns in the order of :attr:`classes`.

        Args:
            embeddings: ``(n, d)`` embeddings.
            keys: The texts' ids (SHA-256); a head trained on some of them answers those out of fold.
        """
        return softmax(self.logits_for(embeddings, keys=keys), temperature=self.temperature)

    def logits_for(self, embeddings: np.ndarray, *, keys: Sequence[str] | None = None) -> np.ndarray:
        """:meth:`logits`, except for texts the head was trained on (see :class:`LogisticHead`)."""
        return self.logits(embeddings)

    def out_of_fold(self, keys: Sequence[str]) -> list[bool]:
        """Which of these texts the head answers out of fold (it was trained on them); none for this head."""
        return [False] * len(keys)

    @property
    def calibration_warning(self) -> str | None:
        """Why this head's confidences must not be trusted (``None`` when nothing is known to be wrong)."""
        return None

    @property
    def missing_classes(self) -> list[str]:
        """Classes with no human label behind them (empty for a head that learned from no labels at all)."""
        return []

    def predict(self, embeddings: np.ndarray, *, keys: Sequence[str] | None = None
                ) -> tuple[list[str], np.ndarray]:
        """Predicted labels and the calibrated probabilities they come from."""
        proba = self.predict_proba(embeddings, keys=keys)
        return [self.classes[i] for i in proba.argmax(axis=1)], proba

    @abc.abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Arrays to save."""

    def info(self) -> dict[str, Any]:
        """What to record about the head (JSON-ready)."""
        return {"kind": self.kind, "identity": self.identity, "n_train": self.n_train,
                "temperature": self.temperature, "classes": list(self.classes),
                "missing_classes": self.missing_classes, "warning": self.calibration_warning}

    def save(self, path: str | Path) -> Path:
        """Save the head to an ``.npz`` file (read it back with :func:`load_head`)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, info=np.array(json.dumps(self.info())), **self._state())
        tmp.replace(p)
        return p


class ZeroShotHead(Head):
    """Zero-shot classification by cosine similarity to label prototypes.

    Args:
        prototypes: ``(k, d)`` label prototypes (:func:`label_prototypes`).
        classes: The ``k`` label names.
        temperature: Softmax temperature of the cosine similarities. Without human labels it cannot be
            fitted; the default suits all-MiniLM-L6-v2 (what fits BANKING77: ``benchmarks/README.md``). Fit it with
            :meth:`calibrate` once some human labels exist.
        identity_extra: Anything else that decided the prototypes (the embedding model and label texts).
    """

    kind: ClassVar[str] = "zero_shot"

    def __init__(self, prototypes: np.ndarray, classes: Sequence[str], *, temperature: float = 0.05,
                 identity_extra: str = "") -> None:
        protos = np.asarray(prototypes, dtype=np.float32)
        if protos.ndim != 2 or len(protos) != len(classes):
            raise ValueError(f"need one prototype row per class: {protos.shape} for {len(classes)} classes")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.prototypes = _normalize(protos)
        self.classes = list(classes)
        self.n_train = 0
        self._temperature = float(temperature)
        self._extra = identity_extra

    @property
    def temperature(self) -> float:
        return self._temperature

    @property
    def identity(self) -> str:
        return _hash({"kind": self.kind, "classes": self.classes, "temperature": round(self._temperature, 6),
                      "prototypes": _array_hash(self.prototypes), "extra": self._extra})

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return _normalize(embeddings) @ self.prototypes.T

    def info(self) -> dict[str, Any]:
        return {**super().info(), "identity_extra": self._extra}

    def calibrate(self, embeddings: np.ndarray, labels: Sequence[str]) -> ZeroShotHead:
        """Fit the temperature on human-labelled items (labels must be in :attr:`classes`)."""
        y = _indices(labels, self.classes)
        self._temperature = TemperatureScaling().fit(self.logits(embeddings), y).temperature_
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {"prototypes": self.prototypes}


class LogisticHead(Head):
    """Multinomial logistic regression on embeddings, calibrated by temperature scaling.

    Trained by :func:`train_head`; the learned state ends in ``_``.

    Attributes:
        coef_: ``(k, d)`` weights. intercept_: ``(k,)`` biases (``-inf`` for a class that had no example).
        temperature_: Calibration temperature (1.0 when there were too few labels to fit one).
        cv_accuracy_: Accuracy of out-of-fold predictions on the human labels (``None`` without folds).
        class_counts_: Human labels per class.
        warning_: Set when the labels cover too few classes (see the module docstring): the temperature is
            not fitted, ``cv_accuracy_`` is ``None``, and predictions are marked uncalibrated.
        oof_logits_: Out-of-fold logits of the training texts, by key (text SHA-256). A text the head was
            trained on is answered with these (cross-fitting), so its prediction, confidence and measured
            error are those of a model that did not see its label: a calibration slice that was also used for
            training then still measures the model honestly (routing relies on it).
    """

    kind: ClassVar[str] = "trained"

    def __init__(self, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray, *, temperature: float,
                 n_train: int, training_id: str, cv_accuracy: float | None = None,
                 class_counts: dict[str, int] | None = None, oof_keys: Sequence[str] | None = None,
                 oof_logits: np.ndarray | None = None, warning: str | None = None) -> None:
        self.classes = list(classes)
        self.warning_ = warning
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = np.asarray(intercept, dtype=np.float64)
        self.temperature_ = float(temperature)
        self.n_train = int(n_train)
        self.cv_accuracy_ = cv_accuracy
        self.class_counts_ = dict(class_counts or {})
        self._training_id = training_id
        self.oof_logits_: dict[str, np.ndarray] = {}
        if oof_keys is not None and oof_logits is not None:
            self.oof_logits_ = {str(key): np.asarray(row, dtype=np.float64)
                                for key, row in zip(oof_keys, oof_logits)}

    @property
    def temperature(self) -> float:
        return self.temperature_

    @property
    def identity(self) -> str:
        return _hash({"kind": self.kind, "classes": self.classes, "training": self._training_id})

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embeddings, dtype=np.float64) @ self.coef_.T + self.intercept_

    def out_of_fold(self, keys: Sequence[str]) -> list[bool]:
        return [key in self.oof_logits_ for key in keys]

    @property
    def calibration_warning(self) -> str | None:
        return self.warning_

    @property
    def missing_classes(self) -> list[str]:
        return [c for c in self.classes if not self.class_counts_.get(c)]

    def logits_for(self, embeddings: np.ndarray, *, keys: Sequence[str] | None = None) -> np.ndarray:
        out = self.logits(embeddings)
        if keys is not None and self.oof_logits_:
            for i, key in enumerate(keys):
                row = self.oof_logits_.get(key)
                if row is not None:
                    out[i] = row
        return out

    def info(self) -> dict[str, Any]:
        return {**super().info(), "cv_accuracy": self.cv_accuracy_, "class_counts": self.class_counts_,
                "training_id": self._training_id}

    def _state(self) -> dict[str, np.ndarray]:
        state = {"coef": self.coef_, "intercept": self.intercept_}
        if self.oof_logits_:
            state["oof_keys"] = np.array(list(self.oof_logits_), dtype=str)
            state["oof_logits"] = np.vstack(list(self.oof_logits_.values()))
        return state


def _indices(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(x) for x in labels if x not in index})
    if unknown:
        raise InvalidInputError(f"labels not in the label set: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; "
                         f"valid labels: {list(classes)[:20]}{' ...' if len(classes) > 20 else ''}")
    return np.array([index[x] for x in labels], dtype=np.int64)


def _fit_lr(x: np.ndarray, y: np.ndarray, weights: np.ndarray, k: int, *, c: float, max_iter: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Fit sklearn's multinomial logistic regression and spread it over all ``k`` classes."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    present = np.unique(y)
    coef = np.zeros((k, x.shape[1]))
    intercept = np.full(k, -np.inf)
    if len(present) == 1:  # one class only: it always wins
        intercept[present[0]] = 0.0
        return coef, intercept
    # BLAS threads slow these small products down on busy cores (benchmarks/README.md), so use one.
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_iter.*")
        clf = LogisticRegression(C=c, max_iter=max_iter).fit(x, y, sample_weight=weights)
    if len(present) == 2:  # sklearn keeps one column for two classes: logits (0, z) give the same softmax
        coef[present[1]] = clf.coef_[0]
        intercept[present[0]] = 0.0
        intercept[present[1]] = clf.intercept_[0]
    else:
        coef[present] = clf.coef_
        intercept[present] = clf.intercept_
    return coef, intercept


def train_head(
    embeddings: np.ndarray,
    labels: Sequence[str],
    *,
    classes: Sequence[str] | None = None,
    prototypes: np.ndarray | None = None,
    c: float = 10.0,
    calibration_folds: int = 3,
    min_calibration_labels: int = 20,
    max_iter: int = 2000,
    seed: int = 0,
    keys: Sequence[str] | None = None,
    min_class_coverage: float = 0.5,
) -> LogisticHead:
    """Train a logistic-regression head on human labels and calibrate it.

    Args:
        embeddings: ``(n, d)`` embeddings of the labelled texts.
        labels: Their ``n`` human labels.
        classes: All label names, in order (default: the sorted distinct ``labels``).
        prototypes: ``(k, d)`` label prototypes added as one training example per class (recommended).
        c: Inverse regularisation strength of the logistic regression.
        calibration_folds: Folds of out-of-fold logits for temperature scaling; 0 disables calibration.
        min_calibration_labels: With fewer human labels, the temperature stays 1.0.
        max_iter: Iterations of the solver.
        seed: Seed of the fold split.
        keys: A stable id per training row (the text's SHA-256), for the head's identity; default: a hash of
            the embeddings.
        min_class_coverage: Share of the label set that must have at least one human label (and at least two
            classes must have one); below it the head carries a :attr:`LogisticHead.warning_` and stays
            uncalibrated.

    Returns:
        The trained, calibrated head.

    Raises:
        ValueError: Shapes disagree, a label is not in ``classes``, or there is nothing to train on.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(f"embeddings must be (n, d) with n = len(labels); got {x.shape} and {len(labels)} labels")
    if c <= 0:
        raise ValueError(f"c must be positive, got {c!r}")
    if calibration_folds == 1 or calibration_folds < 0:
        raise ValueError(f"calibration_folds must be 0 (off) or at least 2, got {calibration_folds}")
    if not 0.0 <= min_class_coverage <= 1.0:
        raise ValueError(f"min_class_coverage must lie in [0, 1], got {min_class_coverage!r}")
    names = list(classes) if classes is not None else sorted({str(v) for v in labels})
    k = len(names)
    y = _indices(labels, names)
    protos = None if prototypes is None else np.asarray(prototypes, dtype=np.float32)
    if protos is not None and protos.shape != (k, x.shape[1]):
        raise ValueError(f"prototypes must be ({k}, {x.shape[1]}), got {protos.shape}")
    if len(y) == 0 and protos is None:
        raise ValueError("no human labels to train on; use the zero-shot head, or give prototypes")

    def fit(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs, ys, ws = x[idx], y[idx], np.ones(len(idx))
        if protos is not None:
            xs = np.vstack([xs, protos])
            ys = np.concatenate([ys, np.arange(k)])
            ws = np.concatenate([ws, np.ones(k)])
        return _fit_lr(xs, ys, ws, k, c=c, max_iter=max_iter)

    coef, intercept = fit(np.arange(len(y)))
    temperature, cv_accuracy = 1.0, None
    counts = Counter(y.tolist())
    warning = _coverage_warning(names, counts, len(y), min_class_coverage) if len(y) else None
    folds = min(calibration_folds, max(counts.values(), default=0))
    enough = len(y) >= max(min_calibration_labels, 2)
    if calibration_folds and not enough:
        logger.info("Only %d human labels: probabilities stay uncalibrated (temperature 1) until there are %d",
                    len(y), max(min_calibration_labels, 2))
    oof = None
    if calibration_folds and folds >= 2:
        from sklearn.model_selection import StratifiedKFold

        oof = np.zeros((len(y), k))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*least populated class.*")
            warnings.filterwarnings("ignore", message=".*number of unique classes is greater than 50%.*")
            splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y))
        for train_idx, test_idx in splits:
            fc, fi = fit(train_idx)
            oof[test_idx] = x[test_idx] @ fc.T + fi
        finite = np.isfinite(oof[np.arange(len(y)), y])  # a class unseen in a fold (no prototypes) can't count
        oof = np.where(np.isfinite(oof), oof, -1e9)
        if finite.sum() >= 2 and enough and warning is None:
            temperature = TemperatureScaling().fit(oof[finite], y[finite]).temperature_
        if warning is None:  # measured on one class only, an accuracy says nothing about the others
            cv_accuracy = float((oof.argmax(axis=1) == y).mean())
    ids = list(keys) if keys is not None else [_array_hash(row[None, :]) for row in x]
    if len(ids) != len(y):
        raise ValueError(f"got {len(ids)} keys for {len(y)} labels")
    training_id = _hash({"rows": sorted(zip(ids, [names[i] for i in y])), "c": c, "folds": calibration_folds,
                         "min_cal": min_calibration_labels, "seed": seed, "max_iter": max_iter,
                         "prototypes": None if protos is None else _array_hash(protos),
                         **({"uncalibrated": True} if warning else {})})
    if warning:
        logger.warning("%s", warning)
    return LogisticHead(names, coef, intercept, temperature=temperature, n_train=len(y), training_id=training_id,
                        cv_accuracy=cv_accuracy, class_counts={names[i]: n for i, n in sorted(counts.items())},
                        oof_keys=ids if oof is not None else None, oof_logits=oof, warning=warning)


def _coverage_warning(names: Sequence[str], counts: Counter[int], n: int, min_class_coverage: float) -> str | None:
    """The warning of a head whose labels cover too few classes, or ``None``.

    Example:
        >>> print(_coverage_warning(["ham", "spam"], Counter({0: 300}), 300, 0.5))
        the 300 human labels cover 1 of 2 classes (ham: 300); none for spam. The head cannot tell these classes apart: its confidences stay uncalibrated, routing will not auto-accept on them, and no cross-validated accuracy is reported. Label items of the missing classes (`kdh select` asks for them), then retrain.
        >>> _coverage_warning(["ham", "spam"], Counter({0: 30, 1: 2}), 32, 0.5) is None
        True
    """
    k = len(names)
    covered = len(counts)
    if covered >= 2 and covered >= min_class_coverage * k:
        return None
    have = ", ".join(f"{names[i]}: {c}" for i, c in counts.most_common(5)) + (", ..." if covered > 5 else "")
    missing = [c for i, c in enumerate(names) if i not in counts]
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    return (f"the {n} human labels cover {covered} of {k} classes ({have}); none for {shown}. The head cannot "
            "tell these classes apart: its confidences stay uncalibrated, routing will not auto-accept on them, "
            "and no cross-validated accuracy is reported. Label items of the missing classes (`kdh select` asks "
            "for them), then retrain.")


def load_head(path: str | Path) -> Head:
    """Read a head saved with :meth:`Head.save`."""
    with np.load(Path(path), allow_pickle=False) as data:
        info = json.loads(str(data["info"]))
        if info["kind"] == ZeroShotHead.kind:
            return ZeroShotHead(data["prototypes"], info["classes"], temperature=info["temperature"],
                                identity_extra=info.get("identity_extra", ""))
        if info["kind"] == LogisticHead.kind:
            return LogisticHead(info["classes"], data["coef"], data["intercept"], temperature=info["temperature"],
                                n_train=info["n_train"], training_id=info["training_id"],
                                cv_accuracy=info.get("cv_accuracy"), class_counts=info.get("class_counts"),
                                oof_keys=data["oof_keys"].tolist() if "oof_keys" in data else None,
                                oof_logits=data["oof_logits"] if "oof_logits" in data else None,
                                warning=info.get("warning"))
    raise InvalidInputError(f"{path}: unknown head kind {info['kind']!r}; valid: 'zero_shot', 'trained'")
