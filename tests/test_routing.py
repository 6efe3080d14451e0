"""Routing over a job directory, with simulated people (clearly simulated: annotations written directly).

The jobs here are built from synthetic transcripts so that the true error of every item is known; the
real-audio simulation of the whole loop is ``benchmarks/routing.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kdh_ai.job import Job
from kdh_ai.records import Prediction
from kdh_ai.routing import RoutingError, check_audit, current_roles, plan_calibration, route
from kdh_ai.routing.threshold import choose_threshold, people_upper_bound, ratio_upper_bound, split_delta
from kdh_ai.tasks.transcription import TranscriptionTask

# Letters only: Whisper's English normalizer leaves these words as they are (it splits "w12" into "w 12").
VOCAB = [f"q{a}{b}" for a in "bcdfghjklmnprstvwxz" for b in "aeiou"][:90] + [
    f"k{a}{b}{c}" for a in "aeiou" for b in "bdgklmnprstv" for c in "aeiou"][:410]


def _corrupt(words: list[str], k: int, rng: np.random.Generator) -> list[str]:
    out = list(words)
    for pos in rng.choice(len(out), size=min(k, len(out)), replace=False):
        out[pos] = "zz" + out[pos]
    return out


def build_job(root: Path, *, n: int = 400, n_gold: int = 20, seed: int = 0, slope: float = 0.45,
              config_hash: str = "h") -> dict:
    """A transcription job with model predictions whose errors grow as confidence falls."""
    rng = np.random.default_rng(seed)
    job = Job(root)
    refs, preds = {}, []
    for i in range(n):
        item_id = f"item{i:04d}"
        words = list(rng.choice(VOCAB, size=int(rng.integers(8, 30))))
        conf = float(rng.beta(5, 1.5))
        k = int(rng.binomial(len(words), min(1.0, slope * (1 - conf) ** 1.5)))
        refs[item_id] = " ".join(words)
        preds.append(Prediction(item_id=item_id, task="transcription", text=" ".join(_corrupt(words, k, rng)),
                                confidence=conf, status="ok", model={"name": "sim", "version": "1"},
                                config_hash=config_hash, source=None, sha256="x").to_dict())
    job.predictions.append(preds)
    job.items.append({"item_id": k, "path": f"/audio/{k}.wav", "reference": v} for k, v in refs.items())
    gold_ids = sorted(refs)[:n_gold]
    job.log("gold").append({"item_id": k, "answer": refs[k], "source": "test"} for k in gold_ids)
    job.update_manifest(task="transcription", config_hash=config_hash)
    return refs


def annotate(job: Job, answers: dict[str, str], worker: str, start: int = 0) -> None:
    """Simulated annotator answers, in the schema `kdh pull` writes."""
    job.log("annotations").append(
        {"item_id": k, "annotation_id": start + i, "annotator_email": worker, "answer": v, "skipped": False,
         "deleted": False, "gold": False, "lead_time_s": 10.0, "created_at": f"2026-11-28T10:{i % 60:02d}:00"}
        for i, (k, v) in enumerate(answers.items()))


def people(job: Job, refs: dict[str, str], ids: list[str], *, wer: float, seed: int, start: int) -> None:
    """Simulated people whose WER on these items is exactly ``wer`` (errors at random positions)."""
    rng = np.random.default_rng(seed)
    sizes = [len(refs[k].split()) for k in ids]
    slots = np.repeat(np.arange(len(ids)), sizes)
    hit = rng.choice(len(slots), size=int(round(wer * len(slots))), replace=False)
    per_item = np.bincount(slots[hit], minlength=len(ids))
    out = {k: " ".join(_corrupt(refs[k].split(), int(per_item[i]), rng)) for i, k in enumerate(ids)}
    annotate(job, out, "simulated.annotator@example.org", start)


def true_delivered_wer(job: Job, refs: dict[str, str], human_wer: float) -> float:
    """Expected WER of the delivered batch: the model's errors where auto-accepted, the people's WER on human
    and audit items; gold items keep their known answers and calibration items the trusted reviewer's."""
    roles = current_roles(job)
    preds = job.current_predictions()
    task = TranscriptionTask()
    auto = [k for k, r in roles.items() if r == "auto_accept"]
    e = task.item_errors([preds[k].text for k in auto], [refs[k] for k in auto])
    words = sum(len(v.split()) for v in refs.values())
    human_words = sum(len(refs[k].split()) for k, r in roles.items() if r in ("human", "audit"))
    return float((e[:, 0].sum() + human_wer * human_words) / words)


def test_two_step_routing_meets_the_target(tmp_path: Path) -> None:
    refs = build_job(tmp_path / "job", slope=0.9, n_gold=40)
    job = Job(tmp_path / "job")
    with pytest.raises(RoutingError, match="no calibration slice"):
        route(job.root, target=0.08)
    step1 = plan_calibration(job.root, size=0.3, seed=1)
    roles = current_roles(job)
    assert step1.counts["gold"] == 40 and step1.counts["calibration"] == 108
    assert step1.counts["pending"] == 400 - 40 - 108
    cal = [k for k, r in roles.items() if r == "calibration"]
    with pytest.raises(RoutingError, match="calibration items have answers"):
        route(job.root, target=0.08)
    annotate(job, {k: refs[k] for k in cal}, "trusted.reviewer@example.org")  # labelled to gold quality
    with pytest.raises(RoutingError, match="error rate is unknown"):
        route(job.root, target=0.08)
    people(job, refs, [k for k, r in roles.items() if r == "gold"], wer=0.02, seed=3, start=10_000)
    result = route(job.root, target=0.08, audit_rate=0.05)
    roles = current_roles(job)
    assert result.reachable and result.threshold is not None
    assert set(roles.values()) <= {"calibration", "gold", "human", "audit", "auto_accept"}
    assert result.counts["auto_accept"] > 100 and result.counts["human"] > 0
    touched = sum(r in ("calibration", "gold", "human", "audit") for r in roles.values())
    assert result.human_share == pytest.approx(touched / 400)
    assert result.error_upper <= 0.08 and result.estimated_error <= result.error_upper
    # The guarantee holds with >= 95% probability (benchmarks/routing.py measures how often over many
    # batches); on one batch the realised WER stays under the promise.
    assert true_delivered_wer(job, refs, 0.02) <= 0.08
    model_only = TranscriptionTask().item_errors([p.text for p in job.current_predictions().values()],
                                                 [refs[k] for k in job.current_predictions()])
    assert model_only[:, 0].sum() / model_only[:, 1].sum() > 0.09, "the model alone misses the target"
    assert "people touch" in result.message
    manifest = job.read_manifest()["routing"]
    assert manifest["details"]["curve"]["human_share"][0] == 1.0
    assert manifest["evidence"]["target"] == 0.08 and manifest["evidence"]["gold_have"] == 40


def test_unreachable_target_says_what_would_help(tmp_path: Path) -> None:
    refs = build_job(tmp_path / "job", slope=0.9)
    job = Job(tmp_path / "job")
    plan_calibration(job.root, size=0.25, seed=1)
    roles = current_roles(job)
    annotate(job, {k: refs[k] for k, r in roles.items() if r == "calibration"}, "trusted.reviewer@example.org")
    people(job, refs, [k for k, r in roles.items() if r == "gold"], wer=0.08, seed=3, start=10_000)
    result = route(job.root, target=0.05)
    assert not result.reachable
    assert "cannot be promised" in result.message
    # People at 8% cannot reach 5% with more gold or a reviewed slice: the cheapest change is more overlap.
    assert result.advice["change"] == "more overlap" and "--overlap" in result.advice["command"]
    assert result.advice["command"] in result.message
    assert result.counts.get("auto_accept", 0) == 0
    assert "Every item is already with people" not in result.message


def test_budget_mode_stays_within_budget(tmp_path: Path) -> None:
    refs = build_job(tmp_path / "job")
    job = Job(tmp_path / "job")
    plan_calibration(job.root, size=0.2, seed=2)
    roles = current_roles(job)
    annotate(job, {k: refs[k] for k, r in roles.items() if r == "calibration"}, "trusted.reviewer@example.org")
    result = route(job.root, budget=0.4, human_error=0.03, audit_rate=0.0)
    assert result.human_share <= 0.4 + 1e-9
    assert result.human_error["source"] == "assumed"


def test_audit_reroutes_when_the_model_is_worse_than_promised(tmp_path: Path) -> None:
    refs = build_job(tmp_path / "job", n=600, slope=0.7, n_gold=40)
    job = Job(tmp_path / "job")
    plan_calibration(job.root, size=0.3, seed=1)
    roles = current_roles(job)
    annotate(job, {k: refs[k] for k, r in roles.items() if r == "calibration"}, "trusted.reviewer@example.org")
    people(job, refs, [k for k, r in roles.items() if r == "gold"], wer=0.02, seed=3, start=10_000)
    route(job.root, target=0.06, audit_rate=0.25)
    roles = current_roles(job)
    audit = [k for k, r in roles.items() if r == "audit"]
    assert len(audit) > 20
    # What the audit finds: people correct the model's transcripts heavily (the model drifted on this batch).
    rng = np.random.default_rng(9)
    worse = {k: " ".join(_corrupt(refs[k].split(), 0, rng)) for k in audit}
    preds = job.current_predictions()
    job.predictions.append(Prediction.from_dict({**preds[k].to_dict(), "text": " ".join(
        _corrupt(refs[k].split(), max(1, len(refs[k].split()) // 5), rng))}).to_dict() for k in audit)
    annotate(job, worse, "auditor@example.org", start=20_000)
    result = check_audit(job.root)
    assert result.details["audit"]["rerouted"] > 0 and result.details["audit"]["status"] == "re-routed"
    assert "re-routed" in result.message and "holds" not in result.message
    assert sum(r == "auto_accept" for r in current_roles(job).values()) < sum(
        r == "auto_accept" for r in roles.values())


def test_threshold_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="exactly one of target"):
        choose_threshold([0.5, 0.6], [0, 1], [10, 10], batch_confidence=[0.5], human_error_rate=0.01)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        choose_threshold([0.5], [0], [10], batch_confidence=[0.5], human_error_rate=0.01, target=0.05)
    with pytest.raises(ValueError, match="differ in length"):
        choose_threshold([0.5, 0.6], [0], [10, 10], batch_confidence=[0.5], human_error_rate=0.01, target=0.05)
    r, up = ratio_upper_bound(np.array([0, 0, 1, 3]), np.array([10, 10, 10, 10]), n_predict=100)
    assert r == 0.1 and up > r


def _calibrated_job(root: Path, *, slope: float, seed: int, cal: float = 0.2, config_hash: str = "h") -> Job:
    refs = build_job(root, slope=slope, seed=seed, config_hash=config_hash, n_gold=40)
    job = Job(root)
    plan_calibration(root, size=cal, seed=seed)
    roles = current_roles(job)
    annotate(job, {k: refs[k] for k, r in roles.items() if r == "calibration"}, "trusted.reviewer@example.org")
    people(job, refs, [k for k, r in roles.items() if r == "gold"], wer=0.02, seed=seed, start=10_000)
    return job


def test_prior_calibration_pools_earlier_batches_and_refuses_what_does_not_transfer(tmp_path: Path) -> None:
    earlier = [_calibrated_job(tmp_path / f"b{i}", slope=0.7, seed=10 + i) for i in range(3)]
    alone = route(_calibrated_job(tmp_path / "alone", slope=0.7, seed=20).root, target=0.08, audit_rate=0.0)
    pooled = route(_calibrated_job(tmp_path / "pooled", slope=0.7, seed=20).root, target=0.08, audit_rate=0.0,
                   prior=[j.root for j in earlier])
    info = pooled.details["pooled_calibration"]
    assert info["used"] and not info["drift"]["drift"]
    assert info["prior_items"] == sum(sum(r == "calibration" for r in current_roles(j).values()) for j in earlier)
    assert "pooled with" in pooled.message
    # Four slices instead of one: a tighter bound, so people get fewer items for the same promise.
    assert pooled.human_share < alone.human_share
    assert pooled.error_upper <= 0.08

    other_model = _calibrated_job(tmp_path / "other", slope=0.7, seed=11, config_hash="another-model")
    with pytest.raises(RoutingError, match="another model or other options"):
        route(_calibrated_job(tmp_path / "c", slope=0.7, seed=21).root, target=0.05, prior=[other_model.root])
    with pytest.raises(RoutingError, match="not a job directory"):
        route(_calibrated_job(tmp_path / "d", slope=0.7, seed=22).root, target=0.05, prior=[tmp_path / "nope"])


def test_prior_calibration_is_dropped_when_this_batch_drifted(tmp_path: Path) -> None:
    # Earlier batches: a model that rarely erred at any confidence; this batch: much worse at the same confidence.
    earlier = [_calibrated_job(tmp_path / f"b{i}", slope=0.1, seed=30 + i) for i in range(2)]
    result = route(_calibrated_job(tmp_path / "now", slope=0.9, seed=40).root, target=0.08, audit_rate=0.0,
                   prior=[j.root for j in earlier])
    info = result.details["pooled_calibration"]
    assert info["drift"]["drift"] and not info["used"]
    assert info["drift"]["observed"] > 2 * info["drift"]["expected"]
    assert "NOT used" in result.message


def test_pooled_slices_promise_a_small_batch_and_keep_it() -> None:
    # A batch of 40 units (one 10-minute recording) routed with 150 earlier calibration units of the same
    # stream. Losses are heavy-tailed: now and then a whole unit is wrong even at high confidence. The promise
    # (people at an assumed 2%) must hold in at least 95% of batches (delta = 0.05) while the model still takes
    # a real share of the work; a plug-in threshold (the point estimate, no bound) breaks it on the same draws.
    rng = np.random.default_rng(3)
    target, h, n_batch, m = 0.10, 0.02, 40, 150

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        conf = rng.beta(6, 1.2, size=n)
        whole = rng.random(n) < 0.35 * (1 - conf) ** 1.2        # a hallucinated or lost unit
        part = rng.binomial(60, np.clip(0.5 * (1 - conf) ** 1.5, 0, 1), size=n) / 60
        return conf, np.where(whole, 1.0, part)

    held, plug_held, auto_share = [], [], []
    for _ in range(150):
        c_cal, x_cal = draw(m)
        c_b, x_b = draw(n_batch)
        choice = choose_threshold(c_cal, x_cal * 60, np.full(m, 60), batch_confidence=c_b, human_error_rate=h,
                                  target=target, delta=0.05, curve_bounds=False)
        auto = c_b >= choice.threshold
        held.append((x_b[auto].sum() + h * (~auto).sum()) / n_batch <= target)
        auto_share.append(auto.mean())
        plug = choice.curve[choice.curve["risk"] <= target]["threshold"].min()   # the plug-in choice
        pa = c_b >= plug
        plug_held.append((x_b[pa].sum() + h * (~pa).sum()) / n_batch <= target)
    assert np.mean(held) >= 0.95
    assert np.mean(auto_share) >= 0.3, np.mean(auto_share)
    assert np.mean(plug_held) < 0.9, np.mean(plug_held)


def test_drift_check_refuses_earlier_slices_when_this_batch_is_another_kind_of_audio() -> None:
    # Earlier batches: clean speech (confidence near 1). This batch: noisy calls (confidence spread lower). Its
    # slice of 6 happens to err exactly as the earlier slices predict, so only the confidences can tell.
    from kdh_ai.routing import drift_check

    rng = np.random.default_rng(0)
    p_conf = rng.beta(9, 1, size=200)
    p_errs = np.c_[np.round(30 * 0.3 * (1 - p_conf)), np.full(200, 30)]
    noisy = rng.beta(3, 2, size=40)
    slice_conf = noisy[:6]
    edges = np.quantile(p_conf, np.linspace(0, 1, 6))
    band = lambda c: np.clip(np.searchsorted(edges, c, side="right") - 1, 0, 4)  # noqa: E731
    rates = np.array([p_errs[band(p_conf) == b, 0].sum() / p_errs[band(p_conf) == b, 1].sum() for b in range(5)])
    slice_errs = np.c_[rates[band(slice_conf)] * 30, np.full(6, 30)]
    shifted = drift_check(slice_conf, slice_errs, p_conf, p_errs, batch_confidence=noisy)
    assert shifted["drift"] and shifted["shift"] and not shifted["errors_drift"], shifted
    same = rng.beta(9, 1, size=40)
    alike = drift_check(same[:6], np.c_[rates[band(same[:6])] * 30, np.full(6, 30)], p_conf, p_errs,
                        batch_confidence=same)
    assert not alike["drift"] and alike["shift_p"] > 0.05, alike


def test_people_worse_than_the_confident_model_still_get_a_mix() -> None:
    # Calibrated classifier: an item of confidence c is right with probability c. People are right 81% of
    # the time; the target is 84% accuracy. Everything to people cannot meet it; the model alone cannot
    # either; auto-accepting the confident items and sending the rest to people can.
    rng = np.random.default_rng(0)
    conf = rng.beta(4, 1, size=3000)
    wrong = (rng.random(3000) > conf).astype(float)
    cal, rest = np.arange(1000), np.arange(1000, 3000)
    kw = dict(batch_confidence=conf[rest], human_error_rate=0.19, human_error_upper=0.21, people_delta=0.01,
              target=0.16)
    assert wrong.mean() > 0.16 + 0.01  # the model alone misses it
    plain = choose_threshold(conf[cal], wrong[cal], np.ones(1000), **kw)
    assert not plain.reachable and plain.human_share == 1.0
    mixed = choose_threshold(conf[cal], wrong[cal], np.ones(1000), start_threshold=1 - 0.19, **kw)
    assert mixed.reachable and 0 < mixed.human_share < 1 and mixed.risk_upper <= 0.16
    auto = conf[rest] >= mixed.threshold
    expected = (wrong[rest][auto].sum() + 0.19 * (~auto).sum()) / len(rest)
    assert expected <= 0.16


def test_items_already_with_people_stay_out_of_the_calibration_slice(tmp_path: Path) -> None:
    build_job(tmp_path / "job")
    job = Job(tmp_path / "job")
    chosen = [f"item{i:04d}" for i in range(100, 140)]
    job.log("routing").append({"item_id": k, "role": "human", "reason": "kdh select", "step": "select",
                               "at": "2026-11-29T00:00:00+00:00"} for k in chosen)
    plan_calibration(job.root, size=0.25, seed=1)
    roles = current_roles(job)
    assert all(roles[k] == "human" for k in chosen)
    assert sum(r == "calibration" for r in roles.values()) == round(0.25 * (400 - 20 - 40))


def test_a_reviewed_calibration_slice_counts_as_delivered_exact(tmp_path: Path) -> None:
    plain = route(_calibrated_job(tmp_path / "a", slope=0.7, seed=50).root, target=0.08, audit_rate=0.0)
    reviewed = route(_calibrated_job(tmp_path / "b", slope=0.7, seed=50).root, target=0.08, audit_rate=0.0,
                     calibration_reviewed=True)
    # Same batch, same slice: the slice is delivered exact (not at the people's 2%), which leaves more room for
    # the model's answers.
    assert reviewed.details["calibration_reviewed"] and not plain.details["calibration_reviewed"]
    assert reviewed.human_share < plain.human_share
    assert reviewed.error_upper <= 0.08


def test_step1_with_the_target_plans_the_evidence_and_says_when_gold_is_too_few(tmp_path: Path) -> None:
    build_job(tmp_path / "job", n=200, n_gold=3, slope=0.7)
    job = Job(tmp_path / "job")
    step1 = plan_calibration(job.root, size=0.2, seed=1, target=0.08)
    evidence = job.read_manifest()["routing"]["evidence"]
    # The shape the client report reads (issue 14): keep it.
    assert set(evidence) == {"target", "calibration_needed", "calibration_have", "gold_needed", "gold_have"}
    assert set(evidence["gold_needed"]) == {"0.01", "0.02", "0.05"}
    assert evidence["target"] == 0.08 and evidence["gold_have"] == 3
    need = evidence["gold_needed"]
    assert 0 < need["0.01"] < need["0.02"] < need["0.05"]
    # The figures come from the bound routing uses: that many answers bound people at 2% within half the room.
    words = float(np.median([len(v["answer"].split()) for v in job.log("gold").latest_by("item_id").values()]))
    people_delta, _ = split_delta(0.05, people_measured=True)
    assert people_upper_bound(round(0.02 * need["0.02"] * words), need["0.02"] * words, delta=people_delta) <= 0.05
    # The slice is raised to the planned size, and the lead hears about the gold up front.
    assert evidence["calibration_have"] == step1.counts["calibration"] >= evidence["calibration_needed"]
    assert step1.counts["calibration"] >= round(0.2 * 197)
    assert "TOO FEW GOLD" in step1.message and str(need["0.02"]) in step1.message


def _routed_with_gold(root: Path, *, gold_answered: int, target: float = 0.08) -> tuple[Job, dict, list[str]]:
    refs = build_job(root, n=400, n_gold=60, slope=0.9)
    job = Job(root)
    plan_calibration(root, size=0.3, seed=1)
    roles = current_roles(job)
    annotate(job, {k: refs[k] for k, r in roles.items() if r == "calibration"}, "trusted.reviewer@example.org")
    gold = sorted(k for k, r in roles.items() if r == "gold")
    people(job, refs, gold[:gold_answered], wer=0.02, seed=3, start=10_000)
    return job, refs, gold


def test_routing_again_as_gold_arrives_moves_open_items_back_and_keeps_answers(tmp_path: Path) -> None:
    job, refs, gold = _routed_with_gold(tmp_path / "job", gold_answered=4)
    first = route(job.root, target=0.08)
    # Four gold answers bound the people loosely: (almost) everything open goes to people.
    assert first.counts.get("auto_accept", 0) < 20
    roles = current_roles(job)
    answered = sorted(k for k, r in roles.items() if r == "human")[:15]
    annotate(job, {k: refs[k] for k in answered}, "simulated.annotator@example.org", start=30_000)
    # The same command with no new evidence changes nothing.
    lines = job.log("routing").path.read_text().count("\n")
    again = route(job.root, target=0.08)
    assert job.log("routing").path.read_text().count("\n") == lines and current_roles(job) == roles
    assert again.counts == first.counts
    # More gold answers arrive: open items move back to auto-accept; answered ones stay with people.
    people(job, refs, gold[4:], wer=0.02, seed=4, start=40_000)
    later = route(job.root, target=0.08)
    now = current_roles(job)
    assert later.reachable and later.counts["auto_accept"] > first.counts.get("auto_accept", 0) + 50
    assert all(now[k] == "human" for k in answered)
    assert later.details["rerouted"] > 0 and later.evidence["gold_have"] == 60
    assert "Every item is already with people" not in later.message


def test_audit_states_its_own_state(tmp_path: Path) -> None:
    job, refs, gold = _routed_with_gold(tmp_path / "none", gold_answered=60)
    route(job.root, target=0.08, audit_rate=0.0)
    result = check_audit(job.root)
    assert result.details["audit"]["status"] == "nothing to audit" and "Nothing to audit" in result.message
    assert result.reachable and "missed" not in result.message

    job, refs, gold = _routed_with_gold(tmp_path / "some", gold_answered=60)
    route(job.root, target=0.08, audit_rate=0.2)
    audit = [k for k, r in current_roles(job).items() if r == "audit"]
    with pytest.raises(RoutingError, match=f"0 of {len(audit)} audit items answered yet; {len(audit)} remain"):
        check_audit(job.root)
    preds = job.current_predictions()
    annotate(job, {k: preds[k].text for k in audit[:-2]}, "auditor@example.org", start=50_000)  # model right
    result = check_audit(job.root)
    assert result.details["audit"]["status"] == "partial" and result.details["audit"]["remaining"] == 2
    assert "2 remain" in result.message and "holds" in result.message and "re-routed" not in result.message


def test_delivered_error_lies_within_the_promise(tmp_path: Path) -> None:
    from kdh_ai.deliver import delivered_records

    job, refs, gold = _routed_with_gold(tmp_path / "job", gold_answered=60)
    result = route(job.root, target=0.08, audit_rate=0.05, calibration_reviewed=True)
    roles = current_roles(job)
    # The people answer what was routed to them (simulated, 2% WER as on gold).
    people(job, refs, sorted(k for k, r in roles.items() if r in ("human", "audit")), wer=0.02, seed=5,
           start=60_000)
    rows = delivered_records(job)
    by = {r["item_id"]: r for r in rows}
    assert all(by[k]["provenance"] == "gold" and by[k]["answer"] == refs[k] for k in gold)
    assert all(by[k]["provenance"] == "reviewed" for k, r in roles.items() if r == "calibration")
    errs = TranscriptionTask().item_errors([by[k]["answer"] for k in refs], [refs[k] for k in refs])
    real = errs[:, 0].sum() / errs[:, 1].sum()
    assert 0 < real <= result.error_upper <= 0.08
    assert abs(real - result.estimated_error) < 0.02


def test_status_names_the_next_command(tmp_path: Path) -> None:
    from kdh_ai.labelstudio.status import job_status

    build_job(tmp_path / "job", n=60, n_gold=10)
    job = Job(tmp_path / "job")
    assert "kdh route" in job_status(job.root).next_step and "--calibration" in job_status(job.root).next_step
    plan_calibration(job.root, size=30, seed=0, target=0.08)
    step = job_status(job.root).next_step
    assert step.startswith("push") and f"kdh push {job.root}" in step


def test_kdh_route_refuses_targets_that_make_no_sense(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kdh_ai.cli import app

    build_job(tmp_path / "job", n=60, n_gold=5)
    job = str(tmp_path / "job")

    def kdh(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(app, list(args))
        return res.exit_code, " ".join(res.output.split())

    code, out = kdh("route", job, "--target-wer", "5")
    assert code == 2 and "(0, 1)" in out and "for 5% write 0.05" in out
    code, out = kdh("route", job, "--calibration", "0.2", "--target-accuracy", "0.95")
    assert code == 2 and "transcription job" in out and "--target-wer" in out
    code, out = kdh("route", job, "--target-wer", "0")
    assert code == 2 and "(0, 1)" in out
    assert current_roles(Job(tmp_path / "job")) == {}, "nothing was routed by a refused command"
    code, out = kdh("route", job, "--calibration", "30", "--target-wer", "0.08")
    assert code == 0 and "gold answers needed" in out


def test_kdh_route_calibration_all_sends_every_routable_item_to_people(tmp_path: Path) -> None:
    # A new client's first batch reviewed whole: every item but gold joins the slice (unbiased, so it can serve
    # later batches as --prior-calibration); a word that is not a share, count or 'all' is refused.
    from typer.testing import CliRunner

    from kdh_ai.cli import app

    build_job(tmp_path / "job", n=50, n_gold=5)
    res = CliRunner().invoke(app, ["route", str(tmp_path / "job"), "--calibration", "most"])
    assert res.exit_code == 2 and "'all'" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["route", str(tmp_path / "job"), "--calibration", "all"])
    assert res.exit_code == 0, res.output
    roles = current_roles(Job(tmp_path / "job"))
    assert sum(r == "calibration" for r in roles.values()) == 45 and sum(r == "gold" for r in roles.values()) == 5
