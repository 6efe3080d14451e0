"""The client report and job metrics, on a routed job with simulated annotators; rendered in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kdh_ai.job import Job
from kdh_ai.report import annotator_table, job_metrics, write_client_report
from kdh_ai.routing import current_roles, plan_calibration, route
from test_routing import annotate, build_job, people


@pytest.fixture()
def routed_job(tmp_path: Path) -> tuple[Job, dict[str, str]]:
    refs = build_job(tmp_path / "job", n=300, n_gold=20, slope=0.9)
    job = Job(tmp_path / "job")
    plan_calibration(job.root, size=0.4, seed=1)  # the finite-sample bound needs a larger slice
    roles = current_roles(job)
    cal = [k for k, r in roles.items() if r == "calibration"]
    annotate(job, {k: refs[k] for k in cal}, "reviewer@example.org")
    gold = [k for k, r in roles.items() if r == "gold"]
    people(job, refs, gold, wer=0.02, seed=3, start=10_000)
    people(job, refs, gold + cal[:10], wer=0.04, seed=4, start=20_000)  # a weaker trainee, with overlap
    route(job.root, target=0.08)
    return job, refs


def test_job_metrics_and_annotator_table(routed_job: tuple[Job, dict[str, str]]) -> None:
    job, _ = routed_job
    m = job_metrics(job)
    assert m["task"] == "transcription" and m["items"] == 300
    assert m["model_vs_client_reference"]["wer"] > 0.03  # the job's items carry the client's references
    assert m["model_vs_people"]["items"] >= 75
    assert m["delivered"]["error_upper"] <= 0.08 and 0.3 < m["human_share"] < 1
    assert m["agreement"]["clips_with_overlap"] == 10 and m["agreement"]["pairwise_wer"] > 0  # gold excluded
    assert "effort" in m["not_enough_data"]  # no audio durations in this synthetic job
    table = annotator_table(job).set_index("annotator")
    assert table.loc["simulated.annotator@example.org", "gold_answers"] == 40
    json.dumps(m)  # JSON-ready


def test_metrics_say_what_is_missing_on_a_fresh_job(tmp_path: Path) -> None:
    build_job(tmp_path / "job", n=20, n_gold=0)
    m = job_metrics(Job(tmp_path / "job"))
    assert m["annotators"] == [] and m["agreement"] is None
    for key in ("model_vs_people", "delivered", "annotators", "agreement"):
        assert key in m["not_enough_data"], key


def test_client_report_is_self_contained_and_renders(routed_job: tuple[Job, dict[str, str]], tmp_path: Path) -> None:
    job, _ = routed_job
    out = write_client_report(job.root, tmp_path / "report" / "report.html", client="Example Client")
    page = out.read_text()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") == 3
    assert "Example Client" in page and "simulated.annotator@example.org" not in page  # pseudonyms only
    shown = f"{100 * metrics['delivered']['error_upper']:.1f}%"
    assert shown in page and f"{100 * metrics['human_share']:.0f}%" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is needed for this test: `apt-get install chromium` (make test installs it)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chrome'}", f"--screenshot={shot}", "--window-size=1100,1600",
                    out.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'chrome2'}", "--dump-dom", out.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert shown in dom and "Quality report" in dom
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.std() > 10, "the screenshot is blank"
    assert (img < 128).mean() > 0.005, "no dark pixels: nothing was drawn"


def test_trainee_feedback_page(routed_job: tuple[Job, dict[str, str]], tmp_path: Path) -> None:
    from kdh_ai.report import FeedbackError, write_feedback

    job, _ = routed_job
    out = write_feedback(job.root, "simulated.annotator@example.org", tmp_path / "fb.html")
    page = out.read_text()
    assert "on 40 gold items" in page and "data:image/png;base64," in page
    assert "Your most frequent errors" in page and "substitution" in page
    assert "reviewer@example.org" not in page  # only their own work
    with pytest.raises(FeedbackError, match="unknown annotator 'nobody@example.org'.*known: reviewer@example.org"):
        write_feedback(job.root, "nobody@example.org", tmp_path / "x.html")
    with pytest.raises(FeedbackError, match="no gold item yet"):
        write_feedback(job.root, "reviewer@example.org", tmp_path / "y.html")
