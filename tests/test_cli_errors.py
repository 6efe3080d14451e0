"""One error model: every exit code of ``kdh`` from a real command, and a bug exits 5 (not 2) with a short note.

Exit codes (README, "Exit codes"): 0 ok; 1 some item failed; 2 kdh refused (bad usage, option, input); 3 the job
is in use; 4 Label Studio down or the token refused; 5 a bug (an exception kdh did not raise on purpose).
"""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdh_ai import errors
from kdh_ai.cli import app
from kdh_ai.cli._common import exit_code_for
from kdh_ai.job import Job

SMS_LABELS = Path(__file__).resolve().parent / "data" / "text" / "sms_spam" / "labels.yaml"
FAKE_TOKEN = "Token 9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def kdh(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env=env)
    return res.exit_code, " ".join(res.output.split())  # rich's line wrapping undone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _texts(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "text"])
        w.writerows(rows)
    return path


def test_every_kdh_error_is_a_kdh_error_and_keeps_its_old_base() -> None:
    from kdh_ai.audio import AudioError
    from kdh_ai.config import ConfigError
    from kdh_ai.items import InputError, NotRegularFileError
    from kdh_ai.labels import LabelsError
    from kdh_ai.labelstudio.client import LabelStudioAuthError, LabelStudioError, LabelStudioUnavailable
    from kdh_ai.labelstudio.postgres import PostgresError
    from kdh_ai.labelstudio.server import NoServerError, PortBusyError, ServerError
    from kdh_ai.ray_runner import ClusterError
    from kdh_ai.registry import ModelNotAvailableError
    from kdh_ai.report import FeedbackError, ReportError
    from kdh_ai.report.trainee import TraineeError
    from kdh_ai.routing import RoutingError

    value_errors = [ConfigError, InputError, LabelsError, RoutingError, ReportError, FeedbackError, TraineeError]
    runtime_errors = [errors.JobLockedError, ModelNotAvailableError, ClusterError, LabelStudioError,
                      LabelStudioUnavailable, LabelStudioAuthError, PostgresError, ServerError, PortBusyError,
                      NoServerError]
    for cls in value_errors + runtime_errors + [AudioError, NotRegularFileError]:
        assert issubclass(cls, errors.KdhError), cls
    assert all(issubclass(c, ValueError) for c in value_errors)
    assert all(issubclass(c, RuntimeError) for c in runtime_errors)
    assert issubclass(NotRegularFileError, OSError)
    assert issubclass(errors.InputFileNotFoundError, FileNotFoundError)
    # the old import locations are the same classes
    from kdh_ai.job import JobLockedError

    assert JobLockedError is errors.JobLockedError and LabelStudioError is errors.LabelStudioError
    codes = {cls: exit_code_for(cls("x")) for cls in value_errors + [ModelNotAvailableError, ClusterError]}
    assert set(codes.values()) == {2}
    assert exit_code_for(errors.JobLockedError("x")) == 3
    assert exit_code_for(NoServerError("x")) == exit_code_for(LabelStudioAuthError("x")) == 4
    assert exit_code_for(PortBusyError("x")) == 2
    assert exit_code_for(ValueError("x")) == exit_code_for(KeyError("x")) == 5
    from kdh_ai.quality import InsufficientDataError  # kdh_ai.quality stands alone: a ValueError, mapped as kdh's

    assert not issubclass(InsufficientDataError, errors.KdhError) and exit_code_for(InsufficientDataError("x")) == 2


def test_exit_0_and_2_from_real_commands(tmp_path: Path) -> None:
    code, out = kdh("models", "list")
    assert code == 0 and "Any local CTranslate2 Whisper directory also works" in out
    code, out = kdh("select", str(tmp_path / "nowhere"))  # the library's InvalidInputError
    assert code == 2 and "not a job directory" in out and "this is a bug" not in out
    code, out = kdh("deliver", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d"))
    assert code == 2 and "not a job directory" in out
    code, out = kdh("select", str(tmp_path), "--n", "0")  # click's own usage error
    assert code == 2 and "this is a bug" not in out


@pytest.mark.slow
def test_exit_1_when_an_item_fails_and_3_when_the_job_is_in_use(tmp_path: Path) -> None:
    texts = _texts(tmp_path / "texts.csv", [("a", "WINNER! Claim your prize now, call 09061701461"),
                                            ("b", "Are we still meeting for lunch today?"), ("empty", "")])
    code, out = kdh("prelabel", "classify", "-i", str(texts), "-l", str(SMS_LABELS), "-o", str(tmp_path / "job"),
                    "--no-progress")
    assert code == 1 and "empty" in out  # the job ran; the empty text is listed as failed
    with Job(tmp_path / "job"):  # another run holds the job
        code, out = kdh("prelabel", "classify", "-i", str(texts), "-l", str(SMS_LABELS), "-o",
                        str(tmp_path / "job"), "--no-progress")
    assert code == 3 and "in use by another kdh run" in out


def test_exit_4_when_label_studio_does_not_answer(tmp_path: Path) -> None:
    env = {"KDH_LS_URL": f"http://127.0.0.1:{_free_port()}", "KDH_LS_TOKEN": FAKE_TOKEN.split()[1],
           "KDH_HUB_DIR": str(tmp_path / "hub")}
    code, out = kdh("qualify", "amina@hub.example", "--task", "transcription", env=env)
    assert code == 4 and "did not" in out and "kdh labelstudio status" in out
    assert FAKE_TOKEN.split()[1] not in out


@pytest.mark.parametrize("exc", [ZeroDivisionError("division by zero"), ValueError("a bare ValueError"),
                                 KeyError("item_id")])
def test_an_unexpected_exception_is_a_bug_exit_5(exc: Exception, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain ValueError from inside the library is a bug now (it used to exit 2, as if the user erred)."""
    def boom(*args: object, **kwargs: object) -> None:
        raise type(exc)(f"{exc.args[0]} with {FAKE_TOKEN}")

    monkeypatch.setattr("kdh_ai.routing.select.choose_next_round", boom)
    code, out = kdh("select", str(tmp_path))
    assert code == 5, out
    assert "this is a bug in kdh" in out and type(exc).__name__ in out and "kdh -v" in out
    assert "issue tracker" in out and "Traceback" not in out
    assert FAKE_TOKEN.split()[1] not in out  # the exception's text is not shown: it may hold a secret

    code, out = kdh("-v", "select", str(tmp_path), env={"KDH_LS_TOKEN": "s3cret-value-of-the-token"})
    assert code == 5 and "Traceback" in out and "boom" in out  # -v shows where it happened
    assert FAKE_TOKEN.split()[1] not in out  # ... with token values hidden


def test_a_full_disk_is_not_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "job" / "routing.jsonl"))

    monkeypatch.setattr("kdh_ai.routing.select.choose_next_round", full)
    code, out = kdh("select", str(tmp_path))
    assert code == 2 and "no space left" in out and "this is a bug" not in out
