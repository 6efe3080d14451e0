"""The records of the job directory: one typed owner for each kind of line.

=====================  ======================  =====================================================
file                   record                  written by
=====================  ======================  =====================================================
``predictions.jsonl``  :class:`Prediction`     ``kdh prelabel`` (every task type)
``routing.jsonl``      :class:`RoleRecord`     ``kdh route`` / ``kdh select`` (a :class:`Role` per item)
``gold.jsonl``         :class:`GoldAnswer`     ``kdh push --gold`` / ``kdh route --gold``
``tasks.jsonl``        :class:`PushedTask`     ``kdh push`` (a :class:`TaskRole` per task)
``annotations.jsonl``  :class:`Annotation`     ``kdh pull``
=====================  ======================  =====================================================

Each is read through one :class:`kdh_ai.job.Job` method (``current_predictions()``, ``roles()``, ``gold()``,
``pushed_tasks()``, ``annotations()``) and written through one (``append_*``); no other module parses these
files. Every record ignores unknown keys when read, so a newer writer's extra field never breaks an older
reader, and its ``to_dict()`` writes the keys the file has always had.

The prediction record: one schema for every task type.

Every pre-labeling job appends :class:`Prediction` records to ``predictions.jsonl`` in its job directory.
The fields common to all task types come first; what only one task type has lives in ``payload``.

Versioning rule (what later stages rely on):

* ``predictions.jsonl`` is **append-only**. A record is never edited in place.
* A record belongs to a *configuration*, identified by ``config_hash`` (a hash of the model and of every
  option that changes the model's answer). The job manifest (``job.json``) names the current one.
* For each ``item_id``, the **latest line whose ``config_hash`` equals the job's current hash wins**.
  Records of other configurations stay in the file as history, so switching back to an earlier
  configuration costs nothing.
* ``schema_version`` is bumped on any incompatible change of the fields below.

Example:
    >>> p = Prediction(item_id="a1", task="transcription", text="hello", confidence=0.9,
    ...                status="ok", model={"name": "whisper-tiny.en", "version": "1"},
    ...                config_hash="abc", source="/data/a1.wav", sha256="00")
    >>> Prediction.from_dict(p.to_dict()) == p
    True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["HUMAN_ROLES", "ROLES", "SCHEMA_VERSION", "STATUSES", "Annotation", "GoldAnswer", "Prediction",
           "PushedTask", "Role", "RoleRecord", "Segment", "TaskRole", "unit_key", "utc_now"]

SCHEMA_VERSION = 2
"""Version of the record schema (``schema_version`` field of predictions).

* 1: one item, one answer.
* 2: a long recording's prediction carries its **work segments** (``payload["work_segments"]``, each a
  :class:`Segment`), and role, gold, pushed-task and annotation records may carry a ``segment`` (the index of
  the segment they are about; absent or ``None`` for a whole item). Version 1 lines read unchanged: they have
  no segments, and every record of theirs is about a whole item.
"""

STATUSES = ("ok", "no_speech", "error")
"""Valid values of :attr:`Prediction.status`."""


def unit_key(item_id: str, segment: int | None = None) -> str:
    """The key of a unit of work: the item's id for a whole item, ``"<item_id>#<segment, 4 digits>"`` for a
    segment of a long recording. Readers of the job directory key their dicts by it.

    Example:
        >>> unit_key("interview_03"), unit_key("interview_03", 7)
        ('interview_03', 'interview_03#0007')
    """
    return item_id if segment is None else f"{item_id}#{int(segment):04d}"


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string with seconds precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Prediction:
    """A model's answer for one item.

    Attributes:
        item_id: The client's id of the item, unique within a job.
        task: Task type (``"transcription"`` or ``"classification"``).
        text: The answer: the transcript, or the predicted label for classification.
        confidence: One number in [0, 1] that ranks items by expected error: higher means fewer errors.
            ``None`` when ``status`` is ``"error"``.
        status: ``"ok"``, ``"no_speech"`` (nothing to transcribe; ``text`` is empty) or ``"error"``.
        model: ``{"name": ..., "version": ...}`` of the model that answered.
        config_hash: Hash of the model and the options that change its answers.
        source: Where the item came from (absolute audio path, or the input file for texts).
        sha256: SHA-256 of the item's content (file bytes or UTF-8 text); ``None`` when unreadable.
        error: A message that names what is wrong and what to do, when ``status`` is ``"error"``.
        payload: Task-specific fields (transcription: ``duration_s``, ``language``, ``segments``...).
        created_at: When the record was written (UTC, ISO-8601).
        schema_version: Version of this schema.
    """

    item_id: str
    task: str
    text: str
    confidence: float | None
    status: str
    model: dict[str, str]
    config_hash: str
    source: str | None
    sha256: str | None
    error: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now)
    schema_version: int = SCHEMA_VERSION
    segment: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence!r}")

    @property
    def key(self) -> str:
        """The unit key (:func:`unit_key`): the item id, or ``item#segment`` for a segment's unit."""
        return unit_key(self.item_id, self.segment)

    def work_segments(self) -> list[Segment]:
        """The work segments of a long recording (``payload["work_segments"]``); ``[]`` for a whole item."""
        return [Segment.from_dict(s) for s in self.payload.get("work_segments") or []]

    def units(self) -> list[Prediction]:
        """The units of work this prediction answers: itself for a whole item, else one prediction per work
        segment (``segment`` set, ``text`` and ``confidence`` the segment's, ``payload`` with its ``start``,
        ``end``, ``duration_s``, ``words`` and the file's ``file_duration_s``). Units are never written to
        ``predictions.jsonl``; :meth:`kdh_ai.job.Job.units` builds them from the current predictions.

        Example:
            >>> seg = Segment(index=0, start=0.0, end=12.5, text="hello", confidence=0.8, words=[])
            >>> p = Prediction(item_id="talk", task="transcription", text="hello", confidence=0.8, status="ok",
            ...                model={}, config_hash="h", source=None, sha256=None,
            ...                payload={"duration_s": 40.0, "work_segments": [seg.to_dict()]})
            >>> [(u.key, u.text, u.payload["duration_s"]) for u in p.units()]
            [('talk#0000', 'hello', 12.5)]
        """
        segments = self.work_segments()
        if not segments:
            return [self]
        out = []
        for seg in segments:
            payload = {"start": seg.start, "end": seg.end, "duration_s": round(seg.end - seg.start, 3),
                       "words": seg.words, "file_duration_s": self.payload.get("duration_s"),
                       "language": self.payload.get("language")}
            if seg.check:
                payload["check"] = {"passed": False, "problems": list(seg.check)}
            out.append(dataclasses.replace(self, text=seg.text, confidence=seg.confidence, status=seg.status,
                                           payload=payload, segment=seg.index))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the line written to ``predictions.jsonl``)."""
        out = dataclasses.asdict(self)
        if out.get("segment") is None:
            out.pop("segment", None)
        return out

    def to_json(self) -> str:
        """The record as one JSON line, without the newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        """Build a record from a dict read back from ``predictions.jsonl`` (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def failed(
        cls, *, item_id: str, task: str, error: str, model: dict[str, str], config_hash: str,
        source: str | None, sha256: str | None, payload: dict[str, Any] | None = None,
    ) -> Prediction:
        """A ``status="error"`` record for an item the model could not process."""
        return cls(item_id=item_id, task=task, text="", confidence=None, status="error", model=model,
                   config_hash=config_hash, source=source, sha256=sha256, error=error,
                   payload=dict(payload or {}))


@dataclass
class Segment:
    """A work segment of a long recording: the unit that is routed, reviewed and delivered with timestamps.

    A recording longer than the engine's segment threshold is cut at pauses into segments of at most about
    30 s (:func:`kdh_ai.segments.cut_segments`); the segments tile the recording from 0 to its end, so audio
    with speech but no words (Whisper missed it) is a segment too, with an empty text and a low confidence.

    Attributes:
        index: Position in the recording (0, 1, ...).
        start: Start time in the recording (s).
        end: End time (s).
        text: The model's transcript of the segment.
        confidence: Its confidence in [0, 1] (same meaning as :attr:`Prediction.confidence`).
        words: The word records (``word``, ``start``, ``end``, ``probability``; times in the recording).
        status: ``"ok"`` or ``"no_speech"`` (no words).
        speech_prob_max: The highest VAD speech probability inside the segment (``None`` without VAD).
        check: Problems the plausibility check found in this segment (``None`` or empty: none).

    Example:
        >>> s = Segment(index=2, start=61.0, end=80.5, text="so", confidence=0.9, words=[])
        >>> Segment.from_dict(s.to_dict()) == s, s.duration_s
        (True, 19.5)
    """

    index: int
    start: float
    end: float
    text: str
    confidence: float
    words: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"
    speech_prob_max: float | None = None
    check: list[str] | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "no_speech"):
            raise ValueError(f"segment status must be 'ok' or 'no_speech', got {self.status!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"segment confidence must lie in [0, 1], got {self.confidence!r}")
        if self.end < self.start:
            raise ValueError(f"segment {self.index} ends ({self.end}) before it starts ({self.start})")

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return round(self.end - self.start, 3)

    def to_dict(self) -> dict[str, Any]:
        """The segment as stored in ``payload["work_segments"]``."""
        return _to_dict(self, ("speech_prob_max", "check"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        """Read a segment back (unknown keys are ignored)."""
        return _from_dict(cls, data)


# ---- the other records of the job directory --------------------------------------------------------------------
_R = TypeVar("_R")


def _from_dict(cls: type[_R], data: dict[str, Any]) -> _R:
    """Build a dataclass record from a dict read back from its file (unknown keys are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def _to_dict(rec: Any, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record as its JSON line's dict; the ``optional`` keys are left out while ``None`` (as always written)."""
    out = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)}
    for k in optional:
        if out.get(k) is None:
            out.pop(k, None)
    return out


class Role(StrEnum):
    """An item's routing role (``routing.jsonl``), decided by ``kdh route`` or ``kdh select``.

    Roles that go to people: :attr:`CALIBRATION` (a random slice that measures the model), :attr:`GOLD` (a known
    answer that measures the people), :attr:`HUMAN` (below the confidence threshold) and :attr:`AUDIT` (a random
    check of auto-accepted items). Roles that are never sent: :attr:`AUTO_ACCEPT` (the model's answer is
    delivered) and :attr:`PENDING` (not decided yet).

    Example:
        >>> Role("audit").to_people, Role.AUTO_ACCEPT.to_people
        (True, False)
        >>> [str(r) for r in HUMAN_ROLES]
        ['calibration', 'gold', 'human', 'audit']
    """

    CALIBRATION = "calibration"
    GOLD = "gold"
    HUMAN = "human"
    AUDIT = "audit"
    AUTO_ACCEPT = "auto_accept"
    PENDING = "pending"

    @property
    def to_people(self) -> bool:
        """Whether items of this role are sent to people."""
        return self not in (Role.AUTO_ACCEPT, Role.PENDING)

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role called ``value``.

        Raises:
            ValueError: Unknown role (the message lists the valid ones).
        """
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown routing role {value!r}; valid: {', '.join(r.value for r in cls)}") from None


ROLES: tuple[Role, ...] = tuple(Role)
"""Every routing role, in the order reports list them."""

HUMAN_ROLES: tuple[Role, ...] = tuple(r for r in Role if r.to_people)
"""The routing roles whose items go to people."""


class TaskRole(StrEnum):
    """The role of a task pushed to Label Studio (``tasks.jsonl`` field ``role``).

    :attr:`HUMAN`: done by one annotator, with the model's pre-annotation; :attr:`CONTROL`: the same, without
    the pre-annotation (measures the time pre-labels save); :attr:`OVERLAP`: done by several annotators
    (agreement); :attr:`GOLD`: a known answer, done by ``gold_overlap`` annotators.
    """

    HUMAN = "human"
    CONTROL = "control"
    OVERLAP = "overlap"
    GOLD = "gold"


@dataclass
class RoleRecord:
    """One line of ``routing.jsonl``: an item's role from a routing step on (the latest line per item wins).

    ``segment`` names the work segment of a long recording the role is for (``None``: the whole item); the
    latest line per unit (:attr:`key`) wins.

    Example:
        >>> r = RoleRecord.from_dict({"item_id": "a", "role": "human", "reason": "low confidence",
        ...                           "step": "route", "at": "2026-01-01T00:00:00+00:00"})
        >>> r.role is Role.HUMAN, RoleRecord.from_dict(r.to_dict()) == r
        (True, True)
    """

    item_id: str
    role: Role
    reason: str | None = None
    step: str | None = None
    at: str | None = None
    segment: int | None = None

    def __post_init__(self) -> None:
        self.role = Role.parse(self.role)

    @property
    def key(self) -> str:
        """The unit key (:func:`unit_key`)."""
        return unit_key(self.item_id, self.segment)

    def to_dict(self) -> dict[str, Any]:
        """The record as its ``routing.jsonl`` line."""
        out = _to_dict(self, ("segment",))
        out["role"] = self.role.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoleRecord:
        """Read a ``routing.jsonl`` line (unknown keys are ignored; an unknown role raises ``ValueError``)."""
        return _from_dict(cls, data)


@dataclass
class GoldAnswer:
    """One line of ``gold.jsonl``: an item's known answer (``answer: None`` withdraws it; latest line wins).

    Attributes:
        item_id: The item (of this job, or a gold item of its own with ``path`` or ``text``).
        answer: The known answer; ``None`` withdraws the item from the gold set.
        source: Where the answer came from (a manifest, ``job:DIR``, ``delivery:FILE``...).
        path: Audio of a gold item that is not part of the job.
        text: Text of a gold item that is not part of the job.
        added_at: When it was recorded.
        segment: The work segment of a long recording the answer is for (``None``: the whole item).
    """

    item_id: str
    answer: str | None
    source: str | None = None
    path: str | None = None
    text: str | None = None
    added_at: str | None = None
    segment: int | None = None

    @property
    def key(self) -> str:
        """The unit key (:func:`unit_key`)."""
        return unit_key(self.item_id, self.segment)

    def to_dict(self) -> dict[str, Any]:
        """The record as its ``gold.jsonl`` line."""
        return _to_dict(self, ("added_at", "segment"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GoldAnswer:
        """Read a ``gold.jsonl`` line (unknown keys are ignored)."""
        return _from_dict(cls, data)


@dataclass
class PushedTask:
    """One line of ``tasks.jsonl``: an item sent to Label Studio as a task (latest line per item wins).

    Attributes:
        item_id: The item.
        ls_project_id: The Label Studio project.
        ls_task_id: The task's id there.
        role: The task's :class:`TaskRole` value.
        prelabeled: Sent with the model's pre-annotation.
        overlap: Annotators wanted.
        overlap_applied: Annotators set in Label Studio so far (raised after the import).
        model_version: The pre-annotation's model version (``None`` without one).
        data_url: The audio URL or text sent.
        pushed_at: When Label Studio confirmed it.
        adopted: Found in Label Studio but missing from ``tasks.jsonl`` (an import whose answer was lost).
        missing: No longer in Label Studio (deleted there); never sent again.
        overlap_set_at: When the overlap was last raised.
        checked_at: When it was found missing.
        segment: The work segment of a long recording this task reviews (``None``: the whole item).
    """

    item_id: str
    ls_project_id: int
    ls_task_id: int
    role: str = TaskRole.HUMAN.value
    prelabeled: bool = False
    overlap: int = 1
    overlap_applied: int = 1
    model_version: str | None = None
    data_url: str | None = None
    pushed_at: str | None = None
    adopted: bool = False
    missing: bool = False
    overlap_set_at: str | None = None
    checked_at: str | None = None
    segment: int | None = None

    @property
    def key(self) -> str:
        """The unit key (:func:`unit_key`)."""
        return unit_key(self.item_id, self.segment)

    def to_dict(self) -> dict[str, Any]:
        """The record as its ``tasks.jsonl`` line."""
        out = _to_dict(self, ("overlap_set_at", "checked_at", "segment"))
        out["role"] = str(self.role)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PushedTask:
        """Read a ``tasks.jsonl`` line (unknown keys are ignored)."""
        return _from_dict(cls, data)


@dataclass
class Annotation:
    """One line of ``annotations.jsonl``: a person's annotation as ``kdh pull`` found it (latest line per
    ``annotation_id`` wins; an annotation deleted in Label Studio gets a line with ``deleted: true``).

    Attributes:
        item_id: The item.
        annotation_id: Label Studio's id of the annotation.
        task: Task type of the job.
        ls_task_id: The task in Label Studio.
        ls_project_id: The project in Label Studio.
        annotator_id: Label Studio's user id.
        annotator_email: The annotator's e-mail (``None`` when unknown).
        annotator_simulated: The account is a simulated annotator.
        answer: The answer (a transcript, a label); ``None`` when skipped.
        result: Label Studio's own result list.
        lead_time_s: Seconds the annotator spent.
        created_at: When it was created in Label Studio.
        updated_at: When it was last changed there.
        skipped: The annotator skipped the task.
        gold: The task was a gold task.
        prelabeled: The task carried the model's pre-annotation (``None`` when not known).
        role: The pushed task's :class:`TaskRole` value.
        deleted: Deleted in Label Studio since an earlier pull.
        fingerprint: Hash of what pull compares to find changed annotations.
        pulled_at: When this line was written.
        segment: The work segment of a long recording the task was about (``None``: the whole item).

    Example:
        >>> a = Annotation.from_dict({"item_id": "x", "annotation_id": 7, "annotator_id": 3, "answer": "ham"})
        >>> a.worker, a.counts
        ('3', True)
    """

    item_id: str
    annotation_id: Any
    task: str | None = None
    ls_task_id: int | None = None
    ls_project_id: int | None = None
    annotator_id: Any = None
    annotator_email: str | None = None
    annotator_simulated: bool = False
    answer: str | None = None
    result: list[dict[str, Any]] = field(default_factory=list)
    lead_time_s: float | None = None
    created_at: str | None = None
    updated_at: str | None = None
    skipped: bool = False
    gold: bool = False
    prelabeled: bool | None = None
    role: str | None = None
    deleted: bool = False
    fingerprint: str | None = None
    pulled_at: str | None = None
    segment: int | None = None

    def __post_init__(self) -> None:
        self.item_id = str(self.item_id)
        self.skipped, self.gold, self.deleted = bool(self.skipped), bool(self.gold), bool(self.deleted)

    @property
    def key(self) -> str:
        """The unit key (:func:`unit_key`): the item, or ``item#segment``."""
        return unit_key(self.item_id, self.segment)

    @property
    def worker(self) -> str:
        """Who answered, as the crowd-kit contract names workers: the e-mail, or the user id."""
        return self.annotator_email or str(self.annotator_id)

    @property
    def counts(self) -> bool:
        """Whether it holds an answer: not deleted, not skipped, and not empty."""
        return not self.deleted and not self.skipped and self.answer not in (None, "")

    def to_dict(self) -> dict[str, Any]:
        """The record as its ``annotations.jsonl`` line."""
        return _to_dict(self, ("segment",))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Annotation:
        """Read an ``annotations.jsonl`` line (unknown keys are ignored)."""
        return _from_dict(cls, data)
