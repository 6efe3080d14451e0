"""The client quality report: one self-contained HTML file (opens without a network), its figures and plots.

It answers what a doubtful buyer asks, in this order: did the batch meet the agreed target, and how sure are
you (the verdict, with its bound and how the bound is guaranteed); is this report final (a DRAFT banner until
every item routed to people is answered and the audit is checked); are the samples behind the promise big
enough (a warning with the sizes); who produced each delivered answer (provenance); how it was measured
(calibration slice, gold, overlap, audit, guideline); how good the model and the people are, with intervals;
what errors remain; how long it took and how much time the model's pre-labels saved.

Written next to the HTML (``report.html``): ``report.metrics.json`` (every figure,
:func:`kdh_ai.report.metrics.job_metrics`) and ``report.plots.json`` (the numbers each plot draws, so that a
plot can be checked against the text); with ``pdf=True`` also ``report.pdf`` (headless Chromium).

Annotators appear under pseudonyms (Annotator A, B...): the client sees how good the team is, not who its
members are. Accounts created as simulated (:func:`kdh_ai.labelstudio.server.add_annotator`) are said to be
simulated wherever they appear. The page holds no instructions for the lead (those are in ``kdh status``).
"""

from __future__ import annotations

import html
import logging
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.answers import human_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job, write_json_atomic
from kdh_ai.report.metrics import job_metrics
from kdh_ai.report.style import PAGE_CSS, figure_png
from kdh_ai.routing import routing_result
from kdh_ai.second_opinion import describe as describe_second_opinion

__all__ = ["ReportError", "find_chromium", "report_paths", "segment_category", "write_client_report", "write_pdf"]

logger = logging.getLogger(__name__)

_CSS = PAGE_CSS

_PROVENANCE = {
    "model": "the model's answer, auto-accepted (confidence above the threshold)",
    "model_awaiting_people": "the model's answer, for now: routed to people, not answered yet",
    "model_not_routed": "the model's answer, for now: not routed yet",
    "people": "one person's answer",
    "aggregated": "several people's answers, combined",
    "gold": "the known answer (gold item)",
    "reviewed": "a reviewer's gold-quality answer (calibration slice)",
    "none": "no answer: neither the model nor people could answer it",
}

_CLIENT_REASONS = {
    "model_vs_client_reference": "you sent no reference answers to compare the model with",
    "model_vs_people": "no item has been answered by people yet",
    "delivered": "the batch has not been routed to a target yet",
    "annotators": "no answers from people yet",
    "errors": "no item has been answered by people yet",
}


class ReportError(InvalidInputError):
    """The report cannot be written (the message says why and what to do)."""


def report_paths(out: str | Path) -> dict[str, Path]:
    """The files a report writes next to its HTML: ``metrics``, ``plots`` (data) and ``pdf``.

    Example:
        >>> sorted(p.name for p in report_paths("out/report.html").values())
        ['report.html', 'report.metrics.json', 'report.pdf', 'report.plots.json']
    """
    out = Path(out)
    return {"html": out, "metrics": out.with_suffix(".metrics.json"), "plots": out.with_suffix(".plots.json"),
            "pdf": out.with_suffix(".pdf")}


# ---- formatting --------------------------------------------------------------------------------------------
def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def _pct(x: Any, digits: int = 1) -> str:
    return "n/a" if _missing(x) else f"{100 * float(x):.{digits}f}%"


def _e(x: Any) -> str:
    return html.escape(str(x))


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card"><div class="v {cls}">{_e(value)}</div><div class="l">{_e(label)}</div></div>'


def _table(head: list[str], rows: list[list[Any]], numeric: Collection[int] = (), nowrap: Collection[int] = ()
           ) -> str:
    def cls(i: int) -> str:
        return " class=n" if i in numeric else (" class=k" if i in nowrap else "")

    th = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{cls(i)}>{_e("n/a" if _missing(v) else v)}</td>' for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _when(iso: str | None) -> str:
    if not iso:
        return "n/a"
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} minutes"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"


class _Quality:
    """How the job's metric reads for the client: WER (lower is better) or accuracy (higher is better)."""

    def __init__(self, is_audio: bool) -> None:
        self.is_audio = is_audio
        self.name = "WER" if is_audio else "accuracy"
        self.long = "word error rate (WER)" if is_audio else "accuracy"

    def value(self, err: Any) -> str:
        """An error rate as the client reads it (WER, or accuracy = 1 - error)."""
        if _missing(err):
            return "n/a"
        return _pct(err) if self.is_audio else _pct(1 - float(err))

    def bound(self, up: Any) -> str:
        """An upper bound on the error rate, as a bound on the client's metric."""
        if _missing(up):
            return "n/a"
        return f"at most {_pct(up)}" if self.is_audio else f"at least {_pct(1 - float(up))}"


# ---- plots -------------------------------------------------------------------------------------------------
_png = figure_png


def _share_curve(job: Job, metrics: dict[str, Any], q: _Quality) -> tuple[Any, dict[str, Any]] | None:
    """Human share against delivered quality, with the same human share as the text (audit items included)."""
    import matplotlib.pyplot as plt

    routed = routing_result(job)
    curve = routed.details.get("curve") if routed is not None else None
    d = metrics.get("delivered") or {}
    share = metrics.get("human_share")
    if not curve or share is None:
        return None
    # Roles as the routing step left them (a later audit re-route moves items from auto-accept to people).
    at_route = job.roles(step="route")
    n_audit = sum(r.role == "audit" for r in at_route.values())
    n_auto = sum(r.role == "auto_accept" for r in at_route.values())
    # The routing curve counts the items below each threshold; people also check a random share of the
    # items above it (the audit). Add that share, as drawn in this batch, so the curve's x-axis is the human
    # share the text reports (calibration, gold, routed and audit items).
    a = n_audit / (n_audit + n_auto) if n_audit + n_auto else 0.0
    x = np.asarray(curve["human_share"], dtype=float)
    x = x + a * (1 - x)
    risk, upper = np.asarray(curve["risk"], dtype=float), np.asarray(curve["risk_upper"], dtype=float)
    target = d.get("target")
    est, up = d.get("estimated_error"), d.get("error_upper")
    conv = (lambda v: v) if q.is_audio else (lambda v: 1 - v)
    data = {"x_human_share": x.round(6).tolist(), "estimate": conv(risk).round(6).tolist(),
            "bound": conv(upper).round(6).tolist(), "metric": q.name,
            "target": None if target is None else conv(float(target)),
            "chosen": {"human_share": share, "estimate": None if est is None else conv(float(est)),
                       "bound": None if up is None else conv(float(up))}}
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    ax.plot(x, conv(risk), color="tab:blue", label=f"estimated delivered {q.name}")
    ax.plot(x, conv(upper), color="tab:blue", ls=":", label=f"95% bound on delivered {q.name}")
    if target is not None:
        ax.axhline(conv(float(target)), color="tab:red", ls="--", lw=1.5, label=f"agreed target {q.value(target)}")
    ax.axvline(share, color="tab:green", ls="--", lw=1, label=f"this batch: people touched {_pct(share, 0)}")
    if up is not None:
        ax.plot([share], [conv(float(up))], "o", color="tab:green", ms=7, label=f"this batch's bound {q.value(up)}")
    if est is not None:
        ax.plot([share], [conv(float(est))], "s", color="tab:green", ms=6, label=f"this batch's estimate {q.value(est)}")
    refs = [v for v in (target, up) if v is not None]
    span = max([*refs, 0.02]) * 1.8
    if q.is_audio:
        ax.set_ylim(0, span)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    else:
        ax.set_ylim(max(0.0, 1 - span), 1.0 + span * 0.05)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlim(0, 1.02)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("share of the batch people touch (calibration, gold, routed and audit items)")
    ax.set_ylabel(f"delivered {q.name}")
    ax.set_title("Delivered quality at each share of human work, and where this batch sits")
    ax.legend(fontsize=8, loc="lower right" if not q.is_audio else "upper right")
    ax.grid(alpha=0.25)
    return fig, data


def _confidence_plot(job: Job, metrics: dict[str, Any], q: _Quality) -> tuple[Any, dict[str, Any]] | None:
    """Transcription: the model's confidence against its WER on each clip people checked."""
    import matplotlib.pyplot as plt

    task = job.task_type()
    preds = job.units()  # a short clip, or a work segment of a long recording (people answer units)
    humans = human_answers(job, task)
    ids = sorted(k for k in humans if k in preds and preds[k].status != "error")
    if not ids:
        return None
    errs = task.item_errors([preds[k].text for k in ids], [humans[k].answer for k in ids])
    conf = np.array([preds[k].confidence or 0 for k in ids])
    rate = np.divide(errs[:, 0], errs[:, 1], out=np.zeros(len(ids)), where=errs[:, 1] > 0)
    threshold = (metrics.get("delivered") or {}).get("threshold")
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    ax.scatter(conf, rate, s=22, alpha=0.75)
    if threshold:  # 0: every clip was auto-accepted, no line to draw
        ax.axvline(threshold, color="tab:red", ls="--", label=f"auto-accept threshold {threshold:.3f}")
        ax.legend(fontsize=8)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("model confidence")
    ax.set_ylabel("model WER on the clip (vs people)")
    what = "clips and segments" if any("#" in k for k in ids) else "clips"
    ax.set_title(f"The model's confidence against its errors ({len(ids)} {what} people checked)")
    ax.grid(alpha=0.25)
    return fig, {"items": ids, "confidence": conf.round(6).tolist(), "wer": rate.round(6).tolist(),
                 "threshold": threshold}


def _reliability_plot(metrics: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """Classification: a reliability diagram (stated confidence against observed accuracy, per band)."""
    import matplotlib.pyplot as plt

    errors = metrics.get("errors") or {}
    bins = errors.get("reliability") or []
    if not bins:
        return None
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    mids = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(mids, [b["accuracy"] for b in bins], width=0.09, color="tab:blue", alpha=0.75,
           label="observed accuracy (vs people)")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
    for m, b in zip(mids, bins):
        ax.annotate(f"{b['items']}", (m, b["accuracy"]), ha="center", va="bottom", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("model confidence (bands of 10 points; number of items above each bar)")
    ax.set_ylabel("share the model got right")
    ax.set_title(f"Does the model's confidence mean what it says? ({errors.get('items')} items people checked)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.25)
    return fig, {"bins": bins, "calibration_error": errors.get("calibration_error")}


_SEGMENT_COLOURS = {"auto-accepted (the model's text)": "#d0d0d0", "checked: calibration": "tab:blue",
                    "checked: routed to people": "tab:orange", "checked: audit": "tab:purple",
                    "checked: gold": "goldenrod", "with people, not answered yet": "white",
                    "not routed yet": "#f4f4f4"}
"""Timeline colours: a segment's state, and for a checked segment the role that sent it to people."""

_MAX_TIMELINES = 25


def segment_category(seg: dict[str, Any]) -> str:
    """The timeline category of a segment of :func:`kdh_ai.report.metrics.job_metrics`' ``segment_view``.

    Example:
        >>> segment_category({"checked": True, "role": "audit"}), segment_category({"checked": False, "role": "human"})
        ('checked: audit', 'with people, not answered yet')
    """
    role = seg.get("role")
    if seg.get("checked"):
        return {"calibration": "checked: calibration", "audit": "checked: audit", "gold": "checked: gold"}.get(
            str(role), "checked: routed to people")
    if role == "auto_accept":
        return "auto-accepted (the model's text)"
    return "with people, not answered yet" if role in ("calibration", "human", "audit", "gold") else "not routed yet"


def _timeline_plot(metrics: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """Long recordings: one bar per file along its time, each segment coloured by who produced its text."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    view = metrics.get("segment_view") or {}
    files = sorted(view.get("files") or [], key=lambda f: -f["duration_s"])[:_MAX_TIMELINES]
    if not files:
        return None
    height = 2.0 + 0.42 * len(files)
    fig, ax = plt.subplots(figsize=(9.6, height))
    fig.subplots_adjust(left=0.2, right=0.97, top=1 - 0.42 / height, bottom=1.1 / height)
    data = []
    longest = max(f["duration_s"] for f in files) / 60
    for row, f in enumerate(files):
        bars = []
        for seg in f["timeline"]:
            cat = segment_category(seg)
            bars.append([seg["start"], seg["end"], cat, bool(seg["edited"])])
            ax.broken_barh([(seg["start"] / 60, (seg["end"] - seg["start"]) / 60)], (row - 0.35, 0.7),
                           facecolors=_SEGMENT_COLOURS[cat], edgecolor="white" if cat.startswith(("auto", "checked"))
                           else "tab:orange" if cat.startswith("with") else "#999999", linewidth=0.6,
                           hatch="///" if seg["edited"] else None)
        ax.text(f["duration_s"] / 60 + longest * 0.01, row, f"{100 * f['checked_share']:.0f}% checked", va="center",
                fontsize=8)
        data.append({"item_id": f["item_id"], "duration_s": f["duration_s"], "checked_share": f["checked_share"],
                     "bars": bars})
    ax.set_yticks(range(len(files)), [f["item_id"] if len(f["item_id"]) <= 28 else f["item_id"][:27] + "…"
                                      for f in files], fontsize=8)
    ax.set_ylim(len(files) - 0.5, -0.5)
    ax.set_xlim(0, longest * 1.14)
    ax.set_xlabel("minutes into the recording")
    used = {b[2] for d in data for b in d["bars"]}
    handles = [Patch(facecolor=c, edgecolor="#999999", label=k) for k, c in _SEGMENT_COLOURS.items() if k in used]
    if any(b[3] for d in data for b in d["bars"]):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="people changed the text"))
    fig.legend(handles=handles, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 0.02), ncol=3, frameon=False)
    ax.set_title("Long recordings: which stretches people checked", fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    return fig, {"files": data, "colours": _SEGMENT_COLOURS, "shown": len(files),
                 "of": len(view.get("files") or [])}


def _plots(job: Job, metrics: dict[str, Any], q: _Quality) -> tuple[dict[str, str], dict[str, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    images: dict[str, str] = {}
    data: dict[str, Any] = {}
    makers = [("human_share_vs_quality", lambda: _share_curve(job, metrics, q))]
    makers.append(("confidence_vs_error", lambda: _confidence_plot(job, metrics, q)) if q.is_audio
                  else ("reliability", lambda: _reliability_plot(metrics)))
    if q.is_audio:
        makers.append(("segment_timeline", lambda: _timeline_plot(metrics)))
    for name, make in makers:
        made = make()
        if made is not None:
            fig, data[name] = made
            images[name] = _png(fig)
    return images, data


# ---- sections ----------------------------------------------------------------------------------------------
def _verdict(metrics: dict[str, Any], q: _Quality) -> tuple[str, str, str]:
    """The one-sentence verdict, how it is guaranteed, and its CSS class (``""``, ``miss`` or ``none``)."""
    d = metrics.get("delivered") or {}
    if not d or d.get("step") not in ("route", "audit"):
        return ("No quality level is promised for this batch yet: it has not been routed to an agreed target.",
                "Until then the figures below describe the model and the people, not the delivered batch.", "none")
    target, est, up = d.get("target"), d.get("estimated_error"), d.get("error_upper")
    conf = _pct(1 - (d.get("delta") or 0.05), 0)
    estimate = f"estimated at {q.value(est)} and " if est is not None else ""
    met = False
    if target is not None:
        met = up is not None and up <= target + 1e-12
        sentence = (f"Delivered {q.long} is {estimate}{q.bound(up)} with {conf} confidence: "
                    + (f"it meets the agreed target of {q.value(target)}." if met
                       else f"it does NOT meet the agreed target of {q.value(target)}."))
        cls = "" if met else "miss"
    else:
        sentence = (f"No target was agreed; within a budget of {_pct(d.get('budget'), 0)} of items checked by people, "
                    f"delivered {q.long} is {estimate}{q.bound(up)} with {conf} confidence.")
        cls = ""
    n_cal = d.get("calibration_answered") or 0
    he = d.get("human_error") or {}
    unit = "clips" if q.is_audio else "items"
    people = (f"the {he.get('n_answers', 0)} answers people gave on items with known answers"
              if he.get("source") != "assumed" else "an assumed (not measured) error rate for the people")
    if target is not None and not met and he.get("upper") is not None and he["upper"] > target:
        sentence += (f" The main reason: the people's own {q.name if q.is_audio else 'error rate'} rests on only "
                     f"{he.get('n_answers', 0)} gold answers, so it could be as high as {_pct(he['upper'])}; more "
                     "gold answers would narrow the bound." if he.get("source") != "assumed" else
                     f" The main reason: the people's assumed error rate is above the target.")
    how = (f"How it is guaranteed: people first answered a random sample of {n_cal} {unit}; the model's measured "
           f"errors on that sample decided which {unit} go to people, and the bound allows for the chance that "
           f"this sample, and {people}, happened to look better than the batch is. "
           "Trying many thresholds does not weaken it (Learn-then-Test, Angelopoulos et al., 2021).")
    audit = d.get("audit") or {}
    if audit:
        how += (f" An audit then had people check {audit.get('answered')} randomly chosen auto-accepted {unit}: "
                f"the model's {q.name} on them was {q.value(audit.get('model_error'))}"
                + (f"; that could not confirm the promise, so the {audit.get('rerouted')} least confident "
                   f"auto-accepted {unit} went to people as well." if audit.get("rerouted")
                   else ", which confirmed the promise."))
    return sentence, how, cls


def _method(metrics: dict[str, Any], q: _Quality, is_audio: bool) -> list[str]:
    d = metrics.get("delivered") or {}
    roles = metrics.get("roles") or {}
    he = d.get("human_error") or {}
    agr = metrics.get("agreement") or {}
    audit = d.get("audit") or {}
    unit = "clips" if is_audio else "items"
    thr = d.get("threshold")
    if d.get("step") not in ("route", "audit"):
        return [f"Calibration slice: {roles.get('calibration', 0)} {unit} drawn at random for people to answer "
                "first; the auto-accept threshold is chosen from the model's errors on them once they are answered.",
                f"Gold: {roles.get('gold', 0)} {unit} with known answers, to be mixed in unannounced to measure "
                "the people.",
                f"Overlap: {agr.get('clips_with_overlap') or agr.get('tasks_with_overlap') or 0} {unit} answered by "
                "two or more people so far.",
                "Audit: drawn when the threshold is chosen.",
                _guideline(metrics)]
    lines = [
        f"Calibration slice: {roles.get('calibration', 0)} {unit} drawn at random and answered by people before "
        f"anything else ({d.get('calibration_answered') or 0} answered when the threshold was chosen). The model's "
        f"errors on them set the auto-accept threshold"
        + (f" ({'routing score' if metrics.get('second_opinion') else 'confidence'} {thr:.3f}): {unit} below it go "
           f"to people, {unit} above it keep the model's answer."
           if thr else f" so low that every other {unit[:-1]} could keep the model's answer." if thr is not None
           else "."),
        *(["The calibration slice was labelled to gold quality by trusted reviewers and is delivered as "
           "labelled."] if d.get("calibration_reviewed") else []),
        *([f"Calibration was pooled with {pooled['prior_items']} answered items of earlier batches of the same "
           f"model ({', '.join(pooled['prior_jobs'])}), after checking this batch for drift against them."]
          if (pooled := d.get("pooled_calibration")) and pooled.get("used") else []),
        f"Gold: {roles.get('gold', 0)} {unit} with known answers were mixed in unannounced; the people's "
        f"{q.name} on them was {q.value(he.get('rate'))} over {he.get('n_answers', 0)} "
        "answers when the threshold was chosen"
        + (" (assumed, not measured)" if he.get("source") == "assumed" else "")
        + (f"; {now} gold answers now, in the table of people below" if (now := sum(
            a.get("gold_answers") or 0 for a in metrics.get("annotators") or [])) != he.get("n_answers", 0)
           and he.get("source") != "assumed" else "") + ".",
        f"Overlap: {agr.get('clips_with_overlap') or agr.get('tasks_with_overlap') or 0} {unit} were answered by "
        "two or more people independently, to measure how well they agree (below).",
        ("Audit: " + (f"{audit.get('answered')} auto-accepted {unit} were checked by people; the model's "
                      f"{q.name} on them was {q.value(audit.get('model_error'))}." if audit else
                      ("no audit items in this batch." if not roles.get("audit")
                       else f"{roles.get('audit')} auto-accepted {unit} are with people for an audit; "
                       "its result is not in yet."))),
        _guideline(metrics),
    ]
    return lines


def _segment_section(metrics: dict[str, Any], images: dict[str, str], plot_data: dict[str, Any]) -> list[str]:
    """Long recordings: how much of each file people checked, its delivered WER, and the human time per minute."""
    view = metrics.get("segment_view")
    if not view:
        return []
    files = view["files"]
    minutes = view["audio_s"] / 60
    out = ["<h2>Long recordings: what people checked</h2>"]
    text = (f"Each long recording was cut at pauses into segments of up to about 30 seconds, and each segment "
            f"was routed on its own. People checked {view['checked_segments']} of the {view['segments']} segments "
            f"of the {len(files)} long recording{'s' if len(files) != 1 else ''}: {_pct(view['checked_share'])} of "
            f"{minutes:.1f} minutes of audio. The model's transcript of the other segments is delivered as it "
            "stands. A segment whose text people changed keeps its start and end; the words they changed or added "
            "are timed by aligning their text to the audio, or, where that fails, placed between the words they "
            "kept (each recording's JSON says which).")
    out.append(f'<p id="segment-summary">{_e(text)}</p>')
    if "segment_timeline" in images:
        out.append(f'<img alt="timeline of each long recording: segments people checked" '
                   f'src="{images["segment_timeline"]}">')
        shown = plot_data.get("segment_timeline") or {}
        if shown.get("of", 0) > shown.get("shown", 0):
            out.append(f'<p class="note">The plot shows the {shown["shown"]} longest of the {shown["of"]} '
                       "recordings; the table lists them all.</p>")
    rows = []
    for f in sorted(files, key=lambda f: f["item_id"]):
        rows.append([f["item_id"], f"{f['duration_s'] / 60:.1f} min",
                     f"{f['checked_segments']} of {f['segments']}", _pct(f["checked_share"], 0),
                     _pct(f["delivered_wer"]), _pct(f["model_wer"]), f"{f['human_s_per_audio_min']:.0f} s"])
    out.append(_table(["recording", "length", "segments checked", "audio checked", "delivered WER",
                       "model WER", "human s per audio min"], rows, {1, 2, 3, 4, 5, 6}, {0}))
    notes = ["Delivered WER: the delivered transcript against your reference; model WER: the model's transcript "
             "before people checked it (n/a: you sent no reference for that recording)."]
    eff = view.get("effort_per_checked_minute")
    cost = (f"Delivering these recordings took {view['human_s_per_audio_min']:.0f} seconds of people's work per "
            "minute of audio")
    if eff:
        cost += (f"; on the segments they checked, people worked {eff['all']:.0f} s per minute of audio"
                 + (f": {eff['with_prelabels']:.0f} s when they started from the model's transcript "
                    f"({eff['n_with']} answers)" if eff.get("with_prelabels") is not None else "")
                 + (f" and {eff['without_prelabels']:.0f} s when they transcribed from scratch "
                    f"({eff['n_without']} answers)" if eff.get("without_prelabels") is not None else
                    "; every segment started from the model's transcript, so there is no from-scratch time to "
                    "compare with"))
    notes.append(cost + ".")
    out.append(f'<p class="note" id="segment-effort">{_e(" ".join(notes))}</p>')
    return out


def _guideline(metrics: dict[str, Any]) -> str:
    g = metrics.get("guidelines")
    named = f"{g['label']}, " if g and g.get("version") else ""  # e.g. "transcription guideline v1.0.0, "
    return ("Guideline: " + (f"the annotators worked to {named}{g['file']} (SHA-256 {g['sha256'][:16]}…)." if g
                             else "none was given to the annotators in the labelling tool."))


def _annotators(metrics: dict[str, Any], q: _Quality) -> tuple[str, bool]:
    rows, any_sim = [], False
    for i, a in enumerate(metrics.get("annotators") or []):
        alias = f"Annotator {chr(65 + i) if i < 26 else i + 1}"
        if a.get("simulated"):
            alias += " (SIMULATED)"
            any_sim = True
        err, lo, hi = a.get("gold_error"), a.get("gold_error_low"), a.get("gold_error_high")
        if _missing(err):
            score = "no gold answers"
        elif q.is_audio:
            score = f"{_pct(err)} ({_pct(lo)} to {_pct(hi)})"
        else:
            score = f"{_pct(1 - err)} ({_pct(1 - hi)} to {_pct(1 - lo)})"
        rows.append([alias, a.get("answers"), f"{a.get('hours') or 0:.2f}", a.get("gold_answers", 0), score])
    if not rows:
        return "<p>No answers from people yet.</p>", False
    head = ["annotator", "answers", "hours", "gold answers", f"{q.name} on gold (95% interval)"]
    note = ('<p class="note">Intervals are Wilson 95% intervals'
            + (" over the reference words of the gold clips (words of one clip are not independent, so the "
               "true uncertainty is somewhat wider)." if q.is_audio else " over the gold answers.")
            + " A handful of gold answers gives a wide interval: it says how little is known yet.</p>")
    return _table(head, rows, {1, 2, 3}) + note, any_sim


def _errors_section(metrics: dict[str, Any], q: _Quality) -> str:
    errors = metrics.get("errors")
    if not errors:
        return "<p>Not measured yet: no item has been answered by people.</p>"
    if q.is_audio:
        top = errors.get("top") or []
        if not top:
            return f"<p>The model made no word error on the {errors['items']} clips people checked.</p>"
        kinds = {"substitution": "wrong word", "deletion": "missed words", "insertion": "extra words"}
        rows = [[kinds.get(r["kind"], r["kind"]), r["people"] or "—", r["model"] or "—", r["count"],
                 f"{r.get('example_item', '')}: people “{r.get('example_people', '')}” / model "
                 f"“{r.get('example_model', '')}”"] for r in top]
        return (f"<p>The model's most frequent word errors against the people's transcripts, on the "
                f"{errors['items']} clips people checked (the errors people corrected before delivery):</p>"
                + _table(["kind", "people wrote", "model wrote", "times", "example (clip: context)"], rows, {3},
                         {0, 1, 2}))
    labels = errors["labels"]
    out = [f"<p>The model's labels against the people's, on the {errors['items']} items people checked.</p>"]
    if len(labels) <= 8:
        rows = [[f"people: {lab}", *errors["confusion"][i]] for i, lab in enumerate(labels)]
        out.append("<h3>Confusion matrix</h3>" + _table(["", *[f"model: {lab}" for lab in labels]], rows,
                                                        set(range(1, len(labels) + 1))))
    per = sorted(errors["per_class"], key=lambda r: -r["people"])[:20]
    out.append("<h3>Per class</h3>" + _table(
        ["label", "items (people)", "items (model)", "precision", "recall"],
        [[r["label"], r["people"], r["model"], _pct(r["precision"]), _pct(r["recall"])] for r in per], {1, 2, 3, 4}))
    out.append('<p class="note">Precision: of the items the model gave a label, the share people gave it too. '
               "Recall: of the items people gave a label, the share the model found.</p>")
    pairs = errors.get("confused_pairs") or []
    if pairs:
        out.append("<h3>Most confused</h3>" + _table(
            ["people said", "model said", "times", "example"],
            [[p["people"], p["model"], p["count"], f"{p['example_item']}: “{p['example_text']}”"] for p in pairs],
            {2}))
    return "".join(out)


def _people_time(metrics: dict[str, Any], sim: bool) -> str:
    ts = metrics.get("time_saved")
    if not ts:
        why = (metrics.get("not_enough_data") or {}).get("time_saved", "not enough data")
        return f"<p>Time saved by pre-labels: not measured ({_e(why)}).</p>"
    per = ts["per"]
    text = (f"People worked {ts['seconds_with']:.1f} s per {per} when they started from the model's pre-label "
            f"({ts['answers_with']} answers) and {ts['seconds_without']:.1f} s per {per} without one "
            f"({ts['answers_without']} answers): on this batch the pre-labels saved about "
            f"{_duration(ts['hours_saved']) if ts['hours_saved'] > 0 else 'no time'} (people worked "
            f"{_duration(ts['hours_spent'])} in all).")
    if min(ts["answers_with"], ts["answers_without"]) < 10:
        text += " Few answers lie behind this comparison, so take it as a first indication."
    if sim:
        text += " The working times of simulated annotators are simulated too."
    return f"<p>{_e(text)}</p>"


def _not_measured(metrics: dict[str, Any]) -> str:
    import re

    rows = []
    for k, v in (metrics.get("not_enough_data") or {}).items():
        if k in ("effort", "time_saved", "errors", "model_vs_client_reference", "model_vs_people", "annotators"):
            continue  # said in their own sections
        text = _CLIENT_REASONS.get(k) or re.sub(r"\s*\([^)]*\)", "", v)
        if "kdh" in text or "`" in text:
            text = "not enough data yet"
        rows.append(f"<li><b>{_e(k.replace('_', ' ').replace('.', ': '))}</b>: {_e(text)}</li>")
    return ("<h2>Not measured yet</h2><ul>" + "".join(rows) + "</ul>") if rows else ""


def _page(job: Job, metrics: dict[str, Any], images: dict[str, str], plot_data: dict[str, Any], client: str | None,
          paths: dict[str, Path], generated: str) -> str:
    is_audio = metrics["metric"] == "wer"
    q = _Quality(is_audio)
    d = metrics.get("delivered") or {}
    unit = "clips" if is_audio else "items"
    draft = metrics.get("draft") or {}
    sim = metrics.get("simulated_annotators") or []
    sections = _banner(job, metrics, q, client)
    sections.append(_cards(metrics, q))

    prov = metrics.get("provenance") or {}
    total = sum(prov.values()) or 1
    counted = unit if metrics.get("units", metrics["items"]) == metrics["items"] else (
        "clips and segments" if is_audio else unit)
    sections += ["<h2>Who produced what you receive</h2>", _table(
        ["source of the delivered answer", counted, "share"],
        [[_PROVENANCE[k], n, _pct(n / total)] for k, n in prov.items() if n], {1, 2})]
    if counted != unit:
        sections.append('<p class="note">Long recordings count once per segment: each segment is answered by '
                        "the model or by people on its own.</p>")
    sections += _segment_section(metrics, images, plot_data)

    method = [*_method(metrics, q, is_audio), *describe_second_opinion(metrics.get("second_opinion"))]
    sections += ["<h2>How quality was measured</h2>",
                 "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in method) + "</ul>"]
    if "human_share_vs_quality" in images:
        sections += _curve_section(images, plot_data, d, is_audio, unit)
    sections += _model_section(metrics, images, q, unit)
    people, sim_rows = _people_section(metrics, q, bool(sim))
    sections += people

    t = metrics.get("turnaround")
    sections.append("<h2>Turnaround</h2>")
    sections.append(f"<p>{_e(_duration(t.get('hours', t['days'] * 24)))} from the start of the job "
                    f"({_e(_when(t['job_created']))}) to the last answer from people ({_e(_when(t['last_annotation']))})."
                    "</p>" if t else "<p>No answers from people yet.</p>")
    sections.append(_not_measured(metrics))
    sections.append(
        f"<footer>Report made {_e(generated)} · kdh_ai {_e(metrics.get('kdh_version'))} · job configuration "
        f"{_e(metrics.get('config_hash') or 'n/a')} · every figure in {_e(paths['metrics'].name)}, the plotted "
        f"numbers in {_e(paths['plots'].name)} (next to this file)."
        + (" Annotators marked SIMULATED are scripts." if sim or sim_rows else "") + "</footer>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Quality report{' — DRAFT' if draft.get('is_draft') else ''}</title>"
            f"<style>{_CSS}</style></head><body><main>{''.join(s for s in sections if s)}</main></body></html>")


def _banner(job: Job, metrics: dict[str, Any], q: _Quality, client: str | None) -> list[str]:
    """The top of the page: the DRAFT mark, the title, the verdict, and the small-sample and simulated-people
    warnings."""
    is_audio = q.is_audio
    model = metrics.get("model") or {}
    unit = "clips" if is_audio else "items"
    draft = metrics.get("draft") or {}
    sections: list[str] = []
    if draft.get("is_draft"):
        sections.append('<div class="draft" id="draft"><b>DRAFT</b> — not the final report. '
                        + _e(("; ".join(draft.get("reasons") or [])).capitalize())
                        + ". The figures below will change.</div>")
    sections += [
        f"<h1>Quality report{': ' + _e(client) if client else ''}</h1>",
        f'<div class="sub">Batch {_e(job.root.name)} · {"audio transcription" if is_audio else "text classification"}'
        f" · {metrics['items']} {unit if metrics['items'] != 1 else unit[:-1]}"
        + (f" ({metrics['audio_hours'] * 60:.1f} minutes of audio)"
                                          if metrics.get("audio_hours") else "")
        + f" · model {_e(model.get('name') or 'n/a')} {_e(model.get('version') or '')}</div>",
    ]
    sentence, how, cls = _verdict(metrics, q)
    if draft.get("is_draft") and cls != "none":
        sentence = "Provisional (see DRAFT above): " + sentence[0].lower() + sentence[1:]
    sections.append(f'<div class="verdict {cls}" id="verdict"><div>{_e(sentence)}</div>'
                    f'<div class="how">{_e(how)}</div></div>')
    ev = metrics.get("evidence") or {}
    if ev.get("small"):
        need = ev.get("gold_needed") or {}
        gold_need = ("; ".join((f"{v} if people err {100 * float(k):g}% of the time" if v is not None else
                                f"no number is enough if people err {100 * float(k):g}%") for k, v in need.items())
                     if ev.get("source") == "routing" else f"{ev['calibration_needed']} or more")
        sections.append(
            '<div class="warn" id="small-sample"><b>Small sample.</b> '
            + _e(f"The promise rests on {ev['calibration_have']} answered calibration {unit} (about "
                 f"{ev['calibration_needed']} are needed for a stable bound) and {ev['gold_have']} gold answers "
                 f"({gold_need} needed to know the people's error rate well). The bound above allows for this, "
                 "which is why it is wide; a larger sample would narrow it.")
            + ("" if ev.get("source") == "routing" else
               ' <span class="note">(Sizes needed: a rule of thumb of 30, not a computed plan.)</span>')
            + "</div>")
    sim = metrics.get("simulated_annotators") or []
    if sim:
        sections.append('<div class="sim" id="simulated"><b>Simulated annotators.</b> '
                        + _e(f"{len(sim)} of the annotator accounts in this batch are SIMULATED: a script, not a "
                             "person, answered as them (a demonstration). Figures about people marked SIMULATED "
                             "show how the report works, not how the team performs.") + "</div>")
    return sections


def _cards(metrics: dict[str, Any], q: _Quality) -> str:
    """The four headline figures: items, delivered error (or the audit's), its bound, the human share."""
    d = metrics.get("delivered") or {}
    unit = "clips" if q.is_audio else "items"
    est, up = d.get("estimated_error"), d.get("error_upper")
    audit = d.get("audit") or {}
    cards = [_card(str(metrics["items"]), f"{unit} in the batch"),
             _card(q.value(est), f"estimated delivered {q.name}") if est is not None or not audit else
             _card(q.value(audit.get("model_error")), f"model {q.name} on the {audit.get('answered')} audited "
                   f"auto-accepted {unit}"),
             _card(q.bound(up).replace("at most ", "≤ ").replace("at least ", "≥ "),
                   f"delivered {q.name}, {_pct(1 - (d.get('delta') or 0.05), 0)} confidence bound",
                   "" if not up or d.get("target") is None else ("ok" if up <= d["target"] + 1e-12 else "bad")),
             _card(_pct(metrics.get("human_share"), 0),
                   "of the batch touched by people (calibration, gold, routed and audit items)"
                   if d.get("step") in ("route", "audit") else "of the batch planned for people so far")]
    return f'<div class="cards">{"".join(cards)}</div>'


def _curve_section(images: dict[str, str], plot_data: dict[str, Any], d: dict[str, Any], is_audio: bool,
                   unit: str) -> list[str]:
    """The human share against delivered quality plot, with what to read in it."""
    sections: list[str] = []
    sections.append(f'<img alt="human share against delivered quality" src="{images["human_share_vs_quality"]}">')
    rerouted = (d.get("audit") or {}).get("rerouted")
    curve = plot_data.get("human_share_vs_quality") or {}
    xs, est_curve = curve.get("x_human_share") or [], curve.get("estimate") or []
    worse = False
    if len(xs) > 1:  # is the estimate worse with everything to people than with the fewest items to people?
        most, least = est_curve[int(np.argmax(xs))], est_curve[int(np.argmin(xs))]
        worse = most > least + 1e-9 if is_audio else most < least - 1e-9
    sections.append('<p class="note">The curves are the promise at each possible threshold: left, people '
                    "check few items and the model answers the rest; right, people check everything. The "
                    "green marks are this batch. The bound, not the estimate, is what is promised."
                    + (" Here the people's measured error rate is higher than the model's on its confident "
                       f"{unit}, so sending more {unit} to people would not raise quality." if worse else "")
                    + ((f" The curves were drawn when the threshold was chosen; the audit then sent {rerouted} "
                        f"more {unit} to people and re-measured the bound, so the green mark sits off them."
                        if rerouted else " The curves were drawn when the threshold was chosen; the audit "
                        "then re-measured the bound with its own answers (the green mark).")
                       if d.get("step") == "audit" else "") + "</p>")
    return sections


def _model_section(metrics: dict[str, Any], images: dict[str, str], q: _Quality, unit: str) -> list[str]:
    """The model against the client's references and the people's answers, its plots and its errors."""
    sections: list[str] = []
    sections.append("<h2>The model</h2>")
    ref = metrics.get("model_vs_client_reference")
    mv = metrics.get("model_vs_people")
    lines = []
    if ref:
        lines.append(f"Against your reference answers ({ref['items']} {unit}): {q.name} {q.value(ref['error_rate'])}"
                     + (f", character error rate {_pct(ref.get('cer'))}." if ref.get("cer") is not None else "."))
    else:
        lines.append("Against your reference answers: not measured (you sent none).")
    dv = metrics.get("delivered_vs_client_reference")
    if dv and ref:
        lines.append(f"What you receive (after people's corrections) against your reference answers ({dv['items']} "
                     f"{unit if dv['items'] != 1 else unit[:-1]}): {q.name} {q.value(dv['error_rate'])}.")
    if mv:
        lines.append(f"Against the people's answers ({mv['items']} {unit} people checked): {q.name} "
                     f"{q.value(mv['error_rate'])}." + (
                         f" These {unit} include the ones routed to people because the model was unsure, so the "
                         f"model does better on the {unit} it answered alone."
                         if (metrics.get("provenance") or {}).get("model") else ""))
    sections.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>")
    for name, alt in (("confidence_vs_error", "model confidence against its errors"),
                      ("reliability", "reliability diagram")):
        if name in images:
            sections.append(f'<img alt="{alt}" src="{images[name]}">')
    if "reliability" in images:
        ce = (metrics.get("errors") or {}).get("calibration_error")
        sections.append(f'<p class="note">Bars on the dashed line mean the model is right as often as it says. '
                        f"Average gap: {_pct(ce)} (expected calibration error).</p>")
    sections += ["<h2>Errors the model makes</h2>", _errors_section(metrics, q)]
    return sections


def _people_section(metrics: dict[str, Any], q: _Quality, sim: bool) -> tuple[list[str], bool]:
    """The people: their scores on gold, their agreement and the time the pre-labels saved; and whether a
    row of the table is a simulated annotator."""
    is_audio = q.is_audio
    sections: list[str] = []
    table_html, sim_rows = _annotators(metrics, q)
    sections += ["<h2>The people</h2>", table_html]
    agr = metrics.get("agreement") or {}
    if is_audio:
        agr_rows = [["clips transcribed by 2+ annotators", agr.get("clips_with_overlap")],
                    ["mean WER between two annotators of the same clip", _pct(agr.get("pairwise_wer"))]]
    else:
        agr_rows = [["items labelled by 2+ annotators", agr.get("tasks_with_overlap")],
                    ["percent agreement", _pct(agr.get("percent_agreement"))],
                    ["Fleiss' kappa", None if agr.get("fleiss_kappa") is None else f"{agr['fleiss_kappa']:.3f}"],
                    ["Krippendorff's alpha", None if agr.get("krippendorff_alpha") is None
                     else f"{agr['krippendorff_alpha']:.3f}"]]
    sections += ["<h3>Agreement between annotators</h3>", _table(["", "value"], agr_rows, {1}),
                 "" if is_audio else '<p class="note">Kappa and alpha: 1 is perfect agreement, 0 is what chance '
                 "alone would give.</p>",
                 "<h3>Time saved by the model's pre-labels</h3>", _people_time(metrics, sim)]
    return sections, sim_rows


def write_client_report(job_dir: str | Path, out: str | Path, *, client: str | None = None,
                        pdf: bool = False) -> Path:
    """Write the client report (HTML) with its ``.metrics.json`` and ``.plots.json`` (see :func:`report_paths`).

    Args:
        job_dir: The job directory.
        out: The HTML file to write (e.g. ``report.html``; the other files take its name).
        client: The client's name, shown in the title.
        pdf: Also print the page to a PDF with headless Chromium (:func:`write_pdf`).

    Raises:
        ReportError: Not a job directory, or ``pdf`` without Chromium (the message says what to install).
    """
    job = Job(Path(job_dir))
    if not job.read_manifest():
        raise ReportError(f"{job.root} is not a job directory (no job.json); give the folder `kdh prelabel` wrote")
    paths = report_paths(out)
    if paths["html"].suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--out {paths['html']}: give an .html file name (e.g. report.html)")
    metrics = job_metrics(job)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    metrics["report"] = {"generated_at": generated, "html": paths["html"].name, "plots": paths["plots"].name}
    q = _Quality(metrics["metric"] == "wer")
    images, plot_data = _plots(job, metrics, q)
    paths["html"].parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths["metrics"], metrics)
    write_json_atomic(paths["plots"], plot_data)
    paths["html"].write_text(_page(job, metrics, images, plot_data, client, paths, generated), encoding="utf-8")
    logger.info("Client report written to %s (figures: %s)", paths["html"], paths["metrics"].name)
    if pdf:
        write_pdf(paths["html"], paths["pdf"])
    return paths["html"]


def find_chromium() -> str | None:
    """The headless Chromium on this machine (``make system-deps`` installs it), or ``None``."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def write_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout_s: float = 120.0) -> Path:
    """Print an HTML page to PDF with headless Chromium (A4, no browser header or footer).

    Raises:
        ReportError: Chromium is missing, fails, or writes no PDF.
    """
    chromium = find_chromium()
    if chromium is None:
        raise ReportError("a PDF needs Chromium, which is not installed: run `make system-deps` (or "
                          "`apt-get install chromium`), or leave out --pdf")
    pdf_path = Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="kdh-chromium-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
               "--no-pdf-header-footer", f"--print-to-pdf={pdf_path.resolve()}", Path(html_path).resolve().as_uri()]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not print {html_path} within {timeout_s:.0f} s") from None
    if run.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        raise ReportError(f"Chromium could not print {html_path} to PDF (exit {run.returncode}): "
                          f"{run.stderr.strip()[-300:]}")
    logger.info("PDF written to %s", pdf_path)
    return pdf_path
