"""Routing on units: the work segments of long recordings are routed one by one (issue 15).

The jobs are synthetic (as in ``test_routing.py``: transcripts whose true errors are known), but their long
recordings carry ``payload["work_segments"]`` as the engine writes them, and the people's answers are written as
``kdh pull`` writes them, with the segment they answer. Simulated people, clearly labelled as such.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kdh_ai.answers import annotations_table, human_answers
from kdh_ai.job import Job
from kdh_ai.records import Prediction, Segment, unit_key
from kdh_ai.routing import current_roles, evidence_plan, plan_calibration, route
from kdh_ai.tasks.transcription import TranscriptionTask
from test_routing import VOCAB, _corrupt


def _segment_words(words: list[str], start: float) -> list[dict]:
    return [{"word": f" {w}", "start": round(start + 0.4 * i, 3), "end": round(start + 0.4 * i + 0.3, 3),
             "probability": 0.9} for i, w in enumerate(words)]


def build_segmented_job(root: Path, *, long_files: int = 8, segments: int = 40, short: int = 20, seed: int = 0,
                        slope: float = 0.9, config_hash: str = "h", gold_short: int = 10) -> dict[str, str]:
    """Long recordings (``segments`` work segments each) and short clips; the model's errors grow as the
    confidence of the unit falls. Returns the reference of every unit by unit key."""
    rng = np.random.default_rng(seed)
    job = Job(root)
    refs: dict[str, str] = {}
    preds, items = [], []

    def draw() -> tuple[str, str, float]:
        words = list(rng.choice(VOCAB, size=int(rng.integers(15, 40))))
        conf = float(rng.beta(5, 1.5))
        k = int(rng.binomial(len(words), min(1.0, slope * (1 - conf) ** 1.5)))
        return " ".join(words), " ".join(_corrupt(words, k, rng)), conf

    for f in range(long_files):
        item_id = f"talk{f:02d}"
        segs, texts = [], []
        for s in range(segments):
            ref, hyp, conf = draw()
            refs[unit_key(item_id, s)] = ref
            segs.append(Segment(index=s, start=15.0 * s, end=15.0 * (s + 1), text=hyp, confidence=conf,
                                words=_segment_words(hyp.split(), 15.0 * s)).to_dict())
            texts.append(hyp)
        preds.append(Prediction(item_id=item_id, task="transcription", text=" ".join(texts),
                                confidence=float(np.mean([s["confidence"] for s in segs])), status="ok",
                                model={"name": "sim", "version": "1"}, config_hash=config_hash, source=None,
                                sha256="x", payload={"duration_s": 15.0 * segments, "work_segments": segs}
                                ).to_dict())
        items.append({"item_id": item_id, "path": f"/audio/{item_id}.wav", "reference": None})
    for i in range(short):
        item_id = f"clip{i:03d}"
        ref, hyp, conf = draw()
        refs[item_id] = ref
        preds.append(Prediction(item_id=item_id, task="transcription", text=hyp, confidence=conf, status="ok",
                                model={"name": "sim", "version": "1"}, config_hash=config_hash, source=None,
                                sha256="x", payload={"duration_s": 8.0}).to_dict())
        items.append({"item_id": item_id, "path": f"/audio/{item_id}.wav", "reference": ref})
    job.predictions.append(preds)
    job.items.append(items)
    gold = sorted(k for k in refs if k.startswith("clip"))[:gold_short]
    job.log("gold").append({"item_id": k, "answer": refs[k], "source": "test"} for k in gold)
    job.update_manifest(task="transcription", config_hash=config_hash)
    return refs


def annotate_units(job: Job, answers: dict[str, str], worker: str, start: int = 0) -> None:
    """Simulated answers per unit, as `kdh pull` writes them (a segment's answer carries its segment)."""
    units = job.units()
    job.log("annotations").append(
        {"item_id": units[k].item_id, "segment": units[k].segment, "annotation_id": start + i,
         "annotator_email": worker, "answer": v, "skipped": False, "deleted": False, "gold": False,
         "lead_time_s": 10.0, "created_at": f"2026-11-28T10:{i % 60:02d}:00"}
        for i, (k, v) in enumerate(answers.items()))


def people_answers(refs: dict[str, str], ids: list[str], *, wer: float, seed: int) -> dict[str, str]:
    """Simulated people's answers with about ``wer`` of their words wrong."""
    rng = np.random.default_rng(seed)
    return {k: " ".join(_corrupt(refs[k].split(), int(rng.binomial(len(refs[k].split()), wer)), rng)) for k in ids}


def delivered_wer(job: Job, refs: dict[str, str], human_wer: float) -> float:
    """Expected WER of the delivered words: the model's errors on auto-accepted units, the people's rate on
    human and audit units; gold and (reviewed) calibration units exact."""
    roles, units = current_roles(job), job.units()
    auto = [k for k, r in roles.items() if r == "auto_accept"]
    e = TranscriptionTask().item_errors([units[k].text for k in auto], [refs[k] for k in auto])
    words = sum(len(v.split()) for v in refs.values())
    human_words = sum(len(refs[k].split()) for k, r in roles.items() if r in ("human", "audit"))
    return float((e[:, 0].sum() + human_wer * human_words) / words)


def _route_batch(root: Path, refs: dict[str, str], *, target: float, prior: tuple = (), size: float = 0.25,
                 min_items: int = 30) -> object:
    job = Job(root)
    plan_calibration(root, size=size, min_items=min_items, seed=2)
    roles = current_roles(job)
    cal = [k for k, r in roles.items() if r == "calibration"]
    annotate_units(job, {k: refs[k] for k in cal}, "trusted.reviewer@example.org")
    gold = [k for k, r in roles.items() if r == "gold"]
    annotate_units(job, people_answers(refs, gold, wer=0.02, seed=5), "simulated.annotator@example.org", 50_000)
    return route(root, target=target, audit_rate=0.05, prior=prior, calibration_reviewed=True)


def test_segments_are_routed_one_by_one_and_the_batch_meets_the_target(tmp_path: Path) -> None:
    refs = build_segmented_job(tmp_path / "job")
    job = Job(tmp_path / "job")
    assert len(job.units()) == 8 * 40 + 20 and len(job.current_predictions()) == 8 + 20
    result = _route_batch(job.root, refs, target=0.10)
    roles = job.roles()
    assert set(roles) == set(refs), "every unit (segment or clip) has a role, and no long file as a whole"
    seg_roles = [r for k, r in roles.items() if "#" in k]
    assert all(r.segment is not None and r.key == unit_key(r.item_id, r.segment) for r in seg_roles)
    assert all(r.segment is None for k, r in roles.items() if "#" not in k)
    # Only some segments of each long recording go to people: the routing is per segment, not per file.
    for f in range(8):
        mine = [r.role for r in seg_roles if r.item_id == f"talk{f:02d}"]
        assert "auto_accept" in mine and any(r in ("human", "calibration", "audit") for r in mine), mine
    assert result.reachable and result.error_upper <= 0.10
    assert result.counts["auto_accept"] > 100
    assert delivered_wer(job, refs, 0.02) <= 0.10
    # Low-confidence segments are the ones sent to people at the threshold.
    units = job.units()
    human = [units[k].confidence for k, r in roles.items() if r.role == "human" and r.step == "route"]
    auto = [units[k].confidence for k, r in roles.items() if r.role == "auto_accept"]
    assert human and max(human) < min(auto)


def test_silent_segments_count_as_right_when_left_empty(tmp_path: Path) -> None:
    """A wordless segment (a long pause) that the model leaves empty is delivered exact: routing's bound counts
    it as no error (an empty reference used to count as a 100 % error), so silence is auto-accepted."""
    refs = build_segmented_job(tmp_path / "job", slope=0.9)
    job = Job(tmp_path / "job")
    preds = job.current_predictions()
    lines = []
    for item_id, p in preds.items():  # every 4th segment of each recording becomes a silent pause
        segs = p.payload.get("work_segments")
        if not segs:
            continue
        for s in segs[::4]:
            s.update(text="", words=[], status="no_speech", confidence=0.98, speech_prob_max=0.02)
            refs[unit_key(item_id, s["index"])] = ""
        lines.append(dataclasses.replace(p, payload=dict(p.payload, work_segments=segs)).to_dict())
    job.predictions.append(lines)
    result = _route_batch(job.root, refs, target=0.10)
    roles, units = job.roles(), job.units()
    silent = [k for k, u in units.items() if u.status == "no_speech"]
    assert len(silent) == 8 * 10
    assert sum(roles[k].role == "auto_accept" for k in silent) >= 0.8 * sum(roles[k].role != "calibration"
                                                                            for k in silent)
    assert result.reachable and delivered_wer(job, refs, 0.02) <= 0.10


def test_answers_are_keyed_by_unit(tmp_path: Path) -> None:
    refs = build_segmented_job(tmp_path / "job", long_files=1, segments=5, short=2, gold_short=0)
    job = Job(tmp_path / "job")
    annotate_units(job, {"talk00#0003": "hello there", "clip001": "short clip"}, "a@example.org")
    annotate_units(job, {"talk00#0003": "hello here"}, "b@example.org", 100)
    table = annotations_table(job)
    assert sorted(set(table["task"])) == ["clip001", "talk00#0003"]
    answers = human_answers(job, TranscriptionTask())
    assert set(answers) == {"clip001", "talk00#0003"}
    assert answers["talk00#0003"].method == "rover" and len(answers["talk00#0003"].annotators) == 2
    assert answers["clip001"].answer == "short clip"
    assert refs  # the references exist for every unit
    assert {a.key for a in job.annotations()} == {"clip001", "talk00#0003"}
    # Submitted with an empty box (Label Studio then stores no text result: answer None): on a segment, that is
    # the answer "nobody speaks here"; on a whole clip it is left out, as before.
    annotate_units(job, {"talk00#0004": None, "clip000": None}, "a@example.org", 200)
    answers = human_answers(job, TranscriptionTask())
    assert answers["talk00#0004"].answer == "" and "clip000" not in answers


def test_one_long_recording_routes_with_prior_calibration(tmp_path: Path) -> None:
    """A single 10-minute recording (40 segments) through routing: a small slice of its own (for the drift
    check), an earlier job of the same model as prior calibration. Only segments below the threshold go to
    people, the promise holds; and the bound is honest about how little 40 units can promise (each segment is
    2.5% of the batch, so few are auto-accepted at a 10% target: see docs/labelstudio.md)."""
    earlier = build_segmented_job(tmp_path / "earlier", long_files=8, segments=40, short=20, seed=11)
    _route_batch(tmp_path / "earlier", earlier, target=0.10)
    refs = build_segmented_job(tmp_path / "talk", long_files=1, segments=40, short=0, seed=12, gold_short=0)
    job = Job(tmp_path / "talk")
    plan_calibration(job.root, size=12, min_items=0, seed=1)
    roles = current_roles(job)
    cal = [k for k, r in roles.items() if r == "calibration"]
    assert len(cal) == 12 and all("#" in k for k in cal)
    annotate_units(job, {k: refs[k] for k in cal}, "trusted.reviewer@example.org")
    alone = route(job.root, target=0.10, human_error=0.02, calibration_reviewed=True, min_calibrated=1.0)
    pooled = route(job.root, target=0.10, prior=[tmp_path / "earlier"], human_error=0.02,
                   calibration_reviewed=True, min_calibrated=1.0)
    assert pooled.details["pooled_calibration"]["used"], pooled.message
    assert pooled.details["pooled_calibration"]["prior_items"] == 82
    assert pooled.reachable and pooled.error_upper <= 0.10
    roles = job.roles()
    auto = [k for k, r in roles.items() if r.role == "auto_accept"]
    human = [k for k, r in roles.items() if r.role == "human"]
    assert auto and human and len(auto) + len(human) + len(cal) == 40
    units = job.units()
    assert max(units[k].confidence for k in human) < min(units[k].confidence for k in auto)
    assert pooled.counts.get("auto_accept", 0) >= alone.counts.get("auto_accept", 0)
    assert delivered_wer(job, refs, 0.02) <= 0.10


def test_kdh_route_shows_the_audio_people_hear(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kdh_ai.cli import app

    build_segmented_job(tmp_path / "job", long_files=2, segments=10, short=4, gold_short=2)
    res = CliRunner().invoke(app, ["route", str(tmp_path / "job"), "--calibration", "6"])
    assert res.exit_code == 0, res.output
    assert "units (clips, segments)" in res.output and "audio min" in res.output
    # 6 calibration units of 15 s (segments) or 8 s (clips), 2 gold clips of 8 s: at most 1.8 min of 5.5
    line = next(x for x in res.output.splitlines() if x.startswith("audio people hear"))
    heard, total = (float(v) for v in line.split(":")[1].split("min")[0].split(" of "))
    assert total == pytest.approx((2 * 10 * 15 + 4 * 8) / 60, abs=0.05) and 0 < heard <= 1.8


def test_step1_says_when_a_batch_is_too_small_for_savings(tmp_path: Path) -> None:
    build_segmented_job(tmp_path / "talk", long_files=1, segments=40, short=0, gold_short=0)
    small = plan_calibration(tmp_path / "talk", size=0.2)  # the README's step 1: raised to min_items=30
    assert small.details["calibration_size"] == 30 and "This batch is small (40 units)" in small.message
    build_segmented_job(tmp_path / "big", long_files=8, segments=40, short=20)
    assert "small" not in plan_calibration(tmp_path / "big", size=0.2).message
