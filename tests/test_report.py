"""The client report and job metrics, on a routed job with simulated annotators; rendered in Chromium."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kdh_ai.cli import app
from kdh_ai.job import Job
from kdh_ai.report import annotator_table, job_metrics, report_paths, write_client_report
from kdh_ai.report.client import find_chromium
from kdh_ai.routing import check_audit, current_roles, plan_calibration, route
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
    assert m["draft"]["is_draft"] and m["provenance"]["model_not_routed"] == 20 and m["time_saved"] is None


def _chromium() -> str:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail("Chromium is needed for this test: `apt-get install chromium` (make test installs it)")
    return chromium


_CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]

# Measures the laid-out page: the document's width, and every element whose box or content runs past the
# viewport or its own box (text spilling out of a table cell, a plot wider than the page).
_OVERFLOW_PROBE = """<script>
window.addEventListener('load', () => {
  const W = document.documentElement.clientWidth, bad = [];
  for (const el of document.querySelectorAll('main *')) {
    const r = el.getBoundingClientRect();
    const spills = el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1;
    if (r.right > W + 1 || spills) bad.push(el.tagName + '.' + el.className + ' right=' + Math.round(r.right));
  }
  const out = document.createElement('pre');
  out.id = 'overflow-probe';
  out.textContent = JSON.stringify({width: W, scroll: document.documentElement.scrollWidth, bad: bad.slice(0, 20)});
  document.body.appendChild(out);
});
</script>"""


def render(page: Path, tmp_path: Path, width: int = 1280) -> tuple[str, dict, np.ndarray]:
    """The page as headless Chromium lays it out at ``width`` px: its DOM text, the overflow probe's findings
    and a screenshot (grey levels)."""
    from PIL import Image

    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _OVERFLOW_PROBE + "</body>"), encoding="utf-8")
    chromium = _chromium()
    dom = subprocess.run([chromium, *_CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome-dom'}",
                          f"--window-size={width},1000", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    found = json.loads(html.unescape(re.search(r'<pre id="overflow-probe">(.*?)</pre>', dom, re.S).group(1)))
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run([chromium, *_CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome-shot'}", f"--screenshot={shot}",
                    f"--window-size={width},2400", page.as_uri()], check=True, capture_output=True, timeout=120)
    return dom, found, np.asarray(Image.open(shot).convert("L"), dtype=float)


def _text(page: str) -> str:
    """The visible text of a page (tags out, entities decoded, spaces collapsed)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", page, flags=re.S))))


def test_client_report_files_and_plot_data_equal_the_text(routed_job: tuple[Job, dict[str, str]],
                                                          tmp_path: Path) -> None:
    job, _ = routed_job
    out = write_client_report(job.root, tmp_path / "report" / "report.html", client="Example Client")
    page = out.read_text()
    paths = report_paths(out)
    metrics = json.loads(paths["metrics"].read_text())
    plots = json.loads(paths["plots"].read_text())
    assert not (tmp_path / "report" / "metrics.json").exists()  # each report has its own metrics file
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") == 2
    assert "Example Client" in page and "simulated.annotator@example.org" not in page  # pseudonyms only
    text = _text(page)
    verdict = _text(re.search(r'<div class="verdict.*?</div></div>', page, re.S).group(0))
    d = metrics["delivered"]
    # The plotted figures are the text's figures: the chosen point, the target, the human share.
    chosen = plots["human_share_vs_quality"]["chosen"]
    assert chosen["human_share"] == metrics["human_share"] and chosen["bound"] == d["error_upper"]
    assert chosen["estimate"] == d["estimated_error"] and plots["human_share_vs_quality"]["target"] == d["target"]
    assert f"at most {100 * chosen['bound']:.1f}%" in verdict and f"estimated at {100 * chosen['estimate']:.1f}%" in verdict
    assert f"agreed target of {100 * d['target']:.1f}%" in verdict and "meets" in verdict
    assert f"{100 * chosen['human_share']:.0f}% of the batch touched by people" in text
    # ... and the curve passes through the chosen point: one definition of the human share (audit included).
    curve = plots["human_share_vs_quality"]
    at = int(np.argmin(np.abs(np.asarray(curve["x_human_share"]) - chosen["human_share"])))
    assert abs(curve["x_human_share"][at] - chosen["human_share"]) < 1e-6
    assert abs(curve["bound"][at] - chosen["bound"]) < 1e-5 and abs(curve["estimate"][at] - chosen["estimate"]) < 1e-5
    # Scatter data: one point per clip people checked, as many as the text says.
    conf = plots["confidence_vs_error"]
    assert len(conf["items"]) == metrics["model_vs_people"]["items"] == len(conf["wer"])
    assert f"people checked {len(conf['items'])} clips" in text.replace("(", "").replace(")", "") or \
        f"({len(conf['items'])} clips people checked)" in text
    # Provenance adds up to the batch; annotators carry Wilson intervals; the footer names this report's files.
    assert sum(metrics["provenance"].values()) == metrics["items"] == 300
    b = next(a for a in metrics["annotators"] if a["annotator"] == "simulated.annotator@example.org")
    assert b["gold_error_low"] < b["gold_error"] < b["gold_error_high"]
    assert f"{100 * b['gold_error']:.1f}% ({100 * b['gold_error_low']:.1f}% to {100 * b['gold_error_high']:.1f}%)" in text
    assert "report.metrics.json" in text and "report.plots.json" in text and "kdh_ai 0.1.0" in text
    assert "config" in text and metrics["config_hash"] in text
    # The small-sample warning follows routing's evidence plan (shown exactly when the plan says the slice or
    # the gold is short of what the finite-sample bound needs, with the sizes it needs); no lead commands.
    ev = metrics["evidence"]
    assert ev["source"] == "routing" and ('id="small-sample"' in page) == ev["small"]
    if ev["small"]:
        assert f"about {ev['calibration_needed']} are needed" in text
    assert "kdh " not in text and "Next:" not in text and "push again" not in text


def test_draft_mark_verdict_and_layout_in_chromium(tmp_path: Path) -> None:
    """Before annotation the report is a DRAFT with no promise; after the whole loop (calibration, routing,
    people on the routed items, audit checked, re-routed items answered) the DRAFT mark is gone. At 1280 px,
    nothing runs past the page or out of its box."""
    refs = build_job(tmp_path / "job", n=200, n_gold=12, slope=0.9)
    job = Job(tmp_path / "job")
    plan_calibration(job.root, size=0.25, seed=1)
    before = write_client_report(job.root, tmp_path / "before.html")
    dom, found, img = render(before, tmp_path)
    assert "DRAFT" in dom and 'id="draft"' in dom and "has not been routed" in dom
    assert "No quality level is promised" in dom
    assert "kdh " not in _text(before.read_text()) and "Next:" not in dom  # lead instructions stay out
    assert 'id="small-sample"' not in dom and "auto-accepted" not in _text(before.read_text())  # nothing promised
    assert found["scroll"] <= found["width"] and not found["bad"], found
    assert img.std() > 10 and (img < 128).mean() > 0.003, "nothing drawn"
    assert json.loads(report_paths(before)["metrics"].read_text())["draft"]["is_draft"]

    roles = current_roles(job)
    cal = [k for k, r in roles.items() if r == "calibration"]
    gold = [k for k, r in roles.items() if r == "gold"]
    annotate(job, {k: refs[k] for k in cal}, "reviewer@example.org")
    people(job, refs, gold, wer=0.02, seed=3, start=10_000)
    route(job.root, target=0.05, audit_rate=0.1)
    mid = write_client_report(job.root, tmp_path / "mid.html")
    assert 'id="draft"' in mid.read_text() and "have no answer yet" in mid.read_text()
    for step in range(3):  # people answer what is routed to them; the audit is checked; re-routed items answered
        waiting = [k for k, r in current_roles(job).items()
                   if r in ("human", "audit") and k not in {a["item_id"] for a in job.log("annotations")}]
        people(job, refs, waiting, wer=0.02, seed=10 + step, start=100_000 * (step + 1))
        if step == 0:
            check_audit(job.root)
    after = write_client_report(job.root, tmp_path / "after.html")
    metrics = json.loads(report_paths(after)["metrics"].read_text())
    assert not metrics["draft"]["is_draft"], metrics["draft"]
    dom, found, _ = render(after, tmp_path)
    assert "DRAFT" not in dom
    verdict = _text(re.search(r'<div class="verdict.*?</div></div>', dom, re.S).group(0))
    assert f"at most {100 * metrics['delivered']['error_upper']:.1f}%" in verdict and "agreed target of 5.0%" in verdict
    assert "How it is guaranteed" in verdict and "audit" in verdict
    assert found["scroll"] <= found["width"] and not found["bad"], found
    # 12 gold answers: the small-sample warning says so, with the sizes.
    assert 'id="small-sample"' in after.read_text() and "12 gold answers" in _text(after.read_text())


def test_classification_report_shows_reliability_and_confusion(tmp_path: Path) -> None:
    """A routed classification job: reliability diagram and confusion matrix instead of a 0/1 scatter;
    simulated accounts are named as such."""
    from kdh_ai.records import Prediction

    rng = np.random.default_rng(0)
    job = Job(tmp_path / "cjob")
    truth, preds = {}, []
    for i in range(200):
        k = f"t{i:03d}"
        truth[k] = "spam" if rng.random() < 0.3 else "ham"
        conf = float(rng.uniform(0.5, 1.0))
        right = rng.random() < conf
        label = truth[k] if right else ("ham" if truth[k] == "spam" else "spam")
        preds.append(Prediction(item_id=k, task="classification", text=label, confidence=conf, status="ok",
                                model={"name": "minilm", "version": "1"}, config_hash="c", source=None,
                                sha256="x").to_dict())
    job.predictions.append(preds)
    job.items.append({"item_id": k, "text": f"message {k}"} for k in truth)
    job.log("gold").append({"item_id": k, "answer": truth[k], "source": "test"} for k in sorted(truth)[:40])
    job.update_manifest(task="classification", config_hash="c")
    plan_calibration(job.root, size=60, seed=0)

    def answer(ids: list[str], start: int) -> None:
        job.log("annotations").append(
            {"item_id": k, "annotation_id": start + i, "annotator_email": "sim@kdh.demo", "annotator_simulated": True,
             "answer": truth[k], "skipped": False, "deleted": False, "gold": False, "lead_time_s": 6.0,
             "prelabeled": i % 3 != 0, "created_at": f"2026-11-28T1{i % 10}:00:00"} for i, k in enumerate(ids))

    roles = current_roles(job)
    answer([k for k, r in roles.items() if r in ("calibration", "gold")], 0)
    route(job.root, target=0.10)
    answer([k for k, r in current_roles(job).items() if r in ("human", "audit")], 10_000)
    out = write_client_report(job.root, tmp_path / "sms.html")
    page, metrics = out.read_text(), json.loads(report_paths(out)["metrics"].read_text())
    plots = json.loads(report_paths(out)["plots"].read_text())
    text = _text(page)
    assert page.count("data:image/png;base64,") == 2 and "reliability" in plots
    assert "Confusion matrix" in page and "model: spam" in page and "Per class" in page
    errors = metrics["errors"]
    assert sum(map(sum, errors["confusion"])) == errors["items"] == sum(b["items"] for b in plots["reliability"]["bins"])
    assert metrics["simulated_annotators"] == ["sim@kdh.demo"] and "Annotator A (SIMULATED)" in text
    assert "SIMULATED" in text and 'id="simulated"' in page
    verdict = _text(re.search(r'<div class="verdict.*?</div></div>', page, re.S).group(0))
    d = metrics["delivered"]
    assert f"at least {100 * (1 - d['error_upper']):.1f}%" in verdict and "agreed target of 90.0%" in verdict
    assert plots["human_share_vs_quality"]["chosen"]["bound"] == pytest.approx(1 - d["error_upper"])
    ts = metrics["time_saved"]  # every annotation took 6 s, with or without a pre-label
    assert ts["per"] == "item" and ts["seconds_with"] == ts["seconds_without"] == 6.0 and ts["hours_saved"] == 0


def test_report_pdf_and_refusals(routed_job: tuple[Job, dict[str, str]], tmp_path: Path) -> None:
    job, _ = routed_job
    res = CliRunner().invoke(app, ["report", str(job.root), "--out", str(tmp_path / "r.html"), "--pdf"])
    assert res.exit_code == 0, res.output
    pdf = tmp_path / "r.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
    assert (tmp_path / "r.metrics.json").exists() and (tmp_path / "r.plots.json").exists()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "not a job directory" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["report", str(job.root), "--out", str(tmp_path / "x.pdf")])
    assert res.exit_code == 2 and "give an .html file name" in " ".join(res.output.split())


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


@pytest.mark.labelstudio
def test_simulated_accounts_and_guideline_reach_the_report(labelstudio_server, tmp_path: Path) -> None:
    """A simulated annotator account (created with ``simulated=True``) answers in the real Label Studio;
    ``kdh pull`` records it, and the report and metrics say so. The guideline's hash reaches the report."""
    import hashlib

    from kdh_ai.labelstudio.client import Connection, LabelStudioClient
    from kdh_ai.labelstudio.pull import pull
    from kdh_ai.labelstudio.push import PushOptions, push, read_ls_state
    from kdh_ai.labelstudio.server import add_annotator, login_token
    from kdh_ai.records import Prediction
    from kdh_ai.tasks.classification import ClassificationTask

    job = Job(tmp_path / "job")
    truth = {f"s{i:02d}": "spam" if i % 3 == 0 else "ham" for i in range(12)}
    job.predictions.append(Prediction(item_id=k, task="classification", text="ham", confidence=0.6, status="ok",
                                      model={"name": "m", "version": "1"}, config_hash="c", source=None,
                                      sha256="x").to_dict() for k in truth)
    job.items.append({"item_id": k, "text": f"message number {k}"} for k in truth)
    job.update_manifest(task="classification", config_hash="c")
    plan_calibration(job.root, size=6, seed=0)
    guide = tmp_path / "guide.md"
    guide.write_text("# Spam or ham\n\nSpam is unsolicited advertising.\n", encoding="utf-8")
    conn = labelstudio_server.connection
    push(job.root, PushOptions(project="report-simulated", labels=("ham", "spam"), gold_rate=0.0,
                               overlap_fraction=0.0, guidelines=guide), connection=conn)
    email = f"simulated.{tmp_path.name[-12:].lower().replace('_', '')}@kdh.test"
    add_annotator(conn, email, password="simulated-2026", simulated=True)
    client = LabelStudioClient(Connection(url=conn.url, token=login_token(conn.url, email, "simulated-2026")))
    pid = int(read_ls_state(job)["project_id"])
    for t in client.iter_tasks(pid):
        client.request("POST", f"api/tasks/{t['id']}/annotations/", what="annotate", json_body={
            "result": ClassificationTask().answer_to_result(truth[t["data"]["item_id"]]), "lead_time": 3.0})
    pull(job.root, connection=conn)
    recs = list(job.log("annotations"))
    assert recs and all(r["annotator_simulated"] and r["annotator_email"] == email for r in recs)
    out = write_client_report(job.root, tmp_path / "report.html")
    text, metrics = _text(out.read_text()), json.loads(report_paths(out)["metrics"].read_text())
    assert metrics["simulated_annotators"] == [email] and "Annotator A (SIMULATED)" in text and email not in text
    assert metrics["guidelines"]["sha256"] == hashlib.sha256(guide.read_bytes()).hexdigest()
    assert f"worked to guide.md (SHA-256 {metrics['guidelines']['sha256'][:16]}" in text


def test_small_sample_warning_reads_routings_evidence_plan(routed_job: tuple[Job, dict[str, str]],
                                                           tmp_path: Path) -> None:
    """When routing records its evidence plan (``job.json["routing"]["evidence"]``), the warning uses its sizes,
    not the rule of thumb."""
    job, _ = routed_job
    routing = job.read_manifest()["routing"]
    routing["evidence"] = {"target": 0.045, "calibration_needed": 120, "calibration_have": 70,
                           "gold_needed": {"0.01": 20, "0.02": 45, "0.05": None}, "gold_have": 40}
    job.update_manifest(routing=routing)
    ev = job_metrics(job)["evidence"]
    # the people err about 3% (measured on gold): the plan's 5% row applies, where no number of gold answers
    # is enough, so the gold is short
    assert ev["people_rate_used"] == 0.05
    assert ev["source"] == "routing" and ev["small_calibration"] and ev["small_gold"]
    text = _text(write_client_report(job.root, tmp_path / "r.html").read_text())
    assert "70 answered calibration clips (about 120 are needed" in text and "40 gold answers" in text
    assert "45 if people err 2% of the time" in text and "no number is enough if people err 5%" in text
    assert "rule of thumb" not in text
    routing["evidence"].update(calibration_have=130, calibration_needed=120, gold_have=50,
                               gold_needed={"0.01": 20, "0.02": 30, "0.05": 45})
    job.update_manifest(routing=routing)
    assert not job_metrics(job)["evidence"]["small"]
    assert 'id="small-sample"' not in write_client_report(job.root, tmp_path / "r2.html").read_text()


# ---- long recordings: the segment view -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_job(tmp_path_factory: pytest.TempPathFactory):
    from long_job import build_long_job

    return build_long_job(tmp_path_factory.mktemp("long-report"), minutes=1.5, seed=5)


@pytest.mark.slow
def test_segment_view_of_a_long_recording(long_job, tmp_path: Path) -> None:
    """A real transcription of a long recording, some segments checked by (simulated) people: the report's
    segment view says how much of the file people checked, and the timeline plot draws the same segments."""
    import base64
    import io

    from PIL import Image

    from kdh_ai import quality
    from kdh_ai.deliver import delivered_records

    job = long_job.job
    out = write_client_report(job.root, tmp_path / "long.html")
    page = out.read_text()
    metrics = json.loads(report_paths(out)["metrics"].read_text())
    plots = json.loads(report_paths(out)["plots"].read_text())
    view = metrics["segment_view"]
    f = view["files"][0]
    answered = [s for s in long_job.segments if s.index in long_job.edited or s.index in long_job.confirmed]
    assert f["item_id"] == "interview" and f["segments"] == len(long_job.segments)
    assert f["checked_segments"] == len(answered) and f["edited_segments"] == len(long_job.edited)
    assert f["checked_s"] == pytest.approx(sum(s.end - s.start for s in answered), abs=1e-3)
    assert f["human_s"] == pytest.approx(2.5 * sum(s.end - s.start for s in answered), abs=1e-3)  # lead times
    assert f["human_s_per_audio_min"] == pytest.approx(f["human_s"] / (long_job.rec.duration_s / 60), rel=1e-3)
    # delivered WER against the recording's exact reference, computed here independently
    delivered = metrics["delivered_vs_client_reference"]
    rows = {r["item_id"]: r for r in delivered_records(job)}
    assert f["delivered_wer"] == pytest.approx(quality.wer(long_job.rec.reference, rows["interview"]["answer"]))
    assert delivered["wer"] == pytest.approx(f["delivered_wer"]) and f["model_wer"] < 0.2
    assert f["model_wer_on_checked"] > 0  # the people's corrections are errors of the model
    # the plot draws the same segments, coloured by what happened to them; its share is the text's share
    bars = plots["segment_timeline"]["files"][0]["bars"]
    checked = sum(b - a for a, b, cat, _ in bars if cat.startswith("checked"))
    assert checked == pytest.approx(f["checked_s"], abs=1e-3)
    assert sum(cat == "with people, not answered yet" for *_, cat, _ in bars) == len(long_job.waiting)
    assert sum(edited for *_, edited in bars) == len(long_job.edited)
    text = _text(page)
    assert f"People checked {f['checked_segments']} of the {f['segments']} segments" in text
    assert f"{100 * f['checked_share']:.1f}% of {long_job.rec.duration_s / 60:.1f} minutes of audio" in text
    assert f"{f['checked_segments']} of {f['segments']}" in text and f"{100 * f['delivered_wer']:.1f}%" in text
    assert f"{f['human_s_per_audio_min']:.0f} s" in text and "clips and segments" in text
    assert f"What you receive (after people's corrections) against your reference answers (1 clip): WER " \
           f"{100 * delivered['wer']:.1f}%" in text
    # the timeline image has the checked colour (orange) and the auto-accepted grey
    src = re.search(r'alt="timeline of each long recording[^"]*" src="data:image/png;base64,([^"]+)"', page).group(1)
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB"), dtype=int)
    orange = ((abs(img[..., 0] - 255) < 20) & (abs(img[..., 1] - 127) < 25) & (img[..., 2] < 40)).mean()
    grey = ((abs(img[..., 0] - 208) < 4) & (abs(img[..., 1] - 208) < 4) & (abs(img[..., 2] - 208) < 4)).mean()
    assert orange > 0.005 and grey > 0.01, (orange, grey)
    dom, found, _ = render(out, tmp_path)
    assert found["scroll"] <= found["width"] and not found["bad"], found


@pytest.mark.slow
def test_trainee_feedback_on_a_segment_of_a_long_recording(long_job, tmp_path: Path) -> None:
    """Gold on a work segment: the feedback page finds the trainee's error in that segment, times it in the
    recording (from the model's word times) and plays the audio around it."""
    import shutil

    from kdh_ai.records import Annotation, GoldAnswer
    from kdh_ai.report import write_feedback

    job = Job(shutil.copytree(long_job.job.root, tmp_path / "job"))
    seg = next(s for s in long_job.segments if s.index in long_job.confirmed)
    words = seg.text.split()
    job.append_gold([GoldAnswer(item_id="interview", segment=seg.index, answer=seg.text, source="test")])
    typed = " ".join(words[:3] + ["wrongword"] + words[4:])  # the trainee got the fourth word wrong
    job.append_annotations([Annotation(item_id="interview", segment=seg.index, annotation_id=9000,
                                       annotator_email="trainee@hub.example", answer=typed, lead_time_s=60.0,
                                       created_at="2026-11-29T11:00:00+00:00")])
    page = write_feedback(job.root, "trainee@hub.example", tmp_path / "fb.html").read_text()
    at = float(re.search(r"<td>([0-9.]+) s<br><span class=diff>", page).group(1))
    assert abs(at - seg.words[3]["start"]) < 0.15 and seg.start <= at <= seg.end
    assert f"interview#{seg.index:04d}" in page and "wrongword" in page and "data:audio/wav;base64," in page


def test_segment_view_with_many_recordings_plots_the_longest_and_lists_all() -> None:
    """30 long recordings: the timeline draws the 25 longest (and says so), the table lists all 30."""
    import matplotlib

    from kdh_ai.report.client import _segment_section, _timeline_plot, segment_category

    matplotlib.use("Agg")
    files = []
    for i in range(30):
        dur = 60.0 + 10 * i
        timeline = [{"segment": k, "start": dur * k / 4, "end": dur * (k + 1) / 4, "role": "human" if k == 1
                     else "auto_accept", "checked": k == 1, "edited": False, "provenance": "human" if k == 1
                     else "model", "model_wer": None} for k in range(4)]
        files.append({"item_id": f"rec{i:02d}", "duration_s": dur, "segments": 4, "checked_segments": 1,
                      "checked_s": dur / 4, "checked_share": 0.25, "human_s": dur / 2, "human_s_per_audio_min": 30.0,
                      "edited_segments": 0, "delivered_wer": None, "model_wer": None, "model_wer_on_checked": 0.0,
                      "timeline": timeline})
    view = {"files": files, "audio_s": sum(f["duration_s"] for f in files), "checked_s": 0.0, "segments": 120,
            "checked_segments": 30, "human_s": 0.0, "checked_share": 0.25, "human_s_per_audio_min": 30.0,
            "effort_per_checked_minute": None}
    metrics = {"segment_view": view}
    fig, plot = _timeline_plot(metrics)
    assert plot["shown"] == 25 and plot["of"] == 30
    assert [f["item_id"] for f in plot["files"]][:2] == ["rec29", "rec28"]  # the longest first
    assert all(segment_category(s) in plot["colours"] for f in files for s in f["timeline"])
    page = "".join(_segment_section(metrics, {"segment_timeline": "data:image/png;base64,x"},
                                    {"segment_timeline": plot}))
    text = _text(page)
    assert "The plot shows the 25 longest of the 30 recordings" in text
    assert all(f"rec{i:02d}" in text for i in range(30)) and "People checked 30 of the 120 segments" in text
