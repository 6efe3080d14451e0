"""kdh_ai.quality is the pure bottom layer: it imports nothing else of kdh_ai, and its API is declared."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import kdh_ai.quality as quality

PACKAGE = Path(quality.__file__).resolve().parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_imports_nothing_else_of_kdh_ai(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level <= 1, f"{module} reaches outside kdh_ai.quality: from {'.' * node.level}{node.module}"
            assert node.level == 1 or not (node.module or "").startswith("kdh_ai"), f"{module} imports {node.module}"
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("kdh_ai") for alias in node.names), f"{module} imports kdh_ai"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_all(module: str) -> None:
    mod = importlib.import_module(f"kdh_ai.quality.{module}")
    assert hasattr(mod, "__all__")
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


def test_public_functions_take_options_by_keyword_only() -> None:
    positional_ok = {"correct", "n", "df", "text", "reference", "hypothesis", "y_true", "y_pred",
                     "gold", "references", "answers", "normalizer"}
    for name in quality.__all__:
        obj = getattr(quality, name)
        assert hasattr(quality, name)
        if not inspect.isfunction(obj):
            continue
        assert obj.__doc__ and "Example" in obj.__doc__, f"{name} has no docstring example"
        for param in inspect.signature(obj).parameters.values():
            if param.kind is param.POSITIONAL_OR_KEYWORD:
                assert param.name in positional_ok, f"{name}({param.name}) should be keyword-only"
