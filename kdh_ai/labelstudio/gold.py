"""Gold items: items with known answers, mixed among ordinary tasks to measure each annotator's accuracy.

Gold answers live only in the job directory (``gold.jsonl``), never in Label Studio, where any annotator's
token could read or edit them. They come from

* a **gold manifest** (CSV or JSONL) with the columns ``item_id`` and ``answer``, plus ``path`` (audio) or
  ``text`` (texts) for items that are not part of this job; relative paths are taken from the manifest's
  folder; or
* an **earlier job**: its gold items, and its items whose human annotations all agree (at least
  ``min_annotators`` of them, not skipped, not deleted). Segments of long recordings are not taken (their
  audio is a span of a recording, not an item a gold task could be made of).

``gold.jsonl`` records (:class:`kdh_ai.records.GoldAnswer`, read with :meth:`kdh_ai.job.Job.gold`):
``{item_id, answer, source, path, text, added_at}``; the latest record per item_id wins. A record with
``answer: null`` withdraws an item from the gold set.

Example:
    >>> import tempfile, pathlib
    >>> from kdh_ai.job import Job
    >>> job = Job(pathlib.Path(tempfile.mkdtemp()))
    >>> job.items.append([{"item_id": "a1", "path": "/audio/a1.wav", "text": None, "error": None}])
    >>> add_gold(job, [GoldItem("a1", "hello world", source="manual"), GoldItem("x9", "bye")])
    (1, ["gold item 'x9' is not in this job and has no audio path; add a 'path' column to the gold manifest"])
    >>> current_gold(job)["a1"]["answer"]
    'hello world'
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.records import GoldAnswer, utc_now

__all__ = ["GoldItem", "add_gold", "current_gold", "gold_from_job", "read_gold_manifest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldItem:
    """One known answer.

    Attributes:
        item_id: The item's id (an item of this job, or an extra item shipped with the gold set).
        answer: The known answer (transcript or label).
        source: Where it came from (manifest path, ``job:<dir>``...).
        path: Audio file of an item that is not in the job.
        text: Text of an item that is not in the job.
    """

    item_id: str
    answer: str
    source: str = ""
    path: str | None = None
    text: str | None = None


def read_gold_manifest(path: str | Path) -> tuple[list[GoldItem], list[str]]:
    """Read a gold manifest (CSV/TSV/JSONL: ``item_id, answer[, path | text]``).

    Returns:
        The gold items, and one message per row that could not be used (naming the row and what to do).

    Raises:
        ValueError: The file cannot be read, or it has no ``item_id``/``answer`` columns.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise InvalidInputError(f"gold manifest {p} does not exist; give a CSV or JSONL file with item_id and answer")
    rows: list[tuple[str, dict[str, Any]]] = []
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    rows.append((f"{p.name}:{n}", {"__error__": f"not valid JSON ({exc.msg})"}))
                    continue
                rows.append((f"{p.name}:{n}", row if isinstance(row, dict) else {"__error__": "not an object"}))
    elif suffix in (".csv", ".tsv"):
        with open(p, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            missing = {"item_id", "answer"} - set(reader.fieldnames or [])
            if missing:
                raise InvalidInputError(f"gold manifest {p} lacks the column(s) {sorted(missing)}; "
                                 "it needs item_id and answer")
            # an empty CSV cell means "no answer given"; an empty answer (silence) needs JSONL ("answer": "")
            rows = [(f"{p.name}:{n}", {**r, "answer": r.get("answer") or None}) for n, r in enumerate(reader, 2)]
    else:
        raise InvalidInputError(f"gold manifest {p}: unknown format {suffix!r}; use .csv, .tsv or .jsonl")
    items, issues = [], []
    for where, row in rows:
        if "__error__" in row:
            issues.append(f"{where}: {row['__error__']}; fix the line")
            continue
        item_id = str(row.get("item_id") or "").strip()
        answer = row.get("answer")
        if not item_id:
            issues.append(f"{where}: no item_id; give every gold row the item's id")
            continue
        if answer is None:
            issues.append(f"{where}: item {item_id!r} has no answer; add it or drop the row")
            continue
        audio = row.get("path") or None
        if audio:
            ap = Path(str(audio)).expanduser()
            audio = str(ap if ap.is_absolute() else (p.parent / ap).resolve())
        items.append(GoldItem(item_id=item_id, answer=str(answer), source=str(p), path=audio,
                              text=row.get("text") or None))
    return items, issues


def gold_from_job(job_dir: str | Path, *, min_annotators: int = 1) -> list[GoldItem]:
    """Gold taken from an earlier job (see the module docstring).

    Args:
        job_dir: The earlier job directory, its delivery folder, or its ``delivered.jsonl``.
        min_annotators: For an undelivered job: how many agreeing annotators an item needs.

    Raises:
        ValueError: Not a job directory nor a delivery.
    """
    if min_annotators < 1:
        raise InvalidInputError(f"min_annotators must be >= 1, got {min_annotators}")
    src = Path(job_dir).expanduser().resolve()
    delivered = src if src.is_file() else src / "delivered.jsonl"
    if delivered.is_file():
        return _gold_from_delivery(delivered)
    prev = Job(src)
    if not prev.manifest_path.exists():
        raise InvalidInputError(f"{src} is neither a job directory (no job.json) nor a delivery (no delivered.jsonl)")
    items = prev.current_items()
    source = f"job:{prev.root}"
    out: dict[str, GoldItem] = {}
    for item_id, g in prev.gold().items():
        if g.segment is not None:  # a segment of a long recording: its audio is not an item of its own
            continue
        item = items.get(item_id, {})
        out[item_id] = GoldItem(item_id, str(g.answer), source, g.path or item.get("path"), g.text or item.get("text"))
    answers: dict[str, dict[Any, str]] = defaultdict(dict)
    for a in prev.annotations():
        if a.skipped or a.answer is None or a.gold or a.segment is not None:
            continue
        answers[a.item_id][a.annotator_id] = a.answer
    for item_id, by_annotator in answers.items():
        values = {" ".join(str(a).split()) for a in by_annotator.values()}
        if item_id in out or len(by_annotator) < min_annotators or len(values) != 1:
            continue
        item = items.get(item_id, {})
        out[item_id] = GoldItem(item_id, next(iter(by_annotator.values())), source, item.get("path"),
                                item.get("text"))
    return list(out.values())


def _gold_from_delivery(path: Path) -> list[GoldItem]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: not valid JSON; line skipped", path.name, n)
            continue
        if rec.get("provenance") in ("human", "aggregated") and rec.get("answer") is not None:
            out.append(GoldItem(str(rec["item_id"]), str(rec["answer"]), f"delivery:{path}",
                                rec.get("audio_path"), rec.get("text")))
    return out


def current_gold(job: Job) -> dict[str, dict[str, Any]]:
    """The job's gold set by item_id, as dicts (:meth:`kdh_ai.job.Job.gold`; withdrawn items are left out)."""
    return {k: g.to_dict() for k, g in job.gold().items()}


def add_gold(job: Job, gold: Iterable[GoldItem]) -> tuple[int, list[str]]:
    """Add gold items to the job's ``gold.jsonl`` (unchanged ones are not written again).

    An item that is not part of the job needs its own ``path`` (audio tasks) or ``text`` (text tasks).

    Returns:
        How many records were written, and one message per gold item that could not be used.
    """
    items = job.current_items()
    known = job.gold()
    kind = _item_kind(job)
    new, issues = [], []
    for g in gold:
        mine = items.get(g.item_id)
        other_audio = bool(mine and g.path and mine.get("path")
                           and Path(g.path).resolve() != Path(mine["path"]).resolve())
        other_text = bool(mine and g.text and mine.get("text") and g.text != mine["text"])
        if other_audio or other_text:
            issues.append(f"gold item {g.item_id!r} has the id of an item of this job but other content; give it "
                          "another id in the gold manifest")
            continue
        if mine is None:
            if kind == "audio" and not g.path:
                issues.append(f"gold item {g.item_id!r} is not in this job and has no audio path; add a 'path' "
                              "column to the gold manifest")
                continue
            if kind == "audio" and g.path and not Path(g.path).is_file():
                issues.append(f"gold item {g.item_id!r}: audio file {g.path} not found; fix the path")
                continue
            if kind == "text" and not g.text:
                issues.append(f"gold item {g.item_id!r} is not in this job and has no text; add a 'text' column")
                continue
        old = known.get(g.item_id)
        if old and (old.answer, old.path, old.text) == (g.answer, g.path, g.text):
            continue
        new.append(GoldAnswer(g.item_id, g.answer, g.source, g.path, g.text, added_at=utc_now()))
    job.append_gold(new)
    return len(new), issues


def _item_kind(job: Job) -> str:
    try:
        return job.task_type().item_kind if job.task else "audio"
    except ValueError:
        return "audio"
