"""The label set of a classification job, read from ``labels.yaml``.

A label set is a list of labels; each label is a name with an optional description. The names are what
annotators pick in Label Studio and what the model predicts. The descriptions are shown to annotators as hints
and help the zero-shot head (the model compares each text with each label's name and description), so a short,
concrete description is worth writing. Two spellings are accepted::

    # labels.yaml: the full form
    description: Intent of a customer's message to the bank    # optional, for people
    labels:
      - name: card_arrival
        description: The customer is waiting for a card that has not arrived yet.
      - name: lost_or_stolen_card
        description: The customer lost their card or it was stolen.
      - name: exchange_rate                                       # a description is optional

    # labels.yaml: the short form, names only
    - ham
    - spam

Rules (each broken rule is an error that names the label): at least two labels; names are unique, non-empty
and have no leading or trailing spaces; no other keys than ``name`` and ``description``.

Example:
    >>> ls = LabelSet.model_validate({"labels": [{"name": "ham"}, {"name": "spam", "description": "ads"}]})
    >>> ls.names
    ['ham', 'spam']
    >>> LabelSet.model_validate(["ham", "spam"]).names
    ['ham', 'spam']
    >>> LabelSet.model_validate(["ham", "ham"])
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for LabelSet
    ...
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdh_ai.errors import InvalidInputError

__all__ = ["Label", "LabelSet", "LabelsError", "load_labels"]


class LabelsError(InvalidInputError):
    """A labels file cannot be read or breaks a rule; the message names the file and the problem."""


class Label(BaseModel):
    """One label.

    Attributes:
        name: What annotators pick and the model predicts (e.g. ``card_arrival``).
        description: Optional: what the label means, in a sentence (shown as a hint; used by zero-shot).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)

    @field_validator("name")
    @classmethod
    def _clean_name(cls, v: str) -> str:
        if v != v.strip():
            raise ValueError(f"label name {v!r} has leading or trailing spaces; remove them")
        if any(c in v for c in "\n\r\t"):
            raise ValueError(f"label name {v!r} holds a line break or tab; use one line")
        return v

    def prompt_texts(self) -> list[str]:
        """The texts that stand for this label in the zero-shot head: its name (underscores and dashes as
        spaces) and, when given, its description."""
        texts = [self.name.replace("_", " ").replace("-", " ").strip() or self.name]
        if self.description and self.description.strip():
            texts.append(self.description.strip())
        return texts


class LabelSet(BaseModel):
    """The labels of a classification job (see the module docstring for the file format).

    Attributes:
        labels: The labels, in the order annotators see them.
        description: Optional: what the labels classify, for people.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: list[Label] = Field(min_length=2)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, list):
            data = {"labels": data}
        if isinstance(data, dict) and isinstance(data.get("labels"), list):
            data = dict(data, labels=[{"name": x} if isinstance(x, str) else x for x in data["labels"]])
        return data

    @field_validator("labels")
    @classmethod
    def _unique(cls, v: list[Label]) -> list[Label]:
        seen: set[str] = set()
        for label in v:
            if label.name in seen:
                raise ValueError(f"label {label.name!r} is listed twice; each label name must be unique")
            seen.add(label.name)
        return v

    @property
    def names(self) -> list[str]:
        """The label names, in order."""
        return [label.name for label in self.labels]

    def identity(self) -> str:
        """A short hash of the names and descriptions (part of a classifier's configuration hash)."""
        data = [[label.name, label.description] for label in self.labels]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]

    @classmethod
    def from_names(cls, names: list[str]) -> LabelSet:
        """A label set from names alone."""
        return cls.model_validate({"labels": [{"name": n} for n in names]})


def _unquoted_names(data: Any) -> list[tuple[int, str, str]]:
    """Label names that YAML read as a boolean, a number or null: ``(index, what it became, quoted form)``.

    Example:
        >>> _unquoted_names(yaml.safe_load("[yes, no, 3, ~, ok]"))[0]
        (0, 'the boolean true', '"yes"')
    """
    labels = data.get("labels") if isinstance(data, dict) else data
    if not isinstance(labels, list):
        return []
    out = []
    for i, entry in enumerate(labels):
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(entry, dict) and "name" not in entry:
            continue
        if isinstance(name, bool):
            out.append((i, f"the boolean {str(name).lower()}", '"yes"' if name else '"no"'))
        elif isinstance(name, (int, float)):
            out.append((i, f"the number {name}", f'"{name}"'))
        elif name is None:
            out.append((i, "null (empty)", '"null"'))
    return out


def load_labels(path: str | Path) -> LabelSet:
    """Read and check a ``labels.yaml`` file.

    Raises:
        LabelsError: The file is missing, is not YAML, or breaks a rule (the message names each problem).
    """
    p = Path(path).expanduser()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelsError(f"labels file {p} does not exist; write one (see `kdh prelabel classify --help`)") from None
    except UnicodeDecodeError:
        raise LabelsError(f"labels file {p} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise LabelsError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        raise LabelsError(f"{p} is empty; list at least two labels")
    unquoted = _unquoted_names(data)
    if unquoted:
        raise LabelsError("\n".join(f"{p}: label {i + 1} is {what}: YAML reads an unquoted yes/no/true/false/on/off "
                                    "as a boolean, a number as a number and null/~/an empty entry as null, not as "
                                    f"text. Put the name in quotes, e.g. - {example}" for i, what, example in unquoted))
    try:
        return LabelSet.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                in_label = len(err["loc"]) > 2 and err["loc"][0] == "labels"
                msg = f"unknown key (valid keys: {'name, description' if in_label else 'labels, description'})"
            lines.append(f"{p}: {loc}: {msg}")
        raise LabelsError("\n".join(lines)) from None
