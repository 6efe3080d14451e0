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


@pytest.mark.labelstudio
@pytest.mark.slow
def test_push_shows_the_task_guideline_by_default_and_pages_name_its_version(labelstudio_server, ls_annotators,
                                                                             tmp_path) -> None:
    """`kdh push` without --guidelines puts the task type's guideline in Label Studio's instructions, shown
    before labelling; the client report and the feedback page name its version. --guidelines still wins."""
    import re

    from kdh_ai.labelstudio.gold import GoldItem, add_gold
    from kdh_ai.labelstudio.pull import pull
    from kdh_ai.labelstudio.push import PushOptions, push, read_ls_state
    from kdh_ai.report.client import write_client_report
    from kdh_ai.report.feedback import write_feedback
    from test_labelstudio_push_pull import annotate_next, make_job

    conn = labelstudio_server.connection
    g = load_guideline("transcription")
    job = make_job(tmp_path / "job", 3)
    with job:
        add_gold(job, [GoldItem("clip-0002", "known answer", source="test")])
    res = push(job.root, PushOptions(project="default guideline", overlap_fraction=0.0, control_share=0.0,
                                     gold_rate=0.3, seed=0), connection=conn)
    project = labelstudio_server.client.get_json(f"api/projects/{res.project_id}/", what="read project")
    assert project["show_instruction"] is True
    assert f"Transcription guideline (version {g.version})" in project["expert_instruction"]
    assert "guideline: transcription" not in project["expert_instruction"]  # front matter is not shown
    assert read_ls_state(job)["guidelines"]["version"] == g.version
    email, _, _, client = ls_annotators[0]
    for _ in range(3):
        annotate_next(client, res.project_id, "known answer", lead_time=5.0)
    pull(job.root, connection=conn)
    report = write_client_report(job.root, tmp_path / "report.html")
    text = re.sub(r"<[^>]+>", " ", report.read_text(encoding="utf-8"))
    assert f"worked to transcription guideline v{g.version}, transcription.md" in " ".join(text.split())
    page = write_feedback(job.root, email, tmp_path / "feedback.html").read_text(encoding="utf-8")
    assert f"transcription guideline v{g.version}" in page

    # a client's own file still overrides the default
    own = tmp_path / "client.md"
    own.write_text("# Client rules\n\nWrite numbers as digits.\n", encoding="utf-8")
    job2 = make_job(tmp_path / "job2", 2, prefix="own")
    res2 = push(job2.root, PushOptions(project="own guideline", guidelines=own, gold_rate=0.0), connection=conn)
    project2 = labelstudio_server.client.get_json(f"api/projects/{res2.project_id}/", what="read project")
    assert "Client rules" in project2["expert_instruction"] and "Transcription guideline" not in \
        project2["expert_instruction"]
    assert read_ls_state(job2)["guidelines"]["file"] == "client.md"
