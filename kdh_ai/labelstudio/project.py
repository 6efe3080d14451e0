"""Label Studio projects made from a task type's template, with the client's guidelines.

The labeling template comes from the task type (:meth:`kdh_ai.tasks.TaskType.label_config`): transcription is an
Audio player and a TextArea pre-filled with the model's text; classification a Text and Choices. The
guidelines (a Markdown or HTML file) become the project's instructions, shown to annotators before they start.

Project settings chosen for the overlap/gold design (see :mod:`kdh_ai.labelstudio`): one annotation per task
at the project level (``maximum_annotations=1``, never changed afterwards, because changing it rewrites every
task's overlap), per-task overlap set by push, sequential sampling (tasks are served in import order, so gold
tasks mixed into that order reach annotators spread out), skipped tasks re-queued for others.

Example:
    >>> from kdh_ai.tasks import get_task
    >>> data_key(get_task("transcription"))
    'audio'
    >>> guidelines_html("# Rules\\n\\nWrite *exactly* what you hear.", suffix=".md")
    '<h1>Rules</h1>\\n<p>Write <em>exactly</em> what you hear.</p>\\n'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdh_ai.errors import InvalidInputError
from kdh_ai.labelstudio.client import LabelStudioClient
from kdh_ai.tasks import TaskType

__all__ = ["PROJECT_SETTINGS", "create_project", "data_key", "guidelines_html", "project_url",
           "read_guidelines"]

logger = logging.getLogger(__name__)

PROJECT_SETTINGS: dict[str, Any] = {
    "maximum_annotations": 1,
    "sampling": "Sequential sampling",
    "skip_queue": "REQUEUE_FOR_OTHERS",
    "show_skip_button": True,
    "show_overlap_first": False,
    "annotator_evaluation_enabled": False,
    "show_collab_predictions": True,
}
"""Settings every kdh project gets (see the module docstring for why)."""


def data_key(task: TaskType, *, labels: Sequence[str] | None = None) -> str:
    """The key of ``task.data`` that the template's object tag reads (``$audio`` -> ``"audio"``).

    Raises:
        ValueError: The template has no object tag named ``task.to_name`` with a ``$variable`` value.
    """
    config = task.label_config(labels=labels) if labels else task.label_config()
    for tag in re.finditer(r"<\w+\b[^>]*>", config):
        text = tag.group(0)
        name = re.search(r'\bname="([^"]+)"', text)
        value = re.search(r'\bvalue="\$([A-Za-z0-9_]+)"', text)
        if name and value and name.group(1) == task.to_name:
            return value.group(1)
    raise ValueError(f"the {task.name} template has no object tag name=\"{task.to_name}\" with value=\"$...\"")


def guidelines_html(text: str, *, suffix: str) -> str:
    """Guidelines as HTML: Markdown (``.md``) is rendered with raw HTML escaped; ``.html`` is kept as is.

    Raises:
        ValueError: Another file type (the message lists the accepted ones).
    """
    suffix = suffix.lower()
    if suffix in (".md", ".markdown", ".txt"):
        from markdown_it import MarkdownIt

        return MarkdownIt("commonmark", {"html": False}).render(text)
    if suffix in (".html", ".htm"):
        return text
    raise InvalidInputError(f"guidelines must be Markdown (.md) or HTML (.html), got {suffix!r}")


def read_guidelines(path: str | Path) -> str:
    """Read a guidelines file and return its HTML (see :func:`guidelines_html`).

    Raises:
        ValueError: Missing, unreadable or of an unknown type (the message names the file).
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the guidelines {p}: {exc.strerror or exc}; give a Markdown or HTML file") \
            from None
    if p.suffix.lower() in (".md", ".markdown"):
        from kdh_ai.guidelines import split_front_matter

        text = split_front_matter(text, name=str(p))[1]  # the version is in the title; not a YAML block
    return guidelines_html(text, suffix=p.suffix)


def project_url(base_url: str, project_id: int) -> str:
    """The project's page in the Label Studio web app."""
    return f"{base_url.rstrip('/')}/projects/{project_id}/data"


def create_project(client: LabelStudioClient, task: TaskType, *, title: str, guidelines: str | None = None,
                   labels: Sequence[str] | None = None, description: str = "") -> dict[str, Any]:
    """Create a project for ``task`` and return it as a dict (``id``, ``title``, ``label_config``...).

    Args:
        client: The server.
        task: The task type whose template is used.
        title: Project title shown to annotators.
        guidelines: Instructions as HTML (see :func:`read_guidelines`), shown before labeling.
        labels: Label list for templates that take one (classification).
        description: Project description.
    """
    if not title.strip():
        raise InvalidInputError("a project needs a non-empty title")
    config = task.label_config(labels=labels) if labels else task.label_config()
    body: dict[str, Any] = {"title": title, "description": description, "label_config": config,
                            **PROJECT_SETTINGS}
    if guidelines:
        body.update(expert_instruction=guidelines, show_instruction=True)
    resp = client.request("POST", "api/projects/", what=f"create project {title!r}", json_body=body)
    project = resp.json()
    logger.info("Created Label Studio project %d %r (%s)", project["id"], title, task.name)
    return project
