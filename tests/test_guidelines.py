"""The annotation guidelines: versioned files, and the scoring follows their rules."""

from __future__ import annotations

import pytest

from kdh_ai.guidelines import guideline_for_file, load_guideline
from kdh_ai.quality.text import wer


@pytest.mark.parametrize("task", ["transcription", "classification"])
def test_each_task_type_has_a_versioned_guideline(task: str) -> None:
    g = load_guideline(task)
    assert g.task == task
    assert g.version and g.version.count(".") == 2
    assert not g.text.startswith("---")  # front matter removed from what annotators read
    assert len(g.sha256) == 64 and g.label == f"{task} guideline v{g.version}"


def test_unknown_task_and_plain_client_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="available"):
        load_guideline("image")
    f = tmp_path / "client.md"
    f.write_text("# Client rules\n\nWrite numbers as digits.\n")
    g = guideline_for_file(f)
    assert g.version is None and g.task is None and "client.md" in g.label


def test_tags_count_as_the_transcription_guideline_says() -> None:
    """Guideline section 4: tags are removed before WER; an [inaudible] in place of words costs those words
    (deletions), a tag where nobody spoke costs nothing, and tags are never scored as the right word."""
    rule = load_guideline("transcription").text
    assert "[inaudible]" in rule and "removed before the word error rate" in rule
    assert wer(["we met at kakuma station"], ["we met at [inaudible] station"]) == pytest.approx(1 / 5)
    assert wer(["we met at old kakuma station"], ["we met at [inaudible] station"]) == pytest.approx(2 / 6)
    assert wer(["we met at the station"], ["we met at the station [noise]"]) == 0.0
    assert wer(["we met at the station"], ["we met at the [crosstalk] station"]) == 0.0
    # Section 3: numbers are normalised, so "twelve" and "12" are the same word
    assert wer(["i want twelve of them"], ["I want 12 of them."]) == 0.0
