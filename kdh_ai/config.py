"""Pipeline configuration: YAML files in ``pipelines/``, validated with pydantic.

A pipeline file names its task and gives the task's options; an unknown key or a bad value is an error that
names the key::

    # pipelines/transcribe.yaml
    task: transcription
    options:
      model: whisper-tiny.en
      beam_size: 5

Options given as command-line flags override the file. An optional ``input`` block says how the batch is
read: ``allow_roots`` lists folders besides the batch's own whose audio files a manifest may name (relative
folders are taken from the pipeline file's folder; ``--allow-root`` adds more)::

    input:
      allow_roots: [/srv/clients/acme/audio]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from kdh_ai.errors import InvalidInputError

__all__ = ["ConfigError", "InputConfig", "PipelineConfig", "load_input_config", "load_pipeline",
           "validate_options"]

TASKS = ("transcription", "classification")


class ConfigError(InvalidInputError):
    """A pipeline file or option value is invalid; the message names the key and the problem."""


class InputConfig(BaseModel):
    """The ``input`` block of a pipeline file: how the batch is read."""

    model_config = ConfigDict(extra="forbid")

    allow_roots: list[str] = []


class PipelineConfig(BaseModel):
    """The top level of a pipeline YAML file."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["transcription", "classification"]
    description: str | None = None
    options: dict[str, Any] = {}
    input: InputConfig = InputConfig()
    ray: dict[str, Any] | None = None  # run on a Ray cluster (kdh_ai.ray_runner.RayOptions); not a job option


_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")


def _format(exc: ValidationError, where: str, valid: list[str]) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] in _UNKNOWN:
            lines.append(f"{where}: {loc}: unknown key; valid keys: {', '.join(valid)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"{where}: {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def _options_class(task: str) -> type:
    if task == "transcription":
        from kdh_ai.engines import TranscribeOptions

        return TranscribeOptions
    if task == "classification":
        from kdh_ai.tasks.classification import ClassifyOptions

        return ClassifyOptions
    raise ConfigError(f"task {task!r} has no options class here; valid tasks: {', '.join(TASKS)}")


def validate_options(task: str, values: dict[str, Any], *, where: str = "options") -> Any:
    """Build the task's typed options from a dict, or raise :class:`ConfigError` naming each bad key."""
    cls = _options_class(task)
    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        raise ConfigError(_format(exc, where, list(cls.__dataclass_fields__))) from None


def _read_pipeline(path: str | Path) -> PipelineConfig:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping with 'task' and 'options'")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, str(p), list(PipelineConfig.model_fields))) from None


def load_input_config(path: str | Path) -> InputConfig:
    """The pipeline file's ``input`` block, with relative ``allow_roots`` taken from the file's folder.

    Raises:
        ConfigError: As :func:`load_pipeline`.
    """
    cfg = _read_pipeline(path).input
    base = Path(path).resolve().parent
    return InputConfig(allow_roots=[str(base / Path(r).expanduser()) for r in cfg.allow_roots])


def load_pipeline(path: str | Path, *, overrides: dict[str, Any] | None = None) -> tuple[str, Any]:
    """Read a pipeline file and return ``(task, options)`` with ``overrides`` applied on top.

    Raises:
        ConfigError: Unreadable YAML, an unknown key or an invalid value (the message names it).
    """
    p = Path(path)
    cfg = _read_pipeline(p)
    values = {**cfg.options, **(overrides or {})}
    return cfg.task, validate_options(cfg.task, values, where=f"{p}: options")
