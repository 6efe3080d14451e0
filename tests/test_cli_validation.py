"""The ``kdh`` command refuses what makes no sense, with a message that says what to do (issue 14).

Real models and real files: an English-only Whisper asked for Swahili, YAML label names that YAML reads as
booleans, numbers or null, training labels that match nothing, the classify seed, the summary's wall time and
``kdh --help``'s order.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdh_ai.cli import WORKFLOW, app
from kdh_ai.job import Job
from kdh_ai.labels import LabelsError, load_labels
from kdh_ai.samples import ljspeech_manifest

SMS = Path(__file__).parent / "data" / "text" / "sms_spam"


def kdh(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def texts(path: Path, n: int = 12) -> Path:
    with open(SMS / "texts.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["item_id", "text"])
        w.writeheader()
        w.writerows({"item_id": r["item_id"], "text": r["text"]} for r in rows)
    return path


def test_english_only_model_refuses_another_language(tmp_path: Path) -> None:
    code, out = kdh("prelabel", "transcribe", "-i", str(ljspeech_manifest()), "-o", str(tmp_path / "job"),
                    "--language", "sw")
    assert code == 2, out
    flat = " ".join(out.split())
    assert "whisper-tiny.en is English-only" in flat and "--model whisper-base" in flat
    assert not (tmp_path / "job").exists()  # refused up front, before any job is made
    # A local copy of an English-only model is recognised by its vocabulary, not its name.
    from kdh_ai.registry import resolve_model

    local = resolve_model("whisper-tiny.en", verify=False).path
    code, out = kdh("prelabel", "transcribe", "-i", str(ljspeech_manifest()), "-o", str(tmp_path / "job2"),
                    "--model", str(local), "--language", "sw")
    assert code == 2 and "English-only" in out, out


@pytest.mark.parametrize(("yaml_text", "said"), [
    ("- yes\n- no\n", "the boolean true"),
    ("labels:\n  - name: spam\n  - name: 3\n", "the number 3"),
    ("- ham\n- null\n", "null"),
])
def test_yaml_label_names_that_are_not_text_are_explained(tmp_path: Path, yaml_text: str, said: str) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(LabelsError, match=f"is {said}.*Put the name in quotes"):
        load_labels(path)
    code, out = kdh("prelabel", "classify", "-i", str(texts(tmp_path / "t.csv")), "-l", str(path),
                    "-o", str(tmp_path / "job"))
    assert code == 2 and "quotes" in " ".join(out.split()), out
    path.write_text(yaml_text.replace("yes", '"yes"').replace("no", '"no"').replace("3", '"3"')
                    .replace("null", '"null"'), encoding="utf-8")
    assert len(load_labels(path).names) == 2  # quoted, they are names


def test_train_labels_with_nothing_usable_is_refused(tmp_path: Path) -> None:
    manifest = texts(tmp_path / "t.csv")
    bad = tmp_path / "train.csv"
    bad.write_text("item_id,label\nnot-in-this-job,spam\nnor-this,ham\n", encoding="utf-8")
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS / "labels.yaml"), "-o",
                    str(tmp_path / "job"), "--train-labels", str(bad), "--no-progress")
    flat = " ".join(out.split())
    assert code == 2 and "no usable human label" in flat and "2 label(s) read" in flat, out
    assert not Job(tmp_path / "job").current_predictions()  # no silent zero-shot run
    empty = tmp_path / "empty.csv"
    empty.write_text("item_id,label\n", encoding="utf-8")
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS / "labels.yaml"), "-o",
                    str(tmp_path / "job"), "--train-labels", str(empty), "--no-progress")
    assert code == 2 and "holds no item_id,label row" in " ".join(out.split()), out


def test_classify_seed_and_wall_time_with_model_loading(tmp_path: Path) -> None:
    manifest = texts(tmp_path / "t.csv", n=40)
    job_dir = tmp_path / "job"
    with open(SMS / "texts.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:40]
    train = tmp_path / "train.csv"
    with open(train, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "label"])
        w.writerows([r["item_id"], r["reference"]] for r in rows[:30])
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS / "labels.yaml"), "-o",
                    str(job_dir), "--train-labels", str(train), "--seed", "7", "--no-progress")
    assert code == 0, out
    assert json.loads((job_dir / "job.json").read_text())["config"]["seed"] == 7
    flat = " ".join(re.sub(r"[│┌┐└┘─┬┴┼├┤]", " ", out).split())  # the summary table, its borders out
    m = re.search(r"wall time (\d+\.\d) s \(loading the model and training the head (\d+\.\d) s, pre-labeling "
                  r"(\d+\.\d) s\)", flat)
    assert m, out
    total, setup, work = map(float, m.groups())
    assert setup > 0 and total >= setup + work - 0.2  # the whole run, model loading and training included
    runs = json.loads((job_dir / "job.json").read_text())["runs"]
    assert total > runs[-1]["wall_s"]
    code, out = kdh("prelabel", "classify", "-i", str(manifest), "-l", str(SMS / "labels.yaml"), "-o",
                    str(job_dir), "--seed", "x")
    assert code == 2 and "seed" in out


def test_help_lists_commands_in_workflow_order() -> None:
    code, out = kdh("--help")
    assert code == 0
    listed = [m.group(1) for m in re.finditer(r"^│ (\w[\w-]*) ", out, re.M)]
    listed = [n for n in listed if n in WORKFLOW]
    assert listed == list(WORKFLOW), listed
    assert listed.index("prelabel") < listed.index("route") < listed.index("push") < listed.index("pull") \
        < listed.index("report")
