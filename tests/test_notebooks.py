"""Every trainee notebook runs top to bottom (executed headless, as a trainee would run it)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, request: pytest.FixtureRequest) -> None:
    if path.stem.startswith("02_"):
        request.getfixturevalue("labelstudio_env")  # the session's real server, through KDH_LS_* variables
    nb = nbformat.read(path, as_version=4)
    assert any(c.cell_type == "code" for c in nb.cells)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
