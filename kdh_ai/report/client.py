"""The client quality report: one self-contained HTML file (opens without a network) plus ``metrics.json``.

It answers what a client asks: what quality did I receive, how do you know, how much did people do, do your
annotators agree, how long did it take. Plots are PNG images embedded in the page. Annotators appear under
pseudonyms (Annotator A, B...): the client sees how good the team is, not who its members are.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.answers import human_answers
from kdh_ai.job import Job, write_json_atomic
from kdh_ai.report.metrics import job_metrics
from kdh_ai.tasks import get_task

__all__ = ["write_client_report"]

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2433}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px 0;font-size:26px} h2{margin-top:32px;border-bottom:2px solid #d9dde5;padding-bottom:4px}
.sub{color:#5b6475;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08);min-width:190px;flex:1}
.card .v{font-size:28px;font-weight:700} .card .l{color:#5b6475;font-size:13px}
.ok{color:#167a3e} .bad{color:#b42318}
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px}
th,td{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left} th{background:#eef0f4}
img{max-width:100%;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:8px 0}
.note{color:#5b6475;font-size:13px}
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(job: Job, metrics: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = get_task(job.task or "")
    preds = job.current_predictions()
    humans = human_answers(job, task)
    ids = [k for k in humans if k in preds and preds[k].status != "error"]
    out: dict[str, str] = {}
    label = "WER" if task.item_kind == "audio" else "error"
    threshold = (metrics.get("delivered") or {}).get("threshold")
    if ids:
        errs = task.item_errors([preds[k].text for k in ids], [humans[k].answer for k in ids])
        conf = np.array([preds[k].confidence or 0 for k in ids])
        rate = np.divide(errs[:, 0], errs[:, 1], out=np.zeros(len(ids)), where=errs[:, 1] > 0)
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        ax.scatter(conf, rate, s=16, alpha=0.7)
        if threshold is not None:
            ax.axvline(threshold, color="tab:red", ls="--", label=f"threshold {threshold:.3f}")
            ax.legend()
        ax.set_xlabel("model confidence")
        ax.set_ylabel(f"model {label} vs people")
        ax.set_title(f"Confidence against error ({len(ids)} items checked by people)")
        out["confidence_vs_error"] = _png(fig)
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        ax.hist(rate, bins=20, color="tab:blue", alpha=0.8)
        ax.set_xlabel(f"model {label} per item")
        ax.set_ylabel("items")
        ax.set_title(f"Distribution of the model's per-item {label}")
        out["error_distribution"] = _png(fig)
    curve = ((job.read_manifest().get("routing") or {}).get("details") or {}).get("curve")
    if curve:
        share = np.array(curve["human_share"])
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        ax.plot(share, curve["risk"], label=f"estimated delivered {label}")
        ax.plot(share, curve["risk_upper"], ls=":", label="upper confidence bound")
        target = (metrics.get("delivered") or {}).get("target")
        if target is not None:
            ax.axhline(target, color="tab:red", ls="--", label=f"target {target:.1%}")
        chosen = (metrics.get("delivered") or {}).get("human_share")
        if chosen is not None:
            ax.axvline(chosen, color="tab:green", ls="--", label=f"chosen: {chosen:.0%} to people")
        ax.set_xlabel("share of items people touch")
        ax.set_ylabel(f"delivered {label}")
        ax.set_title("Human share against quality")
        ax.legend(fontsize=8)
        out["human_share_vs_quality"] = _png(fig)
    return out


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def _pct(x: Any, digits: int = 1) -> str:
    return "n/a" if _missing(x) else f"{100 * float(x):.{digits}f}%"


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card"><div class="v {cls}">{html.escape(value)}</div><div class="l">{html.escape(label)}</div></div>'


def write_client_report(job_dir: str | Path, out: str | Path, *, client: str | None = None) -> Path:
    """Write the client report (HTML) and ``metrics.json`` next to it.

    Args:
        job_dir: The job directory.
        out: The HTML file to write.
        client: The client's name, shown in the title.
    """
    job = Job(Path(job_dir))
    if not job.read_manifest():
        raise ValueError(f"{job.root} is not a job directory (no job.json)")
    metrics = job_metrics(job)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.with_name("metrics.json"), metrics)
    plots = _plots(job, metrics)
    task = metrics["task"]
    is_audio = metrics["metric"] == "wer"
    name = "WER" if is_audio else "accuracy"
    d = metrics.get("delivered") or {}
    target = d.get("target")

    def quality_text(err: Any) -> str:
        if _missing(err):
            return "n/a"
        return _pct(err) if is_audio else _pct(1 - err)

    est, up = d.get("estimated_error"), d.get("error_upper")
    met = target is not None and up is not None and up <= target
    cards = [_card(f"{metrics['items']}", "items in the batch"),
             _card(quality_text(est), f"estimated delivered {name}"),
             _card((f"≤ {_pct(up)}" if is_audio else f"≥ {_pct(1 - up)}") if up is not None else "n/a",
                   f"delivered {name}, {_pct(1 - (d.get('delta') or 0.05), 0)} confidence bound", "ok" if met else ""),
             _card(_pct(metrics.get("human_share"), 0), "of items touched by people")]
    if metrics.get("audio_hours"):
        cards.insert(1, _card(f"{metrics['audio_hours']:.2f} h", "of audio"))
    h_err = d.get("human_error") or {}
    audit = d.get("audit") or {}
    thr = d.get("threshold")
    how = [f"Calibration: a random slice of the batch was labelled by people first; the model's errors on it "
           f"set the auto-accept threshold ({'n/a' if thr is None else f'{thr:.3f}'}).",
           *([f"Calibration pooled with {pooled['prior_items']} answered items of earlier batches of the same model "
              f"({', '.join(pooled['prior_jobs'])}); this batch's slice was first checked against them for drift."]
             if (pooled := d.get("pooled_calibration")) and pooled.get("used") else []),
           *(["The calibration slice was labelled to gold quality by trusted reviewers and is delivered as "
              "labelled."] if d.get("calibration_reviewed") else []),
           f"People: their {name if is_audio else 'error rate'} on gold items (known answers mixed in) was "
           f"{_pct(h_err.get('rate'))} over {h_err.get('n_answers', 0)} answers"
           + (" (assumed, not measured)" if h_err.get("source") == "assumed" else "") + ".",
           "Audit: " + (f"{audit.get('answered')} auto-accepted items were checked by people; the model's "
                        f"{name if is_audio else 'error rate'} on them was {_pct(audit.get('model_error'))}"
                        + (f"; {audit.get('rerouted')} items were re-routed to people because the target was missed "
                           "in their confidence band." if audit.get("rerouted") else "; the promise held.")
                        if audit else "no audit results yet."),
           "The bound uses fixed-sequence Learn-then-Test over the candidate thresholds (Angelopoulos et al., "
           "2021), so searching over many thresholds does not weaken it."]
    agr = metrics.get("agreement") or {}
    if is_audio:
        agr_rows = [("clips transcribed by 2+ annotators", agr.get("clips_with_overlap")),
                    ("mean pairwise WER between annotators", _pct(agr.get("pairwise_wer")))]
    else:
        agr_rows = [("items labelled by 2+ annotators", agr.get("tasks_with_overlap")),
                    ("percent agreement", _pct(agr.get("percent_agreement"))),
                    ("Fleiss' kappa", None if agr.get("fleiss_kappa") is None else f"{agr['fleiss_kappa']:.3f}"),
                    ("Krippendorff's alpha", None if agr.get("krippendorff_alpha") is None
                     else f"{agr['krippendorff_alpha']:.3f}")]
    ann_rows = []
    for i, a in enumerate(metrics.get("annotators") or []):
        alias = f"Annotator {chr(65 + i) if i < 26 else i + 1}"
        ann_rows.append(f"<tr><td>{alias}</td><td>{a.get('answers')}</td><td>{a.get('hours', 0):.2f}</td>"
                        f"<td>{a.get('gold_answers', 0)}</td><td>{quality_text(a.get('gold_error'))}</td></tr>")
    turnaround = metrics.get("turnaround") or {}
    model = metrics.get("model") or {}
    mv = metrics.get("model_vs_people") or {}
    sections = [
        f"<h1>Quality report{': ' + html.escape(client) if client else ''}</h1>",
        f'<div class="sub">Batch {html.escape(job.root.name)} · {html.escape(task)} · model '
        f"{html.escape(str(model.get('name')))} {html.escape(str(model.get('version')))}</div>",
        f'<div class="cards">{"".join(cards)}</div>',
        "<h2>Delivered quality and how it was measured</h2>",
        f"<p>{html.escape(str(d.get('message') or 'The batch has not been routed yet.'))}</p>",
        "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in how) + "</ul>",
        f"<p>Model against people on the {mv.get('items', 0)} items people checked: "
        f"{name} {quality_text(mv.get('error_rate'))}.</p>" if mv else "",
        *(f'<img alt="{k}" src="{v}">' for k, v in plots.items()),
        "<h2>Annotators</h2>",
        "<table><tr><th>annotator</th><th>answers</th><th>hours</th><th>gold answers</th>"
        f"<th>{name} on gold</th></tr>{''.join(ann_rows) or '<tr><td colspan=5>no annotations yet</td></tr>'}</table>",
        "<h3>Agreement between annotators</h3><table>" + "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v if v is not None else 'n/a'))}</td></tr>"
            for k, v in agr_rows) + "</table>",
        "<h2>Turnaround</h2>",
        (f"<p>Job created {turnaround.get('job_created')}, first annotation {turnaround.get('first_annotation')}, "
         f"last {turnaround.get('last_annotation')}: {turnaround.get('days')} days.</p>") if turnaround
        else "<p>No annotations yet.</p>",
        "<h2>Not measured yet</h2><ul>" + "".join(
            f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in
            (metrics.get("not_enough_data") or {}).items()) + "</ul>",
        '<p class="note">Generated by kdh_ai. Machine-readable figures: metrics.json next to this file.</p>',
    ]
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Quality report</title>"
            f"<style>{_CSS}</style></head><body><main>{''.join(sections)}</main></body></html>")
    out.write_text(page, encoding="utf-8")
    logger.info("Client report written to %s", out)
    return out
