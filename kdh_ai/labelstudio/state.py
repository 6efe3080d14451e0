"""The job's Label Studio state, ``labelstudio.json``: which server and project the job lives in.

Written by ``kdh push`` (the project, its data key, audio mode, guidelines, last push) and ``kdh pull`` (last
pull); read by pull, status and the client report.
"""

from __future__ import annotations

import json
from typing import Any

from kdh_ai.job import Job, write_json_atomic
from kdh_ai.records import utc_now

__all__ = ["STATE_FILE", "read_ls_state", "write_ls_state"]

STATE_FILE = "labelstudio.json"


def read_ls_state(job: Job) -> dict[str, Any]:
    """The job's ``labelstudio.json`` (``{}`` before the first push)."""
    path = job.root / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def write_ls_state(job: Job, state: dict[str, Any]) -> None:
    """Write ``labelstudio.json`` atomically, stamping ``updated_at``."""
    state["updated_at"] = utc_now()
    write_json_atomic(job.root / STATE_FILE, state)
