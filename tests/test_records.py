"""The typed records of the job directory read a job directory written before they existed (issue 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kdh_ai.answers import annotations_table
from kdh_ai.job import Job
from kdh_ai.labelstudio.pull import annotations_frame
from kdh_ai.records import HUMAN_ROLES, Annotation, GoldAnswer, PushedTask, Role, RoleRecord, TaskRole

OLD_JOB = Path(__file__).parent / "data" / "jobs" / "v1_classification"


def _lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (OLD_JOB / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def job(tmp_path: Path) -> Job:
    shutil.copytree(OLD_JOB, tmp_path / "job")
    return Job(tmp_path / "job")


def test_readers_read_a_job_written_before_the_typed_records(job: Job) -> None:
    roles = job.roles()
    assert len(roles) == 12 and all(isinstance(r.role, Role) for r in roles.values())
    assert {str(r.role) for r in roles.values()} == {"gold", "calibration", "human"}
    # pending first, then human: the latest line wins; by step, the role as that step left it
    human = [k for k, r in roles.items() if r.role is Role.HUMAN]
    assert len(human) == 3 and all(job.roles(step="calibration")[k].role is Role.PENDING for k in human)
    assert all(roles[k].step == "route" for k in human)
    assert len(job.role_history()) == 15

    gold = job.gold()
    assert set(gold) == {r["item_id"] for r in _lines("gold.jsonl")}
    assert {g.answer for g in gold.values()} <= {"ham", "spam"}
    assert all(roles[k].role is Role.GOLD for k in gold)

    tasks = job.pushed_tasks(1)
    assert len(tasks) == 9 and job.pushed_tasks(2) == {}
    assert {t.role for t in tasks.values()} == {"human", "gold", "overlap"}
    assert all(t.role in set(TaskRole) for t in tasks.values())
    assert all(t.overlap_applied == 2 for t in tasks.values() if t.role == "overlap")

    anns = job.annotations()
    assert len(anns) == 14 and all(isinstance(a, Annotation) for a in anns)
    assert {a.worker for a in anns} == {"amina@hub.example", "brian@hub.example"}
    assert sum(a.gold for a in anns) == 6 and all(a.counts for a in anns)
    assert all(a.item_id in tasks and a.ls_task_id == tasks[a.item_id].ls_task_id for a in anns)
    assert job.annotations(project=2) == []

    task = job.task_type()
    assert task.name == "classification"
    for a in anns:  # the stored answer is what the task type reads from Label Studio's result
        assert task.result_to_answer(a.result) == a.answer


def test_records_write_back_the_lines_they_read() -> None:
    for name, cls in (("annotations.jsonl", Annotation), ("tasks.jsonl", PushedTask),
                      ("routing.jsonl", RoleRecord)):
        for line in _lines(name):
            assert cls.from_dict(line).to_dict() == line, name
    for line in _lines("gold.jsonl"):  # written before gold lines had path, text and added_at
        assert GoldAnswer.from_dict(line).to_dict() == {"path": None, "text": None, **line}


def test_tables_of_annotations_agree(job: Job) -> None:
    table = annotations_table(job)
    frame = annotations_frame(job.root)
    assert len(table) == len(frame) == 14
    assert list(table["answer"]) == list(frame["label"]) and list(table["worker"]) == list(frame["worker"])
    assert int(table["gold"].sum()) == 6


def test_roles_and_their_validation() -> None:
    assert [str(r) for r in HUMAN_ROLES] == ["calibration", "gold", "human", "audit"]
    assert not Role.AUTO_ACCEPT.to_people and not Role.PENDING.to_people
    with pytest.raises(ValueError, match="valid: calibration, gold, human, audit, auto_accept, pending"):
        RoleRecord.from_dict({"item_id": "a", "role": "overlap"})


def test_writers_round_trip(tmp_path: Path) -> None:
    job = Job(tmp_path / "job")
    job.append_roles([RoleRecord("a", Role.AUDIT, "random audit", "audit", "t")])
    job.append_gold([GoldAnswer("a", "yes", "test"), GoldAnswer("b", "no", "test"), GoldAnswer("b", None, "test")])
    job.append_pushed_tasks([PushedTask("a", 1, 10, TaskRole.GOLD, overlap=3)])
    job.append_annotations([Annotation("a", 5, answer="yes", annotator_id=2),
                            Annotation("a", 6, answer="no", annotator_id=3, deleted=True)])
    assert job.roles()["a"].role is Role.AUDIT
    assert set(job.gold()) == {"a"} and job.gold(include_withdrawn=True)["b"].answer is None
    assert job.pushed_tasks()["a"].role == "gold" and job.pushed_tasks()["a"].overlap == 3
    assert [a.annotation_id for a in job.annotations()] == [5]
    assert len(job.annotations(include_deleted=True)) == 2
    assert json.loads((job.root / "routing.jsonl").read_text())["role"] == "audit"
