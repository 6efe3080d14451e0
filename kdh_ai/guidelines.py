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

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from kdh_ai.errors import InvalidInputError

__all__ = ["GUIDELINES_DIR", "Guideline", "guideline_for_file", "load_guideline"]

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
    text = raw.decode("utf-8", errors="replace")
    meta: dict = {}
    if text.startswith("---\n"):
        head, sep, body = text[4:].partition("\n---\n")
        if sep:
            try:
                loaded = yaml.safe_load(head)
            except yaml.YAMLError as exc:
                raise InvalidInputError(f"{p}: the front matter is not valid YAML ({exc}); fix it") from None
            meta = loaded if isinstance(loaded, dict) else {}
            text = body.lstrip("\n")
    version = meta.get("version")
    return Guideline(task=meta.get("guideline"), version=None if version is None else str(version), path=p,
                     text=text, sha256=hashlib.sha256(raw).hexdigest())


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
