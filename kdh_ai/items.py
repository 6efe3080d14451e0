"""Items of a client batch, and reading them from a directory or a manifest.

An :class:`Item` is one unit of work: an audio file to transcribe or a text to classify. A batch comes as

* a **directory** of audio files (every file with an audio extension, recursively; ``item_id`` is the path
  relative to the directory without its extension), or
* a **manifest**, CSV or JSONL, with the columns ``item_id``, then ``path`` (audio) or ``text`` (texts), an
  optional ``reference`` (a known answer: the reference transcript or the true label) and any other columns,
  which are kept as ``metadata``. Relative paths are taken relative to the manifest's folder.

**Containment.** An audio path must stay inside the batch: the directory given, or the folder that holds the
manifest, after following every symbolic link (``..``, an absolute path elsewhere, or a link that leads out
are refused), unless the lead names other trusted folders (``allow_roots``, ``kdh prelabel transcribe
--allow-root DIR``). Special files (named pipes, devices, sockets) and symbolic-link loops are refused without
being opened. A refused path becomes an item with ``error`` set; its file is never read, and never reaches
Label Studio (see ``docs/labelstudio.md``, "Which files Label Studio can serve").

Problems that belong to one item (a missing file, an empty text) do not stop reading: the item is yielded with
``error`` set, so the job records it as ``status="error"`` and goes on. Problems with the batch itself (no
such input, an empty folder, a manifest without an ``item_id`` or ``path``/``text`` column, a CSV whose
quoting cannot be parsed) raise :class:`InputError`, naming the line. Lines that cannot become an item at all
(a duplicate ``item_id``, a row without an id) are returned as :class:`IngestIssue`; so are files of a folder
that are not audio (``skipped=True``: listed, but not a failure).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdh_ai.errors import InvalidInputError, KdhError

__all__ = [
    "AUDIO_EXTENSIONS",
    "IngestIssue",
    "InputError",
    "Item",
    "NotRegularFileError",
    "check_audio_path",
    "read_items",
    "sha256_file",
    "sha256_text",
]

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
"""Audio file extensions read from a directory (case-insensitive)."""

_KNOWN_COLUMNS = ("item_id", "path", "text", "reference")

CSV_FIELD_LIMIT = 1 << 26
"""Longest CSV field read (64 Mi characters; Python's default of 131,072 refuses long client texts). A text
over the task's own limit (``max_chars``) becomes a per-item error; a field over this one an input error."""


class InputError(InvalidInputError):
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
        skipped: A file of a folder that is not audio (a client's README next to the clips): listed, but
            not a failed item.
    """

    where: str
    item_id: str | None
    message: str
    skipped: bool = False

    def __str__(self) -> str:
        ident = f" item {self.item_id!r}" if self.item_id else ""
        return f"{self.where}{ident}: {self.message}"


class NotRegularFileError(KdhError, OSError):
    """A path names a special file (named pipe, device, socket): it is refused without being read."""


_SPECIAL_KINDS = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
                  (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _special_kind(mode: int) -> str | None:
    """What kind of special file ``mode`` describes (``None`` for a regular file or a directory)."""
    return next((name for test, name in _SPECIAL_KINDS if test(mode)), None)


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a regular file's bytes, read in chunks.

    Special files are refused before they are opened (reading ``/dev/zero`` never ends; opening a named pipe
    blocks until someone writes to it), and again after opening without blocking, in case the path was
    swapped in between.

    Raises:
        IsADirectoryError: The path is a directory.
        NotRegularFileError: The path is a named pipe, a device or a socket.
        OSError: The file cannot be read (missing, no permission, a symbolic-link loop).
    """
    def check(st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file but a {_special_kind(st.st_mode)}",
                                      str(path))

    check(os.stat(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        check(os.fstat(fh.fileno()))
        digest = hashlib.sha256()
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def check_audio_path(path: str | Path, roots: Sequence[str | Path]) -> tuple[str, str | None]:
    """Resolve an audio path and say whether kdh may read it (see "Containment" in the module docstring).

    Args:
        path: The path (absolute, or relative to the current directory).
        roots: The folders whose files may be read (the batch's folder and any allowed roots).

    Returns:
        The path with every symbolic link followed, and ``None`` or what is wrong with it: it leads outside
        ``roots``, it is a symbolic-link loop, or a special file. A missing file or a directory is not
        judged here (the task reports those per item).

    Example:
        >>> check_audio_path("/etc/hostname", ["/srv/batch"])[1]
        'outside'
    """
    real_roots = [Path(os.path.realpath(r)) for r in roots]
    real = Path(os.path.realpath(path))
    if not _inside(real, real_roots):
        return str(real), "outside"
    try:
        st = os.stat(real)
    except OSError as exc:
        return str(real), ("loop" if exc.errno == errno.ELOOP else None)
    kind = _special_kind(st.st_mode)
    return str(real), (f"special:{kind}" if kind else None)


def _path_problem(where: str, given: str, problem: str, base: Path) -> str:
    """The per-item message for a refused path (names the row and what to do; no resolved path)."""
    if problem == "outside":
        return (f"{where}: {given!r} leads outside the batch folder {base} (through '..', an absolute path or "
                "a symbolic link); kdh reads only files inside the batch. Copy the file into the batch folder, "
                "or, if the lead trusts the folder it is in, allow it with --allow-root DIR")
    if problem == "loop":
        return f"{where}: {given!r} is a symbolic-link loop; replace the link with the audio file itself"
    kind = problem.split(":", 1)[1]
    return (f"{where}: {given!r} is a {kind}, not a file; it was not opened. Give the path of an audio "
            "file")


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


def _csv_hint(header: list[str] | None) -> str:
    """A hint when a CSV's header looks separated by something other than the expected delimiter."""
    line = "".join(header or [])
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if sep in line and "item_id" in line:
            return (f" The header looks separated by {name} ({line[:80]!r}): save the manifest with commas "
                    "(in a spreadsheet: CSV, comma-separated)" + (", or name it .tsv" if sep == "\t" else "")
                    + ".")
    return ""


def _rows_from_manifest(path: Path, *, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                    yield f"{path.name}:{lineno}", {"__error__": f"not valid JSON ({msg}); fix the line"}
                    continue
                if not isinstance(row, dict):
                    yield f"{path.name}:{lineno}", {"__error__": "a line must be a JSON object; fix the line"}
                    continue
                yield f"{path.name}:{lineno}", row
    elif suffix in (".csv", ".tsv"):
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            # strict: a quote that is never closed is an error at the end of the file, not a silent merge of
            # every following row into one field
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",", strict=True)
            row_start = 1
            try:
                fields = reader.fieldnames
                if fields is None or "item_id" not in fields:
                    raise InputError(f"manifest {path} has no 'item_id' column (columns: {fields}); "
                                     "add one: each row needs a unique item_id." + _csv_hint(fields))
                need = "path" if kind == "audio" else "text"
                if need not in fields:
                    what = "the audio file's path" if kind == "audio" else "the text to annotate"
                    raise InputError(f"manifest {path} has no '{need}' column (columns: {fields}); add one "
                                     f"with {what} for each row." + _csv_hint(fields))
                row_start = reader.line_num + 1
                for row in reader:
                    yield f"{path.name}:{row_start}", dict(row)
                    row_start = reader.line_num + 1
            except csv.Error as exc:
                if "end of data" in str(exc):
                    raise InputError(f"{path.name}:{row_start}: a quote (\") opened in this row is never "
                                     "closed, so every line after it would run into one field; close the quote "
                                     "or remove it (quotes inside a field are written twice: \"\")") from None
                raise InputError(f"{path.name}:{reader.line_num}: the CSV cannot be read ({exc}); fix the line "
                                 "(a field with commas, quotes or line breaks must be quoted, and its quotes "
                                 "written twice)") from None
    else:
        raise InputError(f"{path}: unknown manifest format {suffix!r}; use .csv, .tsv or .jsonl, "
                         "or give a directory of audio files")


def _set_audio_path(item: Item, where: str, p: Any, base: Path, roots: list[Path]) -> None:
    """Give ``item`` the manifest's audio path ``p`` (relative to the manifest's folder), or the error that
    says what is wrong with it."""
    if not p:
        item.error = f"{where}: no 'path' given; add the audio file's path to the manifest"
    elif not isinstance(p, str) or "\x00" in p:
        item.error = f"{where}: 'path' is not a file path ({str(p)[:60]!r}); give the audio file's path"
    else:
        path = Path(p).expanduser()
        path = path if path.is_absolute() else base / path
        real, problem = check_audio_path(path, roots)
        if problem:
            item.path, item.error = str(path), _path_problem(where, p, problem, base)
        else:
            item.path = real


def read_items(source: str | Path, *, kind: str, allow_roots: Sequence[str | Path] = ()
               ) -> tuple[list[Item], list[IngestIssue]]:
    """Read a batch from a directory or a manifest.

    Args:
        source: A directory of audio files, or a CSV/TSV/JSONL manifest.
        kind: ``"audio"`` (items need ``path``) or ``"text"`` (items need ``text``).
        allow_roots: Folders besides the batch's own whose audio files may be read (see "Containment" in the
            module docstring).

    Returns:
        The items in input order (some may carry ``error``), and the issues of rows that could not become
        items (duplicate or missing ids) and of files that are not audio (``skipped``).

    Raises:
        InputError: The source does not exist, holds no items, or cannot be read as a batch.
    """
    if kind not in ("audio", "text"):
        raise ValueError(f"kind must be 'audio' or 'text', got {kind!r}")
    src = Path(source).expanduser()
    if not src.exists():
        raise InputError(f"input {src} does not exist; give a directory of audio files or a manifest")
    for root in allow_roots:
        if not Path(root).expanduser().is_dir():
            raise InputError(f"allowed root {root} is not a folder; give an existing folder to --allow-root")
    extra_roots = [Path(r).expanduser() for r in allow_roots]
    if src.is_dir():
        if kind != "audio":
            raise InputError(f"{src} is a directory; text batches come as a CSV or JSONL manifest")
        return _items_from_directory(src, [src, *extra_roots])
    return _items_from_manifest(src, kind, extra_roots)


def _items_from_directory(src: Path, roots: list[Path]) -> tuple[list[Item], list[IngestIssue]]:
    """Every audio file below ``src`` is an item named by its relative path without extension."""
    items: list[Item] = []
    issues: list[IngestIssue] = []
    seen: dict[str, str] = {}
    for f in sorted(p for p in src.rglob("*") if p.is_symlink() or not p.is_dir()):
        rel = f.relative_to(src)
        if f.suffix.lower() not in AUDIO_EXTENSIONS:
            if not f.name.startswith("."):
                issues.append(IngestIssue(str(rel), None, f"skipped: not an audio file extension "
                                          f"(accepted: {', '.join(AUDIO_EXTENSIONS)})", skipped=True))
            continue
        item_id = rel.with_suffix("").as_posix()
        if note := _undecodable(item_id):  # a file name that is not UTF-8 cannot be stored as an id
            item_id = _repaired(item_id)
            if item_id not in seen:
                seen[item_id] = str(rel)
                items.append(Item(item_id=item_id, path=_repaired(str(f.absolute())),
                                  error=f"{_repaired(str(rel))}: the file name is not valid UTF-8 ({note}); "
                                        "rename the file (letters, digits, '-' and '_' are safe)"))
            continue
        if item_id in seen:
            issues.append(IngestIssue(str(rel), item_id, f"duplicate item_id (also {seen[item_id]}); "
                                      "rename one of the files"))
            continue
        seen[item_id] = str(rel)
        real, problem = check_audio_path(f, roots)
        if problem:
            items.append(Item(item_id=item_id, path=str(f.absolute()),
                              error=_path_problem(str(rel), str(rel), problem, src)))
        else:
            items.append(Item(item_id=item_id, path=real))
    if not items:
        found = [i.where for i in issues]
        raise InputError(f"{src} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})"
                         + (f"; found only {', '.join(found[:5])}" + (" ..." if len(found) > 5 else "")
                            if found else " (it is empty)") + "; give the folder that holds the clips")
    return items, issues


def _items_from_manifest(src: Path, kind: str, extra_roots: list[Path]) -> tuple[list[Item], list[IngestIssue]]:
    """One item per row of a CSV/TSV/JSONL manifest; rows without a usable id become issues."""
    items: list[Item] = []
    issues: list[IngestIssue] = []
    seen: dict[str, str] = {}
    base = src.resolve().parent
    roots = [base, *extra_roots]
    saw_path = False
    for where, row in _rows_from_manifest(src, kind=kind):
        if "__error__" in row:
            issues.append(IngestIssue(where, None, row["__error__"]))
            continue
        saw_path = saw_path or ("path" in row if kind == "audio" else "text" in row)
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
            _set_audio_path(item, where, row.get("path"), base, roots)
        else:
            text = row.get("text")
            item.text = text if isinstance(text, str) else (None if text is None else str(text))
        if bad_bytes and not item.error:
            cols = ", ".join(f"{k} ({v})" for k, v in bad_bytes.items())
            item.error = (f"{where}: not valid UTF-8 in {cols}; save the manifest as UTF-8 (e.g. re-export it, or "
                          "convert it with `iconv -f latin1 -t utf-8`) and run again")
        items.append(item)
    if items and not saw_path:
        need = "path" if kind == "audio" else "text"
        raise InputError(f"manifest {src} has no '{need}' field in any row; give each row its "
                         + ("audio file's path" if kind == "audio" else "text"))
    if not items and not issues:
        raise InputError(f"manifest {src} holds no items; give a manifest with one row per item")
    return items, issues
