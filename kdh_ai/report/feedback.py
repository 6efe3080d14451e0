"""One trainee's feedback page: how they do on gold, their most frequent errors, their speed, what to try.

``kdh feedback JOB_DIR --annotator EMAIL`` writes a self-contained HTML page for one annotator (it shows their
own work only, so it can be handed to them):

* accuracy on gold items over time (WER for transcription), with a plot;
* their most frequent errors: for transcription, the top substitutions and deletions with examples and the
  time in the clip where the word is said (from the model's word timestamps); for classification, the labels
  they confuse, with example texts;
* their speed against the team median (seconds per item; for audio, seconds of work per second of audio);
* concrete hints derived from the above.
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdh_ai import quality
from kdh_ai.answers import annotations_table, gold_answers
from kdh_ai.errors import InvalidInputError
from kdh_ai.job import Job
from kdh_ai.report.style import PAGE_CSS as _CSS
from kdh_ai.report.style import figure_png as _png
from kdh_ai.report.snippets import DIFF_CSS, clip_wav_b64, diff_html, word_time

__all__ = ["FeedbackError", "PAID_WORK_ACCURACY", "PAID_WORK_WER", "write_feedback"]

PAID_WORK_WER = 0.10
"""The WER on gold that paid transcription work at the hub asks for (the qualification's default pass mark)."""
PAID_WORK_ACCURACY = 0.90
"""The accuracy on gold that paid classification work asks for."""

logger = logging.getLogger(__name__)


class FeedbackError(InvalidInputError):
    """No page can be written for this annotator (the message says why and what to do)."""


def _transcription_errors(mine: pd.DataFrame, gold: dict[str, str], preds: dict[str, Any]) -> tuple[
        pd.DataFrame, list[dict[str, Any]]]:
    import jiwer

    refs = [gold[t] for t in mine["task"]]
    hyps = list(mine["answer"])
    top = quality.top_confusions(refs, hyps, n=8)
    examples = []
    for task, ref, hyp in zip(mine["task"], refs, hyps):
        r, h = quality.normalize_text(ref), quality.normalize_text(hyp)
        if not r:
            continue
        out = jiwer.process_words(r, h or "")
        rw, hw = out.references[0], out.hypotheses[0]
        for chunk in out.alignments[0]:
            if chunk.type in ("substitute", "delete"):
                said = " ".join(rw[chunk.ref_start_idx:chunk.ref_end_idx])
                typed = " ".join(hw[chunk.hyp_start_idx:chunk.hyp_end_idx]) if chunk.type == "substitute" else ""
                unit = preds.get(task)
                at_s = word_time(unit, rw, chunk.ref_start_idx)
                if at_s is None and unit is not None and unit.segment is not None:
                    at_s = float(unit.payload.get("start") or 0.0)  # a segment: play from its start
                examples.append({"item": task, "kind": "substitution" if typed else "deletion", "said": said,
                                 "typed": typed, "at_s": at_s})
    return top, examples


def _hints(task_kind: str, errors: pd.DataFrame | None, rate: float | None, speed_ratio: float | None) -> list[str]:
    hints = []
    if errors is not None and not errors.empty:
        kinds = errors.groupby("kind")["count"].sum()
        total = kinds.sum()
        if task_kind == "audio":
            if kinds.get("deletion", 0) > 0.4 * total:
                hints.append("Most of your errors are missing words. Replay each clip to the end and listen for "
                             "short words (a, the, of, and) that are easy to drop.")
            if kinds.get("substitution", 0) > 0.4 * total:
                hints.append("Most of your errors are wrong words. When unsure, replay the few seconds around the "
                             "time shown below, and check names and numbers against the guidelines.")
            if kinds.get("insertion", 0) > 0.3 * total:
                hints.append("You add words that are not said. Type only what you hear, even if the sentence "
                             "sounds incomplete.")
        else:
            a, b = errors.iloc[0]["reference"], errors.iloc[0]["hypothesis"]
            hints.append(f"You most often choose '{b}' where the answer is '{a}'. Re-read the guideline "
                         "definitions of these two labels and compare the examples below.")
    if speed_ratio is not None and rate is not None:
        if speed_ratio < 0.7 and rate > 0.05:
            hints.append("You work faster than the team but make more errors: slow down a little, quality pays.")
        elif speed_ratio > 1.5 and (rate or 0) <= 0.05:
            hints.append("Your quality is good; you are slower than the team. Use keyboard shortcuts and trust "
                         "the pre-label where the model is confident.")
    if not hints:
        hints.append("Keep going: no clear pattern in your errors yet.")
    return hints


def _over_time_plot(errs: np.ndarray, audio: bool, metric: str) -> str:
    """The annotator's cumulative error rate (accuracy for labels) on gold, in time order, as a PNG data URL."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cum = np.cumsum(errs[:, 0]) / np.maximum(np.cumsum(errs[:, 1]), 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    shown_curve = cum if audio else 1 - cum
    ax.plot(range(1, len(cum) + 1), shown_curve, marker="o")
    bar = PAID_WORK_WER if audio else PAID_WORK_ACCURACY
    ax.axhline(bar, color="tab:red", linestyle="--", linewidth=1)
    ax.annotate(f"paid work: {'at most' if audio else 'at least'} {bar:.0%}", (1, bar), color="tab:red", fontsize=8,
                va="bottom")
    # the axis starts at zero and never goes below it, so a flat result does not look like a steep change
    ax.set_ylim(0, max(float(np.max(shown_curve)) * 1.15, bar * 1.5) if audio else 1.05)
    ax.set_xlim(0.5, max(len(cum), 2) + 0.5)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("gold items answered (in time order)")
    ax.set_ylabel(f"{metric} so far")
    ax.set_title(f"{metric} on gold over time")
    return _png(fig)


def _label_errors(mine: pd.DataFrame, gold: dict[str, Any], items: dict[str, Any]
                  ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A labeller's most frequent confusions on gold, and every wrong answer as an example."""
    wrong = mine[[a != gold[t] for t, a in zip(mine["task"], mine["answer"])]]
    counts = Counter(zip([gold[t] for t in wrong["task"]], wrong["answer"]))
    top = pd.DataFrame([{"kind": "confusion", "reference": a, "hypothesis": b, "count": c}
                        for (a, b), c in counts.most_common(8)], columns=["kind", "reference", "hypothesis", "count"])
    examples = [{"item": t, "kind": "confusion", "said": gold[t], "typed": a,
                 "text": (items.get(t, {}).get("text") or "")[:200]} for t, a in zip(wrong["task"], wrong["answer"])]
    return top, examples


def _speed(table: pd.DataFrame, annotator: str) -> tuple[Any, float | None]:
    """The annotator's median time per item and the team's median of medians (``None`` without timings)."""
    lead = pd.to_numeric(table["lead_time_s"], errors="coerce")
    team = table.assign(lead=lead).groupby("worker")["lead"].median()
    return team.get(annotator), float(team.median()) if team.notna().any() else None


def _example_rows(examples: list[dict[str, Any]], audio: bool, items: dict[str, Any], gold: dict[str, Any],
                  answers: dict[str, Any]) -> str:
    """Table rows of the first 15 examples; for audio, where in the clip, the sentence's diff and the audio."""

    def where(e: dict[str, Any], k: int) -> str:
        if not audio:
            return html.escape(e.get("text", "") or "")
        at = f"{e['at_s']:.1f} s" if e.get("at_s") is not None else ""
        b64 = clip_wav_b64(items.get(e["item"], {}).get("path"), 0.0, e.get("at_s")) if k < 6 else None
        player = f'<br><audio controls preload="none" src="data:audio/wav;base64,{b64}"></audio>' if b64 else ""
        sentence = diff_html(quality.normalize_text(gold[e["item"]]), quality.normalize_text(answers[e["item"]] or ""))
        return f"{at}<br><span class=diff>{sentence}</span>{player}"

    return "".join(
        f"<tr><td>{html.escape(str(e['item']))}</td><td>{e['kind']}</td><td>{html.escape(e['said'])}</td>"
        f"<td>{html.escape(e['typed'] or '(nothing)')}</td><td>{where(e, k)}</td></tr>"
        for k, e in enumerate(examples[:15]))


def write_feedback(job_dir: str | Path, annotator: str, out: str | Path) -> Path:
    """Write one annotator's feedback page (HTML).

    Raises:
        FeedbackError: Unknown annotator (the message lists the known ones), or no gold answers from them.
    """
    job = Job(Path(job_dir))
    task = job.task_type()
    table = annotations_table(job)
    known = sorted(table["worker"].unique()) if not table.empty else []
    if annotator not in known:
        raise FeedbackError(f"unknown annotator {annotator!r} in {job.root}; known: {', '.join(known) or 'none'} "
                            "(run `kdh pull` first if they annotated recently)")
    gold = gold_answers(job)
    mine_all = table[table["worker"] == annotator]
    mine = mine_all[mine_all["task"].isin(gold)].sort_values("created_at")
    if mine.empty:
        raise FeedbackError(f"{annotator} has answered no gold item yet, so their accuracy is unknown; push with "
                            "gold (kdh push --gold ...) and pull again")
    errs = task.item_errors(list(mine["answer"]), [gold[t] for t in mine["task"]])
    rate = float(errs[:, 0].sum() / errs[:, 1].sum()) if errs[:, 1].sum() else None
    audio = task.item_kind == "audio"
    metric = "WER" if audio else "accuracy"
    shown = (lambda e: f"{100 * e:.1f}%") if audio else (lambda e: f"{100 * (1 - e):.1f}%")
    over_time = _over_time_plot(errs, audio, metric)
    preds = job.units()  # answers are per unit: a clip, or a work segment of a long recording
    if audio:
        top, examples = _transcription_errors(mine, gold, preds)
    else:
        top, examples = _label_errors(mine, gold, job.current_items())
    my_speed, team_median = _speed(table, annotator)
    ratio = float(my_speed / team_median) if my_speed and team_median else None
    hints = _hints(task.item_kind, top, rate, ratio)
    items = job.current_items()
    paths = {k: {"path": items.get(u.item_id, {}).get("path") or u.source} for k, u in preds.items()}
    ex_rows = _example_rows(examples, audio, {**items, **paths}, gold, dict(zip(mine["task"], mine["answer"])))
    top_rows = "".join(f"<tr><td>{r.kind}</td><td>{html.escape(str(r.reference))}</td>"
                       f"<td>{html.escape(str(r.hypothesis))}</td><td>{r.count}</td></tr>" for r in top.itertuples())
    speed = (f"Your median time per item is {my_speed:.0f} s; the team's median is {team_median:.0f} s."
             if my_speed and team_median else "Not enough timing data yet.")
    from kdh_ai.report.metrics import simulated_annotators

    simulated = " (SIMULATED: a script answered as this account)" if annotator in simulated_annotators(job) else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Feedback</title>
<style>{_CSS} {DIFF_CSS}</style></head><body><main>
<h1>Your feedback</h1><div class="sub">{html.escape(annotator)}{simulated} · job {html.escape(job.root.name)} · {task.name}</div>
<div class="cards"><div class="card"><div class="v">{shown(rate) if rate is not None else 'n/a'}</div>
<div class="l">your {metric} on {len(mine)} gold items</div></div>
<div class="card"><div class="v">{len(mine_all)}</div><div class="l">items you answered</div></div>
<div class="card"><div class="v">{f'{ratio:.1f}x' if ratio else 'n/a'}</div><div class="l">your time per item
against the team median</div></div></div>
<h2>What to try next</h2><ul>{''.join(f'<li>{html.escape(h)}</li>' for h in hints)}</ul>
<h2>Over time</h2><img alt="over time" src="{over_time}">
<h2>Your most frequent errors</h2>
<table><tr><th>kind</th><th>correct</th><th>you wrote</th><th>times</th></tr>{top_rows or '<tr><td colspan=4>no errors on gold: well done</td></tr>'}</table>
<h3>Examples</h3><table><tr><th>item</th><th>kind</th><th>correct</th><th>you wrote</th>
<th>{'where in the clip, the sentence (red: said, green: you wrote) and the audio there' if audio else 'text'}</th></tr>{ex_rows or '<tr><td colspan=5>none</td></tr>'}</table>
<h2>Speed</h2><p>{speed}</p>
<p class="note">Measured on gold items: items whose correct answer the hub knows, mixed among your tasks. Paid
{task.name} work at the hub asks for {'a WER of at most ' + format(PAID_WORK_WER, '.0%') if audio else 'an accuracy of at least ' + format(PAID_WORK_ACCURACY, '.0%')} on gold.
{_guideline_note(job)}
{'' if len(mine) >= 10 else f'<b>Only {len(mine)} gold answers so far: too few to judge; the figure will settle as more come in.</b>'}</p>
</main></body></html>"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _guideline_note(job: Job) -> str:
    """The guideline the job's people worked to (recorded by ``kdh push``), as a sentence of the page."""
    from kdh_ai.labelstudio.push import read_ls_state

    g = read_ls_state(job).get("guidelines") or {}
    if not g:
        return "No guideline was shown in the labelling tool for this job."
    name = g.get("label") or g.get("file")
    return f"Measured against the guideline shown in the labelling tool: {html.escape(str(name))}."
