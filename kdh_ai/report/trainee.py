"""One trainee's progress across jobs: ``kdh trainee EMAIL --jobs JOB...``.

A self-contained HTML page for one person (it shows their own work only, so it can be handed to them):

* gold accuracy (classification) or WER (transcription) **per job, over time**, each with a 95% Wilson
  interval, on an axis that starts at zero and never goes below it;
* a warning wherever there are too few gold answers to judge;
* speed against the team median of each job;
* their most frequent error types across jobs, with examples: the sentence with the difference highlighted,
  and for audio a player that starts at the error (a few seconds cut from the clip, embedded in the page);
* qualification status (from the trainee ledger, :mod:`kdh_ai.qualify`);
* the next lesson to take, from the errors they make most.
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kdh_ai import quality
from kdh_ai.answers import annotations_table, gold_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.report.style import PAGE_CSS as _CSS
from kdh_ai.report.style import figure_png as _png
from kdh_ai.report.snippets import DIFF_CSS, clip_wav_b64, diff_html, word_time

__all__ = ["JobProgress", "MIN_GOLD", "TraineeError", "trainee_progress", "write_trainee_page"]

logger = logging.getLogger(__name__)

MIN_GOLD = 10
"""Fewer gold answers than this in a job: the page says the figure is too uncertain to judge."""

_LESSONS = {
    "deletion": "Notebook 01, 'Your turn: transcribe three clips by ear': listen to each clip to its very end "
                "(guideline §8), and use [inaudible] instead of leaving words out (§4).",
    "substitution": "Guideline §2 and §4, then notebook 01's 'write it as the guideline asks': replay unclear "
                    "words three times and check names and numbers.",
    "insertion": "Guideline §1 (clean verbatim): type only the words that are spoken; notebook 01's exercises.",
    "number": "Guideline §3 (numbers) and the exercise 'write it as the guideline asks' in notebook 01.",
    "confusion": "Notebook 05 and the classification guideline: re-read the definitions of the two labels you "
                 "confuse most, with their borderline examples.",
    "qualify": "Take the qualification test for this task type (`kdh qualify EMAIL --task ...`, ask your lead).",
    "none": "No clear pattern in your errors: keep going, and ask your lead for the next qualification level.",
}


class TraineeError(InvalidInputError):
    """No page can be written (the message says why and what to do)."""


@dataclass
class JobProgress:
    """One job's figures for the trainee.

    Attributes:
        job: The job directory's name.
        task: Task type.
        when: When the trainee's first answer in it was made (ISO time), for ordering.
        gold_n: Gold items the trainee answered.
        rate: Error rate on gold (WER, or 1 - accuracy).
        low: Lower end of the 95% Wilson interval of the error rate.
        high: Upper end.
        speed_ratio: The trainee's median seconds per item over the team median (``None`` without timings).
        errors: Error examples: ``kind``, ``item``, ``said``, ``typed``, ``at_s``, ``path``, ``reference``,
            ``answer``.
    """

    job: str
    task: str
    when: str
    gold_n: int
    rate: float | None
    low: float | None
    high: float | None
    speed_ratio: float | None
    errors: list[dict[str, Any]] = field(default_factory=list)


def _job_progress(job_dir: Path, email: str) -> JobProgress | None:
    import jiwer

    job = Job(job_dir)
    task = job.task_type()
    table = annotations_table(job)
    mine_all = table[table["worker"].str.lower() == email.lower()] if not table.empty else table
    if mine_all.empty:
        return None
    gold = gold_answers(job)
    mine = mine_all[mine_all["task"].isin(gold) & mine_all["answer"].notna()]
    when = str(mine_all["created_at"].dropna().min() or job.read_manifest().get("created_at") or "")
    rate = low = high = None
    errors: list[dict[str, Any]] = []
    if not mine.empty:
        errs = task.item_errors(list(mine["answer"]), [gold[t] for t in mine["task"]])
        wrong, size = float(errs[:, 0].sum()), float(errs[:, 1].sum())
        if size:
            rate = wrong / size
            n = int(round(size))
            lo, hi = quality.wilson_interval(max(0, n - int(round(min(wrong, size)))), n)
            low, high = 1 - hi, 1 - lo
        items = job.current_items()
        preds = job.units() if task.item_kind == "audio" else {}  # a clip, or a work segment of a recording
        items = {**items, **{k: {"path": items.get(u.item_id, {}).get("path") or u.source}
                             for k, u in preds.items() if u.segment is not None}}
        for t, ans in zip(mine["task"], mine["answer"]):
            ref = gold[t]
            if task.item_kind == "audio":
                r, h = quality.normalize_text(ref), quality.normalize_text(ans)
                if not r or r == h:
                    continue
                out = jiwer.process_words(r, h or "")
                rw, hw = out.references[0], out.hypotheses[0]
                for chunk in out.alignments[0]:
                    if chunk.type == "equal":
                        continue
                    said = " ".join(rw[chunk.ref_start_idx:chunk.ref_end_idx])
                    typed = " ".join(hw[chunk.hyp_start_idx:chunk.hyp_end_idx])
                    kind = {"substitute": "substitution", "delete": "deletion", "insert": "insertion"}[chunk.type]
                    if any(c.isdigit() for c in said + typed):
                        kind = "number"
                    # where in the clip: the model's time stamp of that word where it has one, else the share
                    # of the sentence before the error
                    at_s = word_time(preds.get(t), rw, min(chunk.ref_start_idx, len(rw) - 1))
                    frac = chunk.ref_start_idx / max(len(rw), 1)
                    errors.append({"kind": kind, "item": t, "said": said, "typed": typed, "frac": frac, "at_s": at_s,
                                   "path": items.get(t, {}).get("path"), "reference": r, "answer": h or ""})
            elif ans != ref:
                errors.append({"kind": "confusion", "item": t, "said": ref, "typed": ans,
                               "text": (items.get(t, {}).get("text") or "")[:240]})
    lead = pd.to_numeric(table["lead_time_s"], errors="coerce")
    team = table.assign(lead=lead).groupby(table["worker"].str.lower())["lead"].median()
    mine_speed = team.get(email.lower())
    team_median = float(team.median()) if team.notna().any() else None
    ratio = float(mine_speed / team_median) if mine_speed and team_median else None
    return JobProgress(job=job.root.name, task=task.name, when=when, gold_n=int(len(mine)), rate=rate, low=low,
                       high=high, speed_ratio=ratio, errors=errors)


def trainee_progress(email: str, jobs: list[str | Path]) -> list[JobProgress]:
    """The trainee's figures in each job where they answered something, oldest first.

    Raises:
        TraineeError: A path is not a job directory, or the trainee answered nothing in any of the jobs.
    """
    out = []
    for j in jobs:
        p = Path(j)
        if not (p / "job.json").is_file():
            raise TraineeError(f"{p} is not a job directory (no job.json); give the folders of pulled jobs")
        prog = _job_progress(p, email)
        if prog is not None:
            out.append(prog)
    if not out:
        raise TraineeError(f"{email} answered nothing in these {len(jobs)} jobs (run `kdh pull` on them first, "
                           "and check the e-mail)")
    return sorted(out, key=lambda p: p.when)


def _plot(progress: list[JobProgress], metric: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    xs = list(range(len(progress)))
    for i, p in enumerate(progress):
        if p.rate is None:
            continue
        value = p.rate if metric == "WER" else 1 - p.rate
        lo, hi = (p.low, p.high) if metric == "WER" else (1 - (p.high or 0), 1 - (p.low or 0))
        color = "tab:blue" if p.gold_n >= MIN_GOLD else "tab:gray"
        ax.errorbar([i], [value], yerr=[[max(0.0, value - lo)], [max(0.0, hi - value)]], fmt="o", color=color,
                    capsize=4)
        ax.annotate(f"{value:.0%}\n(n={p.gold_n})", (i, value), textcoords="offset points", xytext=(10, -4),
                    fontsize=8)
    bar = 0.10 if metric == "WER" else 0.90  # what paid work asks (the qualification's default pass mark)
    ax.axhline(bar, color="tab:red", linestyle="--", linewidth=1)
    ax.annotate(f"paid work: {'at most' if metric == 'WER' else 'at least'} {bar:.0%}", (len(progress) - 0.45, bar),
                color="tab:red", fontsize=8, va="bottom")
    ax.set_xticks(xs, [p.job[:18] for p in progress], rotation=15, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(progress) - 0.5 + 0.6)
    top = max([p.high or 0 for p in progress] + [0.10])
    ax.set_ylim(0, top * 1.15 if metric == "WER" else 1.05)  # never below zero
    ax.set_ylabel(f"{metric} on gold")
    ax.set_title(f"{metric} on gold per job, with 95% intervals (grey: fewer than {MIN_GOLD} gold answers)",
                 fontsize=9)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    return _png(fig)


def write_trainee_page(email: str, jobs: list[str | Path], out: str | Path, *, ledger: Any = None) -> Path:
    """Write the trainee's progress page across ``jobs`` (HTML).

    Args:
        email: The trainee's login e-mail.
        jobs: Job directories (pulled); jobs where they answered nothing are left out.
        out: The HTML file to write.
        ledger: The trainee ledger (default: the hub's, see :class:`kdh_ai.qualify.TraineeLedger`).

    Raises:
        TraineeError: See :func:`trainee_progress`.
    """
    from kdh_ai.qualify import TraineeLedger

    progress = trainee_progress(email, jobs)
    ledger = ledger or TraineeLedger()
    tasks = sorted({p.task for p in progress})
    sections = []
    all_errors: list[dict[str, Any]] = []
    for task_name in tasks:
        mine = [p for p in progress if p.task == task_name]
        metric = "WER" if task_name == "transcription" else "accuracy"
        rows = []
        for p in mine:
            if p.rate is None:
                fig, interval = "no gold answered", ""
            else:
                v = p.rate if metric == "WER" else 1 - p.rate
                lo, hi = (p.low, p.high) if metric == "WER" else (1 - p.high, 1 - p.low)
                fig, interval = f"{v:.1%}", f"{lo:.1%} – {hi:.1%}"
            warn = "" if p.gold_n >= MIN_GOLD else f'<span class="few-gold">too few gold answers to judge ({p.gold_n})</span>'
            speed = f"{p.speed_ratio:.2f}x" if p.speed_ratio else "n/a"
            rows.append(f"<tr><td>{html.escape(p.job)}</td><td>{html.escape(p.when[:10])}</td><td>{p.gold_n}</td>"
                        f"<td>{fig}</td><td>{interval}</td><td>{speed}</td><td>{warn}</td></tr>")
        st = ledger.status(email, task_name)
        qual = ("not taken yet" if st is None else
                f"{'passed' if st.passed else 'not passed' if st.passed is False else 'incomplete'} on "
                f"{st.at[:10]} ({'WER' if st.metric == 'wer' else 'accuracy'} {st.score:.1%}, pass mark "
                f"{st.pass_mark:.0%})" if st.score is not None else "started, not answered yet")
        sections.append(f"""<h2>{html.escape(task_name.capitalize())}</h2>
<p>Qualification: <b>{html.escape(qual)}</b></p>
<img alt="{metric} per job" src="{_plot(mine, metric)}">
<table><tr><th>job</th><th>date</th><th>gold answered</th><th>your {metric}</th><th>95% interval</th>
<th>time per item vs team median</th><th></th></tr>{''.join(rows)}</table>""")
        all_errors += [dict(e, task=task_name) for p in mine for e in p.errors]
    kinds = Counter(e["kind"] for e in all_errors)
    examples_html = []
    shown_audio = 0
    for kind, count in kinds.most_common(4):
        ex = [e for e in all_errors if e["kind"] == kind][:3]
        items = []
        for e in ex:
            if e["task"] == "transcription":
                player = ""
                if shown_audio < 6 and (b64 := clip_wav_b64(e.get("path"), e["frac"], e.get("at_s"))):
                    shown_audio += 1
                    player = f'<audio controls preload="none" src="data:audio/wav;base64,{b64}"></audio>'
                items.append(f"<li><b>{html.escape(e['item'])}</b>: {diff_html(e['reference'], e['answer'])}"
                             f"<br>{player}</li>")
            else:
                items.append(f"<li><b>{html.escape(e['item'])}</b>: you chose <b>{html.escape(str(e['typed']))}</b>,"
                             f" the answer is <b>{html.escape(str(e['said']))}</b><br><i>{html.escape(e['text'])}</i></li>")
        examples_html.append(f"<h3>{kind} ({count})</h3><ul>{''.join(items)}</ul>")
    unqualified = [t for t in tasks if not ledger.is_qualified(email, t)]
    qualify = _LESSONS["qualify"].replace("EMAIL --task ...", f"{email} --task {unqualified[0]}") if unqualified else ""
    lesson = _LESSONS[kinds.most_common(1)[0][0]] if kinds else (qualify or _LESSONS["none"])
    if unqualified and kinds:
        lesson += " Then: " + qualify
    from kdh_ai.job import Job
    from kdh_ai.report.metrics import simulated_annotators

    simulated = " (SIMULATED: a script answered as this account)" if any(
        email in simulated_annotators(Job(Path(j))) for j in jobs) else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Progress of {html.escape(email)}</title>
<style>{_CSS} {DIFF_CSS}
.few-gold{{color:#8a5300;font-size:.9em}}</style></head><body><main>
<h1>Your progress</h1><div class="sub">{html.escape(email)}{simulated} · {len(progress)} job(s)</div>
<h2>Your next lesson</h2><p>{html.escape(lesson)}</p>
{''.join(sections)}
<h2>Your most frequent errors</h2>
<p class="note">Red struck words: said but missing or wrong in your answer; green: what you wrote instead.</p>
{''.join(examples_html) or '<p>No errors on gold: well done.</p>'}
<p class="note">Measured on gold items (items whose correct answer the hub knows, mixed among your tasks). An
interval shows how sure the figure is: with few gold answers it is wide.</p>
</main></body></html>"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
