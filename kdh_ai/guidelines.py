"""Annotation guidelines as versioned documents (``docs/guidelines/<task>.md``).

Each guideline is a Markdown file with a small front matter that names the task type and the guideline's
version. ``kdh push`` shows a task type's guideline to annotators in Label Studio's instructions, and reports
name the version (and the file's SHA-256) that people worked to.

Example:
    >>> g = load_guideline("transcription")
    >>> g.task, g.version
    ('transcription', '1.0.0')
    >>> g.label
    'transcription guideline v1.0.0'
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kdh_ai.errors import InvalidInputError

__all__ = ["GUIDELINES_DIR", "Guideline", "default_guideline_path", "guideline_for_file", "guideline_record",
           "load_guideline", "split_front_matter", "with_default_guideline"]

GUIDELINES_DIR = Path(__file__).resolve().parent.parent / "docs" / "guidelines"
"""Where the project's guidelines live (one Markdown file per task type)."""


@dataclass(frozen=True)
class Guideline:
    """One guideline document.

    Attributes:
        task: The task type it is for (``"transcription"``, ``"classification"``), or ``None`` for a
            client's own file without front matter.
        version: Its version (``"1.0.0"``), or ``None`` when the file does not state one.
        path: The file.
        text: The Markdown body, without the front matter.
        sha256: SHA-256 of the whole file's bytes (identifies exactly what annotators saw).
    """

    task: str | None
    version: str | None
    path: Path
    text: str
    sha256: str

    @property
    def label(self) -> str:
        """How reports name it: ``"transcription guideline v1.0.0"`` or the file name and hash."""
        if self.task and self.version:
            return f"{self.task} guideline v{self.version}"
        return f"{self.path.name} (sha256 {self.sha256[:12]})"


def guideline_for_file(path: str | Path) -> Guideline:
    """Read a guideline file; its front matter (``---`` YAML ``---``), if any, gives task and version.

    Raises:
        ValueError: The file cannot be read, or its front matter is not valid YAML.
    """
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the guideline {p}: {exc.strerror or exc}; give a Markdown file") from None
    meta, text = split_front_matter(raw.decode("utf-8", errors="replace"), name=str(p))
    version = meta.get("version")
    return Guideline(task=meta.get("guideline"), version=None if version is None else str(version), path=p,
                     text=text, sha256=hashlib.sha256(raw).hexdigest())


def split_front_matter(text: str, *, name: str = "the guideline") -> tuple[dict, str]:
    r"""``(front matter as a dict, body)`` of a Markdown text (``({}, text)`` when it has none).

    Raises:
        InvalidInputError: The front matter is not valid YAML (also a ``ValueError``).

    Example:
        >>> split_front_matter("---\nversion: 2.1\n---\n# Rules\n")
        ({'version': 2.1}, '# Rules\n')
    """
    if text.startswith("---\n"):
        head, sep, body = text[4:].partition("\n---\n")
        if sep:
            try:
                loaded = yaml.safe_load(head)
            except yaml.YAMLError as exc:
                raise InvalidInputError(f"{name}: the front matter is not valid YAML ({exc}); fix it") from None
            return (loaded if isinstance(loaded, dict) else {}), body.lstrip("\n")
    return {}, text


def default_guideline_path(task: str) -> Path | None:
    """The project's guideline file for a task type, or ``None`` when none ships for it."""
    path = GUIDELINES_DIR / f"{task}.md"
    return path if path.is_file() else None


def with_default_guideline(opts: Any, task: str) -> Any:
    """Push options with the task type's guideline filled in when none was given (``kdh push``'s default).

    ``opts`` is any dataclass with a ``guidelines`` field (:class:`kdh_ai.labelstudio.push.PushOptions`).
    """
    if getattr(opts, "guidelines", None) is not None:
        return opts
    path = default_guideline_path(task)
    return dataclasses.replace(opts, guidelines=path) if path else opts


def guideline_record(path: str | Path) -> dict[str, Any]:
    """What a job records of the guideline its people worked to: file, SHA-256, task, version and label.

    Example:
        >>> rec = guideline_record(GUIDELINES_DIR / "classification.md")
        >>> rec["file"], rec["version"], rec["label"]
        ('classification.md', '1.0.0', 'classification guideline v1.0.0')
    """
    g = guideline_for_file(path)
    return {"file": g.path.name, "sha256": g.sha256, "task": g.task, "version": g.version, "label": g.label}


def load_guideline(task: str) -> Guideline:
    """The project's guideline for a task type.

    Raises:
        ValueError: No guideline ships for that task type (the message lists those that do).
    """
    path = GUIDELINES_DIR / f"{task}.md"
    if not path.is_file():
        have = sorted(p.stem for p in GUIDELINES_DIR.glob("*.md"))
        raise InvalidInputError(f"no guideline for task type {task!r}; available: {have}")
    return guideline_for_file(path)
