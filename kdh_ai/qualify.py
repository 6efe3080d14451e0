"""Qualification before paid work: a gold-only test in Label Studio, scored against a pass mark.

``kdh qualify EMAIL --task transcription`` gives a trainee a test: a Label Studio project of real items whose
answers are known (the bundled LJ Speech clips with their transcripts, or bundled SMS texts with their
labels), **without** pre-annotations, so the trainee's answer is their own. The known answers never go into
Label Studio. ``kdh qualify EMAIL --task transcription --score`` reads the trainee's answers back, scores
them (WER for transcription, accuracy for classification) with a Wilson interval, and records pass or fail
in the **trainee ledger** (``trainees.jsonl`` in the hub's folder, not in a job): one typed record per
event, append-only, the latest result per trainee and task type counts.

Label Studio Community cannot assign tasks to chosen annotators, so the test project is open to everyone
who can log in; only the named trainee's answers are scored. Qualification is enforced where kdh reads
work back (:func:`hold_unqualified` and :func:`write_held`, called by ``kdh pull`` and so by ``kdh status``):

* **Which ledger.** One hub, one ledger: ``trainees.jsonl`` in the hub's folder (``KDH_HUB_DIR``; see
  :func:`kdh_ai.labelstudio.hub.default_hub_dir`), whichever client's instance the job lives on. A trainee
  qualified for transcription may do any client's transcription job.
* **When it applies** (:func:`qualification_gate`, set by ``KDH_QUALIFICATION``): ``auto`` (the default)
  enforces it once the hub has a ledger, i.e. once the hub started qualifying people; a machine with no
  ledger (a laptop, a fresh hub) keeps every answer and ``kdh status`` says in words that qualification is
  **not enforced**, rather than silently dropping everyone. ``required`` enforces it even without a ledger
  (then nobody is qualified); ``off`` never enforces it (status says so too).
* **Kept apart.** Answers of annotators not qualified for the job's task type (by their latest scored test,
  at the time of the pull) are not written to ``annotations.jsonl``, so quality, delivery and the client
  report never see them. They are listed in ``held_answers.json`` (rewritten by every pull: the answers
  held right now), which ``kdh status`` reads to say who, how many answers, and how to qualify them. Once
  the annotator passes, the next pull takes their answers in. Answers accepted before stay accepted.
  Label Studio still counts a kept-apart answer toward its task's overlap (it stops serving the task), so
  such tasks stay short of answers until the annotator qualifies or the lead deletes the answer there.

Example:
    >>> import tempfile, pathlib
    >>> ledger = TraineeLedger(pathlib.Path(tempfile.mkdtemp()) / "trainees.jsonl")
    >>> ledger.record(QualificationRecord(email="a@hub.example", task="classification", test_id="t1",
    ...                                   event="scored", passed=True, score=0.9, low=0.6, high=0.98,
    ...                                   metric="accuracy", pass_mark=0.8, answered=10, size=10))
    >>> ledger.is_qualified("A@hub.example", "classification"), ledger.is_qualified("a@hub.example", "transcription")
    (True, False)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kdh_ai.errors import InvalidInputError, LabelStudioError
from kdh_ai.job import Job, JsonlLog, write_json_atomic
from kdh_ai.records import utc_now

__all__ = ["HELD_FILE", "HeldAnswers", "HeldBatch", "QualificationGate", "QualificationRecord",
           "QualificationResult", "TraineeLedger", "default_ledger_path", "hold_unqualified", "is_qualified",
           "qualification_gate", "read_held", "score_qualification", "start_qualification", "write_held"]

logger = logging.getLogger(__name__)

TaskName = Literal["transcription", "classification"]
_TASKS = ("transcription", "classification")


def default_ledger_path() -> Path:
    """``trainees.jsonl`` in the hub's folder (:func:`kdh_ai.labelstudio.hub.default_hub_dir`), not in a job."""
    from kdh_ai.labelstudio.hub import default_hub_dir

    return default_hub_dir() / "trainees.jsonl"


@dataclass
class QualificationRecord:
    """One event of a trainee's qualification (a line of the ledger).

    Attributes:
        email: The trainee's login e-mail (compared case-insensitively).
        task: The task type the test qualifies for.
        test_id: The test's id.
        event: ``"started"`` (the test was put in Label Studio) or ``"scored"``.
        passed: Pass or fail (``None`` until scored, or while answers are missing).
        score: WER (transcription) or accuracy (classification) on the answered items.
        low: Lower end of its 95% Wilson interval.
        high: Upper end of its 95% Wilson interval.
        metric: ``"wer"`` or ``"accuracy"``.
        pass_mark: The mark: a WER at most this, or an accuracy at least this.
        answered: Items the trainee answered.
        size: Items in the test.
        project_id: The Label Studio project of the test.
        url: Where the trainee takes the test.
        items: The test's items: ``{item_id: known answer}`` (kept here, never sent to Label Studio).
        at: When the event was recorded (UTC).
    """

    email: str
    task: str
    test_id: str
    event: str
    passed: bool | None = None
    score: float | None = None
    low: float | None = None
    high: float | None = None
    metric: str | None = None
    pass_mark: float | None = None
    answered: int = 0
    size: int = 0
    project_id: int | None = None
    url: str | None = None
    items: dict[str, str] = field(default_factory=dict)
    at: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise InvalidInputError(f"task must be one of {_TASKS}, got {self.task!r}")
        if self.event not in ("started", "scored"):
            raise InvalidInputError(f"event must be 'started' or 'scored', got {self.event!r}")


class TraineeLedger:
    """The hub's record of qualification tests (``trainees.jsonl``): the one reader and writer of that file.

    Args:
        path: The ledger file (default: :func:`default_ledger_path`).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_ledger_path()
        self._log = JsonlLog(self.path)

    def record(self, rec: QualificationRecord) -> None:
        """Append one event."""
        self._log.append([dataclasses.asdict(rec)])

    def records(self, email: str | None = None, task: str | None = None) -> list[QualificationRecord]:
        """Every event, oldest first (optionally of one trainee and task type)."""
        names = {f.name for f in dataclasses.fields(QualificationRecord)}
        out = []
        for raw in self._log:
            rec = QualificationRecord(**{k: v for k, v in raw.items() if k in names})
            if email and rec.email.lower() != email.lower():
                continue
            if task and rec.task != task:
                continue
            out.append(rec)
        return out

    def latest_test(self, email: str, task: str) -> QualificationRecord | None:
        """The trainee's most recent test of that task type (its ``started`` event)."""
        started = [r for r in self.records(email, task) if r.event == "started"]
        return started[-1] if started else None

    def status(self, email: str, task: str) -> QualificationRecord | None:
        """The latest scored result of the trainee for that task type (``None``: never scored)."""
        scored = [r for r in self.records(email, task) if r.event == "scored"]
        return scored[-1] if scored else None

    def is_qualified(self, email: str, task: str) -> bool:
        """True when the trainee's latest scored test of that task type passed."""
        st = self.status(email, task)
        return bool(st and st.passed)


def is_qualified(email: str, task: str, *, ledger: TraineeLedger | None = None) -> bool:
    """Whether ``email`` passed the latest qualification test for ``task`` (see :class:`TraineeLedger`)."""
    return (ledger or TraineeLedger()).is_qualified(email, task)


# ----------------------------------------------------------------------------------------------------------
# The test items: real items with known answers, bundled with kdh_ai


def _gold_pool(task: str) -> list[dict[str, str]]:
    """``[{"item_id", "path" or "text", "answer"}]`` of the bundled items with known answers."""
    from kdh_ai.samples import ljspeech_manifest, sms_spam_texts

    rows: list[dict[str, str]] = []
    if task == "transcription":
        manifest = ljspeech_manifest()
        with open(manifest, encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                rows.append({"item_id": r["item_id"], "path": str(manifest.parent / r["path"]),
                             "answer": r["reference"]})
    else:
        with open(sms_spam_texts(), encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                rows.append({"item_id": r["item_id"], "text": r["text"], "answer": r["reference"]})
    return rows


def _labels(task: str) -> list[str] | None:
    return ["ham", "spam"] if task == "classification" else None


@dataclass
class QualificationResult:
    """A scored test.

    Attributes:
        record: The ledger record written for it.
        details: One row per test item: ``item_id``, ``known``, ``answer`` (``None``: not answered), ``errors``,
            ``size``.
    """

    record: QualificationRecord
    details: Any

    @property
    def complete(self) -> bool:
        return self.record.answered == self.record.size


def start_qualification(email: str, *, task: str, size: int = 10, seed: int | None = None,
                        connection: Any = None, ledger: TraineeLedger | None = None) -> QualificationRecord:
    """Put a gold-only test for ``email`` into Label Studio and record it in the ledger.

    Args:
        email: The trainee (an annotator account on the server; see ``kdh labelstudio add-annotator``).
        task: ``"transcription"`` or ``"classification"``.
        size: Items in the test (at most what is bundled: 12 clips, 200 texts).
        seed: Seed of the draw of items (default: a fresh random draw, so two tests differ).
        connection: The server (default: :func:`kdh_ai.labelstudio.connection.resolve_connection`).
        ledger: The trainee ledger (default: the hub's).

    Raises:
        ValueError: Unknown task type, or a size outside 1..available.
        LabelStudioError: The server refused (message says why).
    """
    from kdh_ai.labelstudio.client import LabelStudioClient
    from kdh_ai.labelstudio.project import create_project, data_key, project_url
    from kdh_ai.labelstudio.connection import resolve_connection
    from kdh_ai.tasks import get_task

    if task not in _TASKS:
        raise InvalidInputError(f"task must be one of {_TASKS}, got {task!r}")
    pool = _gold_pool(task)
    if not 1 <= size <= len(pool):
        raise InvalidInputError(f"size must lie in 1..{len(pool)} for {task} (bundled items with known answers), "
                         f"got {size}")
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=size, replace=False))]
    test_id = f"q-{utc_now()[:10]}-{secrets.token_hex(3)}"
    conn = connection or resolve_connection()
    client = LabelStudioClient(conn)
    task_type = get_task(task)
    project = create_project(client, task_type, title=f"Qualification {task[:14]} {test_id}",
                             labels=_labels(task),
                             description=f"Qualification test for {email}: answer every item yourself. "
                                         "Only your own answers are scored.")
    key = data_key(task_type, labels=_labels(task))
    tasks = []
    if task == "transcription":
        urls = _upload(client, int(project["id"]), [(r["item_id"], r["path"]) for r in chosen])
        tasks = [{"data": {key: urls[r["item_id"]], "kdh_item_id": r["item_id"], "kdh_test_id": test_id}}
                 for r in chosen]
    else:
        tasks = [{"data": {key: r["text"], "kdh_item_id": r["item_id"], "kdh_test_id": test_id}} for r in chosen]
    client.request("POST", f"api/projects/{project['id']}/import", what=f"import {len(tasks)} test items",
                   json_body=tasks, idempotent=False)
    rec = QualificationRecord(email=email, task=task, test_id=test_id, event="started", size=size,
                              project_id=int(project["id"]), url=project_url(conn.url, int(project["id"])),
                              items={r["item_id"]: r["answer"] for r in chosen})
    (ledger or TraineeLedger()).record(rec)
    logger.info("Qualification test %s for %s (%s, %d items): project %s", test_id, email, task, size,
                project["id"])
    return rec


def _upload(client: Any, project_id: int, files: list[tuple[str, str]]) -> dict[str, str]:
    """Upload the test's audio clips to the project; ``{item_id: url}``."""
    import json

    payload = {f"file{n}": (f"{item_id}{Path(path).suffix}", Path(path).read_bytes(), "audio/wav")
               for n, (item_id, path) in enumerate(files)}
    body = client.request("POST", f"api/projects/{project_id}/import", what=f"upload {len(files)} test clips",
                          params={"commit_to_project": "false"}, files=payload, idempotent=False).json()
    ids = body.get("file_upload_ids") or []
    uploads = client.get_json(f"api/projects/{project_id}/file-uploads", what="read uploaded file names",
                              params={"ids": json.dumps(ids)})
    out: dict[str, str] = {}
    for u in uploads:
        stored = str(u["file"])
        base = stored.rsplit("/", 1)[-1]
        for item_id, path in files:
            if base.endswith(f"{item_id}{Path(path).suffix}"):
                out[item_id] = f"/data/{stored}"
    missing = [i for i, _ in files if i not in out]
    if missing:
        raise LabelStudioError(f"the server did not keep the uploaded clips {missing}; start the test again")
    return out


def score_qualification(email: str, *, task: str, pass_mark: float | None = None, connection: Any = None,
                        ledger: TraineeLedger | None = None) -> QualificationResult:
    """Score the trainee's latest test of ``task`` and record the result in the ledger.

    The result passes when every item is answered and the score meets the pass mark (a WER at most
    ``pass_mark``, an accuracy at least ``pass_mark``). The 95% Wilson interval is over the test's words
    (transcription: each reference word counted as right or wrong, an approximation that treats words as
    independent) or items (classification). A test with answers missing is recorded with ``passed=None``.

    Args:
        email: The trainee.
        task: ``"transcription"`` or ``"classification"``.
        pass_mark: Default 0.10 WER (transcription) or 0.90 accuracy (classification).
        connection: The server (default: :func:`kdh_ai.labelstudio.connection.resolve_connection`).
        ledger: The trainee ledger (default: the hub's).

    Raises:
        ValueError: No test was started for this trainee and task type, or a pass mark outside (0, 1).
    """
    import pandas as pd

    from kdh_ai.labelstudio.client import LabelStudioClient
    from kdh_ai.labelstudio.connection import resolve_connection
    from kdh_ai.quality import wilson_interval
    from kdh_ai.tasks import get_task

    if task not in _TASKS:
        raise InvalidInputError(f"task must be one of {_TASKS}, got {task!r}")
    metric = "wer" if task == "transcription" else "accuracy"
    pass_mark = pass_mark if pass_mark is not None else (0.10 if metric == "wer" else 0.90)
    if not 0 < pass_mark < 1:
        raise InvalidInputError(f"the pass mark must lie in (0, 1) (0.1 means 10%), got {pass_mark}")
    ledger = ledger or TraineeLedger()
    test = ledger.latest_test(email, task)
    if test is None:
        raise InvalidInputError(f"no {task} qualification test was started for {email}; start one with "
                         f"`kdh qualify {email} --task {task}`")
    client = LabelStudioClient(connection or resolve_connection())
    user = next((u for u in client.users() if str(u.get("email", "")).lower() == email.lower()), None)
    uid = int(user["id"]) if user else None
    task_type = get_task(task)
    answers: dict[str, str] = {}
    # Label Studio's own JSON export of the test's annotated tasks (as kdh_ai.labelstudio.pull reads a job's;
    # not imported from there, as pull imports this module to keep unqualified answers apart)
    exported = client.get_json(f"api/projects/{int(test.project_id or 0)}/export", what="export the test",
                               params={"exportType": "JSON", "download_all_tasks": "false"})
    for t in exported:
        item_id = (t.get("data") or {}).get("kdh_item_id")
        mine = [a for a in t.get("annotations") or []
                if (a.get("completed_by") if not isinstance(a.get("completed_by"), dict)
                    else a["completed_by"].get("id")) == uid and not a.get("was_cancelled")]
        if item_id in test.items and mine:
            ans = task_type.result_to_answer(mine[-1].get("result") or [])
            if ans is not None:
                answers[item_id] = ans
    ids = list(test.items)
    answered = [i for i in ids if i in answers]
    errs = task_type.item_errors([answers[i] for i in answered], [test.items[i] for i in answered]) \
        if answered else np.zeros((0, 2))
    rows = [{"item_id": i, "known": test.items[i], "answer": answers.get(i),
             "errors": float(errs[answered.index(i), 0]) if i in answers else None,
             "size": float(errs[answered.index(i), 1]) if i in answers else None} for i in ids]
    wrong, size = float(errs[:, 0].sum()), float(errs[:, 1].sum())
    if size > 0:
        rate = wrong / size
        n = int(round(size))
        right = max(0, n - int(round(min(wrong, size))))
        lo_acc, hi_acc = wilson_interval(right, n)
        score, low, high = (rate, 1 - hi_acc, 1 - lo_acc) if metric == "wer" else (1 - rate, lo_acc, hi_acc)
    else:
        score = low = high = None
    complete = len(answered) == len(ids)
    passed = None
    if complete and score is not None:
        passed = score <= pass_mark if metric == "wer" else score >= pass_mark
    rec = QualificationRecord(email=email, task=task, test_id=test.test_id, event="scored", passed=passed,
                              score=score, low=low, high=high, metric=metric, pass_mark=pass_mark,
                              answered=len(answered), size=len(ids), project_id=test.project_id, url=test.url)
    ledger.record(rec)
    return QualificationResult(record=rec, details=pd.DataFrame(rows))


# ----------------------------------------------------------------------------------------------------------
# Enforcement at pull: answers of annotators not qualified for the task type are kept apart

HELD_FILE = "held_answers.json"
"""The job's answers kept apart at the last pull (rewritten by every pull; read by ``kdh status``)."""

_MODES = ("auto", "required", "off")


@dataclass(frozen=True)
class QualificationGate:
    """Whether pull enforces qualification, with which ledger, and why (see the module docstring).

    Attributes:
        enforced: Answers of annotators not qualified for the task type are kept apart.
        mode: ``KDH_QUALIFICATION``: ``"auto"`` (default), ``"required"`` or ``"off"``.
        ledger: The trainee ledger consulted (the hub's ``trainees.jsonl``).
        reason: In words, for ``kdh status``.
    """

    enforced: bool
    mode: str
    ledger: Path
    reason: str


def qualification_gate(*, mode: str | None = None, ledger_path: str | Path | None = None) -> QualificationGate:
    """Decide whether qualification is enforced (``mode`` default: ``$KDH_QUALIFICATION``, else ``auto``).

    Raises:
        InvalidInputError: An unknown mode (the message names the valid ones; also a ``ValueError``).

    Example:
        >>> import tempfile, pathlib
        >>> missing = pathlib.Path(tempfile.mkdtemp()) / "trainees.jsonl"
        >>> qualification_gate(mode="auto", ledger_path=missing).enforced
        False
        >>> qualification_gate(mode="required", ledger_path=missing).enforced
        True
        >>> qualification_gate(mode="sometimes")
        Traceback (most recent call last):
        ...
        kdh_ai.errors.InvalidInputError: KDH_QUALIFICATION must be one of ('auto', 'required', 'off'), got 'sometimes'
    """
    mode = (mode or os.environ.get("KDH_QUALIFICATION") or "auto").strip().lower()
    if mode not in _MODES:
        raise InvalidInputError(f"KDH_QUALIFICATION must be one of {_MODES}, got {mode!r}")
    path = Path(ledger_path) if ledger_path else default_ledger_path()
    if mode == "off":
        return QualificationGate(False, mode, path, "qualification is not enforced (KDH_QUALIFICATION=off): "
                                                    "every annotator's answers count")
    if mode == "auto" and not path.exists():
        return QualificationGate(False, mode, path, f"qualification is not enforced: this hub has no trainee "
                                                    f"ledger ({path}; start one with `kdh qualify EMAIL --task "
                                                    "TASK`, or set KDH_HUB_DIR to the hub's folder), so every "
                                                    "annotator's answers count")
        # a hub that never qualified anyone keeps its people's work rather than silently dropping all of it
    return QualificationGate(True, mode, path, f"qualification is enforced (ledger {path})")


def _field(rec: Any, name: str) -> Any:
    return rec.get(name) if isinstance(rec, dict) else getattr(rec, name, None)


def _as_dict(rec: Any) -> dict[str, Any]:
    if isinstance(rec, dict):
        return dict(rec)
    if dataclasses.is_dataclass(rec):
        return dataclasses.asdict(rec)  # type: ignore[arg-type]
    return dict(getattr(rec, "to_dict")())


@dataclass
class HeldBatch:
    """The answers one pull keeps apart (what :func:`write_held` records once the pull's append succeeded).

    Attributes:
        gate: Whether qualification was enforced, and why.
        task: The job's task type.
        records: The annotation records kept apart.
    """

    gate: QualificationGate
    task: str
    records: list[Any] = field(default_factory=list)


def hold_unqualified(job: Job, records: list[Any], *, task: str, result: Any = None,
                     previous: dict[Any, Any] | None = None, gate: QualificationGate | None = None
                     ) -> tuple[list[Any], HeldBatch]:
    """Split a pull's new annotation records: those to keep, and those of annotators not qualified for ``task``.

    Called by :func:`kdh_ai.labelstudio.pull.pull` (inside its job lock) before it appends; the pull then
    appends the kept records and calls :func:`write_held` with the rest, so a pull that fails half-way writes
    nothing. Held records never reach ``annotations.jsonl``, so every pull reads them from Label Studio again.
    They are taken out of ``result``'s ``new``/``changed`` counts (``held``: how many). Deletion records
    always pass.

    Args:
        job: The job being pulled.
        records: Annotation records (dicts or typed records with the same fields).
        task: The job's task type name.
        result: The pull's ``PullResult`` (its counts are corrected), optional.
        previous: The job's annotation records before this pull, by ``annotation_id`` (to tell new from changed).
        gate: Whether to enforce (default: :func:`qualification_gate`).
    """
    gate = gate or qualification_gate()
    keep, held = [], []
    if gate.enforced:
        ledger = TraineeLedger(gate.ledger)
        verdict: dict[str, bool] = {}
        for rec in records:
            email = str(_field(rec, "annotator_email") or "").lower()
            if _field(rec, "deleted"):
                keep.append(rec)
                continue
            if email not in verdict:
                verdict[email] = bool(email) and ledger.is_qualified(email, task)
            (keep if verdict[email] else held).append(rec)
    else:
        keep = list(records)
    if result is not None and held:
        old = previous or {}
        changed = sum(1 for r in held if _field(r, "annotation_id") in old
                      and not _field(old[_field(r, "annotation_id")], "deleted"))
        result.new -= len(held) - changed
        result.changed -= changed
        if hasattr(result, "held"):
            result.held = len(held)
    if held:
        who = sorted({str(_field(r, "annotator_email") or _field(r, "annotator_id")) for r in held})
        logger.warning("Kept apart %d answers of annotators not qualified for %s: %s", len(held), task,
                       ", ".join(who))
    return keep, HeldBatch(gate=gate, task=task, records=held)


def write_held(job: Job, batch: HeldBatch) -> None:
    """Record what the pull kept apart in ``held_answers.json`` (replaced: the answers held right now)."""
    write_json_atomic(job.root / HELD_FILE, {
        "at": utc_now(), "task": batch.task, "enforced": batch.gate.enforced, "mode": batch.gate.mode,
        "ledger": str(batch.gate.ledger), "reason": batch.gate.reason,
        "annotations": [_as_dict(r) for r in batch.records]})


@dataclass
class HeldAnswers:
    """What ``held_answers.json`` says (for ``kdh status``).

    Attributes:
        enforced: Whether the last pull enforced qualification (``None``: never pulled since this existed).
        reason: Why, in words.
        task: The job's task type.
        per_annotator: ``{email: answers kept apart}``.
        at: When the last pull wrote it.
    """

    enforced: bool | None
    reason: str
    task: str | None = None
    per_annotator: dict[str, int] = field(default_factory=dict)
    at: str | None = None

    @property
    def total(self) -> int:
        return sum(self.per_annotator.values())

    def lines(self) -> list[str]:
        """What ``kdh status`` prints: whether it is enforced, then who is held and how to qualify them."""
        if self.enforced is None:
            return [self.reason]
        if not self.enforced:
            return [self.reason[:1].upper() + self.reason[1:] + "."]
        if not self.per_annotator:
            return [f"Qualification is enforced: every answer is from an annotator qualified for {self.task}."]
        who = ", ".join(f"{e} ({n})" for e, n in sorted(self.per_annotator.items()))
        return [f"Kept apart, not delivered: {self.total} answers from annotators not qualified for {self.task}: "
                f"{who}.",
                f"Qualify them: `kdh qualify EMAIL --task {self.task}`, they take the test, then "
                f"`kdh qualify EMAIL --task {self.task} --score`; once they pass, the next `kdh pull` takes their "
                "answers in. Label Studio counts their tasks as answered: to have someone else answer them now, "
                "delete those answers in Label Studio."]


def read_held(job_dir: str | Path) -> HeldAnswers:
    """Read ``held_answers.json`` of a job (see :func:`hold_unqualified`)."""
    path = Path(job_dir) / HELD_FILE
    if not path.exists():
        return HeldAnswers(enforced=None, reason="Qualification: not checked yet (pull the job first).")
    raw = json.loads(path.read_text(encoding="utf-8"))
    per: dict[str, int] = {}
    for rec in raw.get("annotations") or []:
        key = str(rec.get("annotator_email") or rec.get("annotator_id"))
        per[key] = per.get(key, 0) + 1
    return HeldAnswers(enforced=bool(raw.get("enforced")), reason=str(raw.get("reason") or ""),
                       task=raw.get("task"), per_annotator=per, at=raw.get("at"))
