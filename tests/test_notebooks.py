"""Every trainee notebook runs top to bottom (executed headless, as a trainee would run it)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.stem.startswith(("02_", "07_")):
        request.getfixturevalue("labelstudio_env")  # the session's real server, through KDH_LS_* variables
    # notebook 02's "label in the browser": a SIMULATED trainee answers through the API (right answers here;
    # wrong ones in tests/test_lab.py)
    monkeypatch.setenv("KDH_LAB_SIMULATED_TRAINEE", "right")
    nb = nbformat.read(path, as_version=4)
    assert any(c.cell_type == "code" for c in nb.cells)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    checked = [o for c in nb.cells if c.cell_type == "code" and ("lab.check" in c.source or "# ANSWER" in c.source)
               for o in c.get("outputs", [])]
    if path.stem.startswith("02_"):  # the browser exercise was scored, and the right answers pass
        text = "".join(o.get("data", {}).get("text/plain", "") for o in checked)
        assert "Correct" in text and "SIMULATED trainee" in "".join(
            o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])), text
