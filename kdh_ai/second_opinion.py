"""A second opinion for routing: a second Whisper model transcribes every item, and their disagreement
lowers the item's routing score.

Where two models disagree on an item, the item is more likely wrong, even when the first model is confident
(``benchmarks/second_opinion.py``; results in ``benchmarks/README.md``: a confident tiny.en repetition loop
that whisper-base contradicts, and a smaller human share at a tight target, for the second model's compute).
Used with ``kdh prelabel transcribe --second-opinion MODEL`` (or the pipeline YAML's ``second_opinion:``
option):

1. The first model transcribes the batch as usual; its answer is the item's answer (``text``,
   ``confidence``, ``status`` are the first model's).
2. Every item the first model decoded (``ok`` or ``no_speech``; not ``error``) is transcribed again by the
   second model, with the same options otherwise.
3. The prediction's ``payload["second_opinion"]`` records the second model, its transcript, status and
   confidence, and the **disagreement**: :func:`disagreement`, the word edits between the two transcripts
   over the second's words, after Whisper's English normalisation (the project's WER).
4. Routing thresholds the **routing score** :func:`routing_score` = ``confidence * (1 - min(1,
   disagreement))`` instead of the confidence: the same rule the benchmark measured (it calls these
   functions). The calibration slice, the bound and the threshold all use that score, so the promise is
   about the score the router thresholds. A job without a second opinion routes on its confidence, as before.

An item whose second opinion failed (the second model could not decode what the first did) keeps the first
model's answer; its routing score is 0 (no check means no auto-accept) and ``payload["second_opinion"]``
says why. The second model and this rule enter the job's ``config_hash``: adding, changing or dropping the
second opinion is a new configuration (a rerun redoes the items; switching back reuses the records).

Example:
    >>> disagreement("The cat sat.", "the cat sat")
    0.0
    >>> disagreement("I'm gonna say, I'm gonna say", "I am going to stay")  # 1 substitution, 5 insertions
    1.2
    >>> round(routing_score(0.9, disagreement("a cat sat here", "the cat sat here")), 3)
    0.675
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from kdh_ai.items import Item
from kdh_ai.records import Prediction
from kdh_ai.tasks.base import Prelabeler

if TYPE_CHECKING:
    from kdh_ai.job import Job
    from kdh_ai.registry import ResolvedModel
    from kdh_ai.engines.common import TranscribeOptions

__all__ = ["RULE", "SecondOpinion", "SecondOpinionTranscriber", "describe", "disagreement", "job_second_opinion",
           "prediction_score", "routing_score"]

logger = logging.getLogger(__name__)

RULE = "confidence * (1 - min(1, disagreement))"
"""How the routing score combines the first model's confidence and the disagreement (recorded in the job)."""
_RULE_VERSION = 1  # bump when the rule or the disagreement's definition changes (it enters the config hash)


def disagreement(first: str, second: str) -> float:
    """Word edits between two transcripts over the second's words, after Whisper's English normalisation.

    The WER of ``first`` against ``second`` taken as the reference (``kdh_ai.quality``'s normalisation, as for
    every WER in the project): 0 when they agree word for word, 1 when nothing matches, above 1 when the first
    has many extra words (a repetition loop). Both empty: 0. The second empty and the first not: the first's
    word count (the rule caps it at 1).

    Example:
        >>> disagreement("", "")
        0.0
        >>> disagreement("hello there", "")
        2.0
    """
    from kdh_ai.tasks import get_task

    errors, words = get_task("transcription").item_errors([first], [second])[0]
    if not (errors or words):
        return 0.0
    return float(errors / max(words, 1.0))


def routing_score(confidence: float | None, disagreement: float | None) -> float:
    """The routing score of an item: ``confidence * (1 - min(1, disagreement))`` (:data:`RULE`).

    ``disagreement=None`` (no second opinion for the job) gives the confidence itself; a missing confidence
    counts as 0.

    Example:
        >>> routing_score(0.86, 17.0), routing_score(0.9, None), routing_score(0.9, 0.0)
        (0.0, 0.9, 0.9)
    """
    c = float(confidence or 0.0)
    if disagreement is None:
        return c
    if disagreement < 0:
        raise ValueError(f"disagreement must be >= 0, got {disagreement!r}")
    return c * (1.0 - min(1.0, float(disagreement)))


@dataclass(frozen=True)
class SecondOpinion:
    """What the second model said about an item (``Prediction.payload["second_opinion"]``).

    Attributes:
        model: ``{"name", "version"}`` of the second model.
        text: Its transcript (empty when it found no speech or failed).
        status: ``"ok"``, ``"no_speech"`` or ``"error"`` (it failed on an item the first model decoded).
        confidence: Its own confidence (``None`` on error).
        disagreement: :func:`disagreement` of the first model's transcript against this one (``None`` on
            error).
        error: Why it failed, when ``status`` is ``"error"``.
    """

    model: dict[str, str]
    text: str
    status: str
    confidence: float | None
    disagreement: float | None
    error: str | None = None

    key: ClassVar[str] = "second_opinion"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict stored in the payload."""
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, pred: Prediction) -> SecondOpinion | None:
        """The second opinion recorded on ``pred`` (``None`` when the job had none)."""
        data = (pred.payload or {}).get(cls.key)
        if not isinstance(data, dict):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def prediction_score(pred: Prediction) -> float:
    """The routing score of a prediction: :func:`routing_score` of its confidence and its second opinion's
    disagreement; its confidence (0 when missing) when it has no second opinion; 0 when its second opinion
    failed (an item the check could not cover is never auto-accepted on the first model's word alone)."""
    so = SecondOpinion.of(pred)
    if so is None:
        return float(pred.confidence or 0.0)
    if so.disagreement is None:
        return 0.0
    return routing_score(pred.confidence, so.disagreement)


def job_second_opinion(job: Job) -> dict[str, Any] | None:
    """The job's second opinion as recorded in ``job.json`` (``{"model": ..., "rule": ...}``), or ``None``.

    Read from the pre-labeling configuration (``job.json["config"]["second_opinion"]``), so that ``kdh status``,
    ``kdh route`` and the client report can say that a second opinion was used and which model.
    """
    config = job.read_manifest().get("config") or {}
    model = config.get("second_opinion")
    return {"model": str(model), "rule": RULE} if model else None


def describe(second: dict[str, Any] | None) -> list[str]:
    """One sentence for people (the client report's method list) when a second opinion was used, else none.

    Example:
        >>> describe({"model": "whisper-base", "rule": RULE})[0][:63]
        'Second opinion: every clip was also transcribed by whisper-base'
    """
    if not second:
        return []
    return [f"Second opinion: every clip was also transcribed by {second['model']}, a second model. Where the two "
            "transcripts disagree, the clip's routing score falls below its confidence (score = "
            f"{second['rule']}), so it goes to people; the threshold, and its bound, are on that score."]


class SecondOpinionTranscriber(Prelabeler):
    """The first transcriber's answers, each with a second model's transcript and their disagreement.

    Both models load in the constructor (through ``factory``, :func:`kdh_ai.engines.make_transcriber`, so the
    engine option applies to both). :meth:`predict_batches` stays lazy: the first model's records are
    collected until ``options.batch_size`` items are ready, the second model transcribes those, and the
    batch comes out with both (a killed job loses at most that batch and the work in flight).

    Args:
        options: The job's options (``TranscribeOptions``); ``options.second_opinion`` names the second model
            (a registry name or a local model directory, as ``options.model``).
        model: An already resolved first model (default: resolve ``options.model``).
        factory: What builds each model's transcriber from its options (:func:`kdh_ai.engines.make_transcriber`,
            which builds this class; passed in so that this module does not import the engines).

    Raises:
        ValueError: ``options.second_opinion`` is not set.
        ModelNotAvailableError: Either model is not on this machine.
    """

    task: ClassVar[str] = "transcription"

    def __init__(self, options: TranscribeOptions, *, model: ResolvedModel | None = None,
                 factory: Callable[..., Prelabeler]) -> None:
        make_transcriber = factory
        if not options.second_opinion:
            raise ValueError("SecondOpinionTranscriber needs options.second_opinion (the second model)")
        self.options = options
        plain = dataclasses.replace(options, second_opinion=None)
        self.first = make_transcriber(plain, model=model)
        self.second = make_transcriber(dataclasses.replace(plain, model=options.second_opinion))
        self.model_info = dict(self.first.model_info)
        identity = {"first": self.first.config_hash, "second_opinion": self.second.config_hash,
                    "rule": _RULE_VERSION}
        self.config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self._chunk = max(1, int(getattr(options, "batch_size", 8) or 8))
        self.stats: dict[str, int] = {"checked": 0, "disagree": 0, "failed": 0}  # of the last run (logged)

    def predict_batches(self, items: Iterable[Item]) -> Iterator[list[Prediction]]:
        waiting: dict[str, Item] = {}

        def feed() -> Iterator[Item]:
            for item in items:
                waiting[item.item_id] = item
                yield item

        ready: list[Prediction] = []
        self.stats = {"checked": 0, "disagree": 0, "failed": 0}
        for batch in self.first.predict_batches(feed()):
            ready.extend(batch)
            if len(ready) >= self._chunk:
                yield self._judge(ready, waiting)
                ready = []
        if ready:
            yield self._judge(ready, waiting)
        logger.info("second opinion (%s): %d items checked, %d where the two models disagree, %d failed",
                    self.options.second_opinion, self.stats["checked"], self.stats["disagree"], self.stats["failed"])

    def _judge(self, firsts: list[Prediction], waiting: dict[str, Item]) -> list[Prediction]:
        """The second model's transcript of every item of ``firsts`` the first model decoded, and the records."""
        items = {p.item_id: waiting.pop(p.item_id, None) for p in firsts}
        todo = [items[p.item_id] for p in firsts if p.status != "error" and items[p.item_id] is not None]
        seconds = {p.item_id: p for p in self.second.predict(todo)}
        out = []
        for p in firsts:
            if p.status == "error":
                out.append(dataclasses.replace(p, config_hash=self.config_hash))
                continue
            s = seconds.get(p.item_id)
            if s is None or s.status == "error":
                why = (s.error if s is not None else None) or "the second model returned no answer"
                so = SecondOpinion(dict(self.second.model_info), "", "error", None, None,
                                   f"second opinion ({self.options.second_opinion}) failed: {why}; the item goes "
                                   "to people")
                logger.warning("%s: %s", p.item_id, so.error)
            elif s.sha256 != p.sha256:
                so = SecondOpinion(dict(self.second.model_info), "", "error", None, None,
                                   "the file changed between the two models' reads; the item goes to people")
            else:
                so = SecondOpinion(dict(self.second.model_info), s.text, s.status, s.confidence,
                                   round(disagreement(p.text, s.text), 6))
            self.stats["checked"] += 1
            self.stats["failed"] += so.disagreement is None
            self.stats["disagree"] += bool(so.disagreement)
            out.append(dataclasses.replace(p, config_hash=self.config_hash,
                                           payload={**p.payload, SecondOpinion.key: so.to_dict()}))
        return out
