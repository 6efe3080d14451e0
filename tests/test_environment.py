"""environment.yml (conda users) and pyproject.toml (pip, make) describe the same environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(pyproject["dependencies"]) + list(pyproject["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pinned = [p for p in pip_section if not p.startswith("-e")]
    assert sorted(_name(r) for r in pinned) == sorted(_name(r) for r in wanted)
    assert {(_name(r), r.split("==")[1]) for r in pinned} == {(_name(r), r.split("==")[1]) for r in wanted}
    assert all("==" in r for r in wanted), "every dependency is pinned exactly"
    assert "python=3.11" in env["dependencies"]
    assert pyproject["requires-python"].startswith(">=3.11")
