"""Items of a client batch, and reading them from a directory or a manifest.

An :class:`Item` is one unit of work: an audio file to transcribe or a text to classify. A batch comes as

* a **directory** of audio files (every file with an audio extension, recursively; ``item_id`` is the path
  relative to the directory without its extension), or
* a **manifest**, CSV or JSONL, with the columns ``item_id``, then ``path`` (audio) or ``text`` (texts), an
  optional ``reference`` (a known answer: the reference transcript or the true label) and any other columns,
  which are kept as ``metadata``. Relative paths are taken relative to the manifest's folder.

Problems that belong to one item (a missing file, an empty text) do not stop reading: the item is yielded with
``error`` set, so the job records it as ``status="error"`` and goes on. Problems with the batch itself (no
such input, a manifest without an ``item_id`` column) raise :class:`InputError`. Lines that cannot become an
item at all (a duplicate ``item_id``, a row without an id) are returned as :class:`IngestIssue`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AUDIO_EXTENSIONS",
    "IngestIssue",
    "InputError",
    "Item",
    "read_items",
    "sha256_file",
    "sha256_text",
]

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
"""Audio file extensions read from a directory (case-insensitive)."""

_KNOWN_COLUMNS = ("item_id", "path", "text", "reference")


class InputError(ValueError):
    """The batch as a whole cannot be read (bad path, unknown format, missing required column)."""


@dataclass
class Item:
    """One unit of work.

    Attributes:
        item_id: Unique id within the batch.
        path: Absolute path of the audio file (audio tasks).
        text: The text to annotate (text tasks).
        reference: A known answer, if the client gave one (reference transcript or label).
        metadata: Any other manifest columns.
        error: Set when the item cannot be processed (the message names the problem and what to do).
    """

    item_id: str
    path: str | None = None
    text: str | None = None
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The item as written to ``items.jsonl``."""
        return {"item_id": self.item_id, "path": self.path, "text": self.text, "reference": self.reference,
                "metadata": self.metadata, "error": self.error}


@dataclass
class IngestIssue:
    """A manifest row or file that could not become an item.

    Attributes:
        where: The manifest line (``file:line``) or file path.
        item_id: The id the row carried, if any.
        message: What is wrong and what to do.
    """

    where: str
    item_id: str | None
    message: str

    def __str__(self) -> str:
        ident = f" item {self.item_id!r}" if self.item_id else ""
        return f"{self.where}{ident}: {self.message}"


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes.

    Example:
        >>> sha256_text("hello")[:12]
        '2cf24dba5fb0'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _undecodable(value: Any) -> str | None:
    """For a value read with ``errors="surrogateescape"``: a note on its first byte that is not UTF-8."""
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, list):
        return next((note for v in value if (note := _undecodable(v))), None)
    if not isinstance(value, str):
        return None
    for i, ch in enumerate(value):
        if "\udc80" <= ch <= "\udcff":
            return f"byte 0x{ord(ch) - 0xDC00:02x} at character {i + 1}"
    return None


def _repaired(value: Any) -> Any:
    """The value with each byte that is not UTF-8 replaced by U+FFFD (so it can be stored as UTF-8)."""
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    if isinstance(value, str) and _undecodable(value):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _rows_from_manifest(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{path.name}:{lineno}", {"__error__": f"not valid JSON ({exc.msg}); fix the line"}
                    continue
                if not isinstance(row, dict):
                    yield f"{path.name}:{lineno}", {"__error__": "a line must be a JSON object; fix the line"}
                    continue
                yield f"{path.name}:{lineno}", row
    elif suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None or "item_id" not in reader.fieldnames:
                raise InputError(f"manifest {path} has no 'item_id' column (columns: {reader.fieldnames}); "
                                 "add one: each row needs a unique item_id")
            for lineno, row in enumerate(reader, 2):
                yield f"{path.name}:{lineno}", dict(row)
    else:
        raise InputError(f"{path}: unknown manifest format {suffix!r}; use .csv, .tsv or .jsonl, "
                         "or give a directory of audio files")


def read_items(source: str | Path, *, kind: str) -> tuple[list[Item], list[IngestIssue]]:
    """Read a batch from a directory or a manifest.

    Args:
        source: A directory of audio files, or a CSV/TSV/JSONL manifest.
        kind: ``"audio"`` (items need ``path``) or ``"text"`` (items need ``text``).

    Returns:
        The items in input order (some may carry ``error``), and the issues of rows that could not become
        items (duplicate or missing ids, unknown file types in a directory).

    Raises:
        InputError: The source does not exist or cannot be read as a batch.
    """
    if kind not in ("audio", "text"):
        raise ValueError(f"kind must be 'audio' or 'text', got {kind!r}")
    src = Path(source).expanduser()
    if not src.exists():
        raise InputError(f"input {src} does not exist; give a directory of audio files or a manifest")
    items: list[Item] = []
    issues: list[IngestIssue] = []
    seen: dict[str, str] = {}

    if src.is_dir():
        if kind != "audio":
            raise InputError(f"{src} is a directory; text batches come as a CSV or JSONL manifest")
        for f in sorted(p for p in src.rglob("*") if p.is_file() or p.is_symlink()):
            rel = f.relative_to(src)
            if f.suffix.lower() not in AUDIO_EXTENSIONS:
                if not f.name.startswith("."):
                    issues.append(IngestIssue(str(rel), None, f"skipped: not an audio file extension "
                                              f"(accepted: {', '.join(AUDIO_EXTENSIONS)})"))
                continue
            item_id = rel.with_suffix("").as_posix()
            if item_id in seen:
                issues.append(IngestIssue(str(rel), item_id, f"duplicate item_id (also {seen[item_id]}); "
                                          "rename one of the files"))
                continue
            seen[item_id] = str(rel)
            items.append(Item(item_id=item_id, path=str(f.resolve())))
        return items, issues

    base = src.resolve().parent
    for where, row in _rows_from_manifest(src):
        if "__error__" in row:
            issues.append(IngestIssue(where, None, row["__error__"]))
            continue
        bad_bytes = {_repaired(k): note for k, v in row.items() if (note := _undecodable(v) or _undecodable(k))}
        if bad_bytes:  # bytes that are not UTF-8: the row's values are repaired, and the item is refused below
            row = _repaired(row)
        raw_id = row.get("item_id")
        item_id = str(raw_id).strip() if raw_id is not None else ""
        if "item_id" in bad_bytes:
            issues.append(IngestIssue(where, item_id, f"item_id is not valid UTF-8 ({bad_bytes['item_id']}); "
                                      "save the manifest as UTF-8: this row was not processed"))
            continue
        if not item_id:
            issues.append(IngestIssue(where, None, "row has no item_id; give every row a unique item_id"))
            continue
        if item_id in seen:
            issues.append(IngestIssue(where, item_id, f"duplicate item_id (first seen at {seen[item_id]}); "
                                      "ids must be unique in a batch: this row was not processed"))
            continue
        seen[item_id] = where
        metadata = {k: v for k, v in row.items() if k not in _KNOWN_COLUMNS and k is not None}
        reference = row.get("reference")
        reference = None if reference in (None, "") else str(reference)
        item = Item(item_id=item_id, reference=reference, metadata=metadata)
        if kind == "audio":
            p = row.get("path")
            if not p:
                item.error = f"{where}: no 'path' given; add the audio file's path to the manifest"
            else:
                path = Path(str(p)).expanduser()
                item.path = str((path if path.is_absolute() else base / path).resolve())
        else:
            text = row.get("text")
            item.text = text if isinstance(text, str) else (None if text is None else str(text))
        if bad_bytes and not item.error:
            cols = ", ".join(f"{k} ({v})" for k, v in bad_bytes.items())
            item.error = (f"{where}: not valid UTF-8 in {cols}; save the manifest as UTF-8 (e.g. re-export it, or "
                          "convert it with `iconv -f latin1 -t utf-8`) and run again")
        items.append(item)
    return items, issues
