"""The training lab: every exercise is scored at once, with and without the right answers."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kdh_ai import lab

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_BLOCK = re.compile(r"# ANSWER (?P<id>\S+)\n(?P<var>\w+) = .*?# END ANSWER", re.S)


@pytest.mark.parametrize("exercise", sorted(lab.EXERCISES))
def test_each_exercise_passes_its_solution_and_fails_a_blank(exercise: str) -> None:
    assert lab.check(exercise, lab.solution(exercise)).passed
    blank = {"01.wer_by_hand": None, "01.transcribe": {"LJ001-0002": "", "LJ001-0004": "", "LJ001-0008": ""},
             "guide.write": {}, "guide.classify": {}}[exercise]
    result = lab.check(exercise, blank)
    assert not result.passed and result.hint


def test_transcript_feedback_names_the_rule_behind_each_error() -> None:
    fb = lab.transcript_feedback("We met Doctor Amina at seven thirty in the camp.",
                                 "we met doctor amino at 8:30 in the", item_id="c1")
    assert not fb.passed and fb.score == pytest.approx(4 / 9)
    rules = dict(zip(fb.details["reference"], fb.details["rule"]))
    assert rules["amina"].startswith("§2 Names")      # a capitalised word inside the sentence
    assert rules["camp"].startswith("§8")             # the last word dropped
    assert any(r.startswith("§3 Numbers") for r in fb.details["rule"])
    with pytest.raises(ValueError, match="unknown exercise"):
        lab.check("99.nope", 1)


def _run(nb: nbformat.NotebookNode) -> list[str]:
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outs = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "# ANSWER" in cell.source:
            text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "")
                           for o in cell.get("outputs", []))
            outs.append(text)
    return outs


def test_every_exercise_is_in_a_notebook() -> None:
    ids = [m["id"] for p in sorted(NOTEBOOKS.glob("*.ipynb")) for c in nbformat.read(p, as_version=4).cells
           for m in _BLOCK.finditer(c.source)]
    assert sorted(ids) == sorted(lab.EXERCISES)  # each exercise once, none missing


_WITH_EXERCISES = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if "# ANSWER" in p.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("path", _WITH_EXERCISES, ids=[p.stem for p in _WITH_EXERCISES])
def test_notebook_checks_with_and_without_the_right_answers(path: Path) -> None:
    """The notebook as shipped (blank answers) says "Not yet" with a hint; with the solutions filled in,
    every check says "Correct" (so a broken check fails CI)."""
    blank = nbformat.read(path, as_version=4)
    ids = [m["id"] for c in blank.cells for m in _BLOCK.finditer(c.source)]
    assert ids
    # the shipped notebook was already executed by test_notebooks; here only the your-turn cells matter:
    # keep the import cell and the your-turn cells (the rest needs the model and is tested elsewhere)
    keep = [c for c in blank.cells if c.cell_type == "code" and ("# ANSWER" in c.source or "import lab" in c.source)]
    trimmed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from IPython.display import Audio, display\nfrom kdh_ai.samples import ljspeech_manifest")] +
        [nbformat.v4.new_code_cell(c.source) for c in keep if "run_prelabel" not in c.source])
    outs = _run(trimmed)
    assert len(outs) == len(ids) and all("Not yet" in o and "Hint" in o for o in outs), outs
    solved = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        _BLOCK.sub(lambda m: f'# ANSWER {m["id"]} (solution)\n{m["var"]} = lab.solution("{m["id"]}")', c.source)) for c in trimmed.cells])
    outs = _run(solved)
    assert len(outs) == len(ids) and all("Correct" in o and "Not yet" not in o for o in outs), outs
