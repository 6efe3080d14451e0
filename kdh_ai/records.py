"""The prediction record: one schema for every task type.

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
from typing import Any

__all__ = ["SCHEMA_VERSION", "STATUSES", "Prediction", "utc_now"]

SCHEMA_VERSION = 1
"""Version of the prediction record schema (``schema_version`` field)."""

STATUSES = ("ok", "no_speech", "error")
"""Valid values of :attr:`Prediction.status`."""


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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence!r}")

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the line written to ``predictions.jsonl``)."""
        return dataclasses.asdict(self)

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
