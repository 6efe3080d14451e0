"""Classification: sentence embeddings plus a head pre-label texts with a calibrated confidence per item.

How an item is classified:

1. A text that is missing, empty (or only spaces), longer than ``max_chars``, or was not valid UTF-8 in the
   manifest becomes a ``status="error"`` record that says what to do; the rest of the batch goes on.
2. The text is embedded with all-MiniLM-L6-v2 (:class:`kdh_ai.embeddings.Embedder`); embeddings are cached by
   the text's SHA-256 in ``JOB_DIR/embeddings/``, so re-runs and retraining never embed a text twice.
3. A head (:mod:`kdh_ai.heads`) turns the embedding into calibrated probabilities over the labels of
   ``labels.yaml`` (:mod:`kdh_ai.labels`): zero-shot from the label names and descriptions while no human label
   exists, then a logistic regression trained on the human labels as they come back.
4. ``text`` is the most probable label and ``confidence`` its calibrated probability; ``payload`` holds
   ``probabilities`` (the ``top_k`` most probable labels), ``margin`` (top minus second probability), ``head``
   (``"zero_shot"`` or ``"trained"``), ``head_id``, ``n_train`` (human labels the head learned from) and
   ``text_chars``.

The configuration hash covers the embedding model, the label set, the options that change answers and the
head's identity (for a trained head: the labels it learned from), so retraining redoes the predictions and a
re-run with the same labels does nothing. Human labels come from ``--train-labels`` (a CSV ``item_id,label``
with an optional ``text`` column, or an ``annotations.jsonl``) or, by default, from the job's own
``annotations.jsonl`` once annotations were pulled from Label Studio: training a head for a job is the
model-in-the-loop stage's (:func:`kdh_ai.active_learning.classifier_for_job`), not the task type's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal
from xml.sax.saxutils import quoteattr

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from kdh_ai.embeddings import DEFAULT_EMBEDDING_MODEL, Embedder
from kdh_ai.errors import InvalidInputError
from kdh_ai.heads import Head, ZeroShotHead, label_prototypes, load_head, train_head
from kdh_ai.items import Item, sha256_text
from kdh_ai.labels import Label, LabelSet
from kdh_ai.records import Prediction
from kdh_ai.tasks.base import Prelabeler, TaskType

__all__ = ["ClassificationTask", "Classifier", "ClassifyOptions", "load_job_head", "train_head"]

logger = logging.getLogger(__name__)


@pydantic_dataclass(config=ConfigDict(extra="forbid", frozen=True))
class ClassifyOptions:
    """Options of the classification job (flags of ``kdh prelabel classify`` or keys of its YAML).

    Attributes:
        model: A registry name (``kdh models list``) or a local sentence-transformers directory.
        labels: Path of the ``labels.yaml`` file (the ``--labels`` flag overrides it).
        head: ``"auto"``: trained on human labels when there are any, else zero-shot; ``"zero_shot"`` or
            ``"trained"`` to force one (``"trained"`` without human labels is an error).
        train_labels: Human labels to train on: a CSV ``item_id,label[,text]`` or an ``annotations.jsonl``.
            Default: the job's own ``annotations.jsonl``, when it exists.
        label_prototypes: Add each label's name/description embedding as one training example (helps a lot
            while there are few human labels, and lets the head predict labels nobody has used yet).
        c: Inverse regularisation strength of the logistic regression.
        calibration_folds: Folds of out-of-fold predictions that fit the temperature (0: no calibration).
        zero_shot_temperature: Softmax temperature of the zero-shot head.
        max_chars: Longer texts are refused as errors (the model reads only ~1,000 characters anyway).
        top_k: Labels kept in each prediction's ``probabilities`` (all of them when there are fewer).
        batch_size: Items per unit of work written to ``predictions.jsonl``.
        embed_batch_size: Texts per forward pass of the embedding model.
        cpu_threads: Torch threads for the embedding model (0 = torch's default).
        seed: Seed of the calibration folds.
    """

    model: str = DEFAULT_EMBEDDING_MODEL
    labels: str | None = None
    head: Literal["auto", "zero_shot", "trained"] = "auto"
    train_labels: str | None = None
    label_prototypes: bool = True
    c: float = Field(10.0, gt=0)
    calibration_folds: int = Field(3, ge=0, le=10)
    zero_shot_temperature: float = Field(0.05, gt=0, le=10)
    max_chars: int = Field(2000, ge=1)
    top_k: int = Field(5, ge=1)
    batch_size: int = Field(256, ge=1)
    embed_batch_size: int = Field(32, ge=1)
    cpu_threads: int = Field(0, ge=0)
    seed: int = 0

    def answer_signature(self) -> dict[str, Any]:
        """The options that change the answers (they go into the config hash; the head adds its own)."""
        return {"max_chars": self.max_chars, "top_k": self.top_k}

    def train_signature(self) -> dict[str, Any]:
        """The options that change a trained head."""
        return {"label_prototypes": self.label_prototypes, "c": self.c, "calibration_folds": self.calibration_folds,
                "seed": self.seed}


class ClassificationTask(TaskType):
    """Classification in Label Studio: the text, and one choice per label (hints from the descriptions).

    Args:
        labels: The label set (or names); :meth:`label_config` may also be given the names.
    """

    name: ClassVar[str] = "classification"
    item_kind: ClassVar[str] = "text"
    from_name: ClassVar[str] = "label"
    to_name: ClassVar[str] = "text"
    confidence_is_probability: ClassVar[bool] = True

    filter_above: ClassVar[int] = 10
    """With more labels than this, the template adds a filter box above the choices."""

    def __init__(self, labels: LabelSet | Sequence[str] | None = None) -> None:
        self.labels = labels if isinstance(labels, LabelSet) or labels is None else LabelSet.from_names(list(labels))

    def label_config(self, *, labels: Iterable[str] | None = None) -> str:
        """The Text + Choices template.

        Raises:
            ValueError: No labels were given here or to the constructor.
        """
        if labels is not None:
            names = list(labels)
            known = {lab.name: lab for lab in self.labels.labels} if self.labels else {}
            items = [known.get(n) or Label(name=n) for n in names]
        elif self.labels is not None:
            items = list(self.labels.labels)
        else:
            raise InvalidInputError("the classification template needs the label list; give labels=[...] "
                             "(from labels.yaml)")
        lines = ['<View>', f'  <Text name="{self.to_name}" value="$text"/>']
        if len(items) > self.filter_above:
            lines.append(f'  <Filter name="label_filter" toName="{self.from_name}" hotkey="shift+f" minlength="0" '
                         'placeholder="Type to filter the labels"/>')
        lines.append(f'  <Choices name="{self.from_name}" toName="{self.to_name}" choice="single" required="true">')
        for lab in items:
            hint = f" hint={quoteattr(lab.description)}" if lab.description else ""
            lines.append(f"    <Choice value={quoteattr(lab.name)}{hint}/>")
        lines += ["  </Choices>", "</View>"]
        return "\n".join(lines)

    def answer_to_result(self, answer: str) -> list[dict[str, Any]]:
        return [{"from_name": self.from_name, "to_name": self.to_name, "type": "choices",
                 "value": {"choices": [answer]}}]

    def result_to_answer(self, result: list[dict[str, Any]]) -> str | None:
        for r in result or []:
            if r.get("from_name") == self.from_name and r.get("type") == "choices":
                choices = r.get("value", {}).get("choices", [])
                return choices[0] if choices else None
        return None


class Classifier(Prelabeler):
    """Embeddings + head pre-labeling over a stream of text items.

    The embedding model loads in the constructor; the head starts zero-shot unless one is given, and
    :meth:`train` replaces it. :meth:`predict` is a lazy generator.

    Args:
        options: The job's options.
        labels: The label set.
        embedder: An already loaded embedder (default: load ``options.model``).
        cache_dir: Embedding cache folder when the embedder is loaded here (``None``: no cache).
        head: A head to start with (default: zero-shot from the label prototypes).
        source: The input file, written into each prediction's ``source``.

    Example:
        >>> clf = Classifier(ClassifyOptions(), labels=LabelSet.from_names(["ham", "spam"]))  # doctest: +SKIP
        >>> [p.text for p in clf.predict([Item("a", text="WIN a prize! txt 8007")])]          # doctest: +SKIP
        ['spam']
    """

    task: ClassVar[str] = "classification"

    def __init__(self, options: ClassifyOptions, *, labels: LabelSet, embedder: Embedder | None = None,
                 cache_dir: str | Path | None = None, head: Head | None = None, source: str | None = None) -> None:
        self.options = options
        self.source = source
        self.labels = labels
        self.embedder = embedder or Embedder(options.model, cache_dir=cache_dir, batch_size=options.embed_batch_size,
                                             cpu_threads=options.cpu_threads)
        self.prototypes = label_prototypes(labels, self.embedder)
        self.head: Head = head or ZeroShotHead(self.prototypes, labels.names,
                                               temperature=options.zero_shot_temperature,
                                               identity_extra=f"{self.embedder.model_key}:{labels.identity()}")
        if self.head.classes != labels.names:
            raise InvalidInputError(f"the head's classes {self.head.classes[:5]}... differ from the label set's "
                             f"{labels.names[:5]}...; train the head on this label set")

    # ---- identity --------------------------------------------------------------------------------------------
    @property
    def model_info(self) -> dict[str, str]:  # type: ignore[override]
        return {**self.embedder.model_info, "head": f"{self.head.kind}:{self.head.identity[:8]}"}

    @property
    def config_hash(self) -> str:  # type: ignore[override]
        identity = {"embedding": self.embedder.model_key, "labels": self.labels.identity(),
                    "answers": self.options.answer_signature(), "head": self.head.identity,
                    "engine": "sentence-transformers"}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    # ---- training --------------------------------------------------------------------------------------------
    def train(self, texts: Sequence[str], labels: Sequence[str], *, log_progress: bool = False) -> Head:
        """Train a new head on human-labelled texts (embedded through the cache) and use it from now on.

        Raises:
            ValueError: A label is not in the label set (the message lists the valid ones).
        """
        hashes = [sha256_text(t) for t in texts]
        x = self.embedder.embed(texts, hashes=hashes, log_progress=log_progress)
        o = self.options
        self.head = train_head(x, labels, classes=self.labels.names,
                               prototypes=self.prototypes if o.label_prototypes else None, c=o.c,
                               calibration_folds=o.calibration_folds, seed=o.seed, keys=hashes)
        return self.head

    # ---- prediction -------------------------------------------------------------------------------------------
    def _check(self, item: Item) -> str | None:
        """Why the item cannot be classified, or ``None``."""
        if item.error:
            return item.error
        if item.text is None:
            return "no text given; add the text to the manifest's 'text' column"
        if not item.text.strip():
            return "text is empty (or only spaces); give the text to classify, or remove the row"
        if len(item.text) > self.options.max_chars:
            return (f"text is {len(item.text)} characters long, over max_chars={self.options.max_chars}; shorten "
                    "or split it, or raise max_chars (the model reads only about the first 1,000 characters)")
        return None

    def _payload(self, probs: Any, text_chars: int) -> dict[str, Any]:
        order = probs.argsort()[::-1]
        top = order[: self.options.top_k]
        second = float(probs[order[1]]) if len(order) > 1 else 0.0
        payload = {"probabilities": {self.head.classes[i]: round(float(probs[i]), 6) for i in top},
                   "margin": round(float(probs[order[0]]) - second, 6), "head": self.head.kind,
                   "head_id": self.head.identity, "n_train": self.head.n_train, "text_chars": text_chars}
        if self.head.calibration_warning:  # routing never auto-accepts on this confidence
            payload["uncalibrated"] = self.head.calibration_warning
        return payload

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        """Lazily classify items, ``options.batch_size`` at a time (errors are yielded with their batch)."""
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.options.batch_size:
                yield self._classify(batch)
                batch = []
        if batch:
            yield self._classify(batch)
        if self.embedder.cache is not None:
            self.embedder.cache.compact()

    def _classify(self, batch: list[Item]) -> list[Prediction]:
        model, config_hash = self.model_info, self.config_hash
        out: list[Prediction] = []
        good: list[tuple[Item, str]] = []
        for item in batch:
            sha = None if item.error or item.text is None else sha256_text(item.text)
            problem = self._check(item)
            if problem:
                payload = {"text_chars": len(item.text)} if item.text is not None and not item.error else {}
                out.append(Prediction.failed(item_id=item.item_id, task=self.task, error=problem, model=model,
                                             config_hash=config_hash, source=self.source, sha256=sha, payload=payload))
            else:
                good.append((item, sha))  # type: ignore[arg-type]
        if good:
            keys = [sha for _, sha in good]
            x = self.embedder.embed([it.text for it, _ in good], hashes=keys)  # type: ignore[arg-type]
            names, proba = self.head.predict(x, keys=keys)  # texts it was trained on: out of fold
            for (item, sha), name, probs, oof in zip(good, names, proba, self.head.out_of_fold(keys)):
                payload = self._payload(probs, len(item.text or ""))
                if oof:
                    payload["out_of_fold"] = True
                out.append(Prediction(item_id=item.item_id, task=self.task, text=name,
                                      confidence=min(1.0, max(0.0, round(float(probs.max()), 6))), status="ok",
                                      model=model, config_hash=config_hash, source=self.source, sha256=sha,
                                      payload=payload))
        return out


def load_job_head(job_dir: str | Path, identity: str) -> Head:
    """A head saved by :func:`kdh_ai.active_learning.classifier_for_job` (``JOB_DIR/heads/<identity>.npz``)."""
    return load_head(Path(job_dir) / "heads" / f"{identity}.npz")
