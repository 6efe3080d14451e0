"""Planning the evidence before asking for it: how many calibration items and gold answers a target needs.

Routing can promise a target only with enough evidence: a calibration slice large enough for the model's
bound, and enough gold answers for the people's. Both figures come from the bound ``kdh route`` uses
(:func:`kdh_ai.routing.threshold.choose_threshold`), so that step 1 can say what step 2 will need, before the
people's work is done.

* **Gold answers needed**, for people erring at 1%, 2% and 5%: the fewest gold answers (each the size of a
  typical item) whose Clopper-Pearson bound, at the people's share of the error level, leaves at least half
  the room between the people's rate and the target (``h+ <= h + (target - h) / 2``), with the errors such
  people would make. ``None`` when people at that rate cannot meet the target on their own answers.
* **Calibration items needed**: the slice size, on a grid, that minimizes the expected human share (the
  slice included) when routing this batch to the target, people at 2% measured on the gold answers needed.
  The model's errors on the slice are unknown before it is labelled; the plan assumes the model's confidence
  says how often it errs (an item of confidence ``c`` has a per-unit error rate ``1 - c``) and simulates
  slices under that assumption. The figure is a plan, not a promise: step 2 decides on the real answers.

Recorded in ``job.json`` under ``routing.evidence`` (:data:`EVIDENCE_KEYS`): ``{"target", "calibration_needed",
"calibration_have", "gold_needed": {"0.01", "0.02", "0.05"}, "gold_have"}``. ``gold_have`` counts gold answers
measured so far, or, before any is answered, the gold items recorded (each gives at least one answer).

Example:
    >>> plan = evidence_plan_from_arrays(target=0.08, batch_confidence=np.linspace(0.6, 1.0, 300),
    ...                                  units_per_item=12, calibration_have=60, gold_have=6)
    >>> sorted(plan), plan["gold_needed"]["0.01"] < plan["gold_needed"]["0.05"]
    (['calibration_have', 'calibration_needed', 'gold_have', 'gold_needed', 'target'], True)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kdh_ai.errors import InvalidInputError
from kdh_ai.routing.threshold import choose_threshold, people_upper_bound, split_delta

__all__ = ["EVIDENCE_KEYS", "PEOPLE_RATES", "describe", "evidence_plan_from_arrays", "gold_answers_needed"]

logger = logging.getLogger(__name__)

PEOPLE_RATES = (0.01, 0.02, 0.05)
EVIDENCE_KEYS = ("target", "calibration_needed", "calibration_have", "gold_needed", "gold_have")


def gold_answers_needed(target: float, people_rate: float, *, units_per_item: float, delta: float = 0.05,
                        most: int = 5000) -> int | None:
    """Fewest gold answers that bound people erring at ``people_rate`` within half the room to ``target``.

    Example:
        >>> gold_answers_needed(0.08, 0.02, units_per_item=13)
        17
        >>> gold_answers_needed(0.03, 0.05, units_per_item=13) is None
        True
    """
    if people_rate >= target:
        return None
    people_delta, _ = split_delta(delta, people_measured=True)
    goal = people_rate + (target - people_rate) / 2
    for g in range(1, most + 1):
        units = g * units_per_item
        if people_upper_bound(round(people_rate * units), units, delta=people_delta) <= goal:
            return g
    return None


def evidence_plan_from_arrays(*, target: float, batch_confidence: np.ndarray, units_per_item: float,
                              calibration_have: int, gold_have: int, fixed_items: int = 0,
                              reviewed: bool = False, delta: float = 0.05, seed: int = 0,
                              simulations: int = 4) -> dict[str, Any]:
    """The evidence plan for routing ``batch_confidence`` (every routable item, slice included) to ``target``.

    Args:
        target: Target error rate of the delivered batch.
        batch_confidence: Model confidence of every routable item.
        units_per_item: Typical size of an item (reference words; 1 for labels).
        calibration_have: Calibration items drawn (or answered) so far.
        gold_have: Gold answers measured so far (or gold items recorded).
        fixed_items: Items people touch whatever the threshold besides the slice (gold, failed items).
        reviewed: The slice is reviewed to gold quality (delivered exact).
        delta: Error level of the promise.
        seed: Seed of the simulated slices.
        simulations: Simulated slices per candidate size.
    """
    if not 0 < target < 1:
        raise InvalidInputError(f"target must lie in (0, 1), got {target}")
    conf = np.asarray(batch_confidence, dtype=float)
    gold_needed = {f"{h:g}": gold_answers_needed(target, h, units_per_item=units_per_item, delta=delta)
                   for h in PEOPLE_RATES}
    return {"target": float(target),
            "calibration_needed": _calibration_needed(target, conf, units_per_item, gold_needed["0.02"] or 0,
                                                      fixed_items, reviewed, delta, seed, simulations),
            "calibration_have": int(calibration_have), "gold_needed": gold_needed, "gold_have": int(gold_have)}


def _calibration_needed(target: float, conf: np.ndarray, units_per_item: float, gold: int, fixed_items: int,
                        reviewed: bool, delta: float, seed: int, simulations: int) -> int:
    """Slice size with the least expected human share (see the module docstring)."""
    n = len(conf)
    if n < 4:
        return n
    rng = np.random.default_rng(seed)
    units = max(1, int(round(units_per_item)))
    people_delta, _ = split_delta(delta, people_measured=True)
    h = 0.02
    gold_units = max(gold, 1) * units
    h_up = people_upper_bound(round(h * gold_units), gold_units, delta=people_delta)
    grid = sorted({min(n - 1, max(2, int(round(v)))) for v in
                   [30, 45, 60, 80, 120, 160, 240, 320, 480, 0.3 * n, 0.5 * n, 0.7 * n] if v < n})
    best, best_share = n, 1.0
    total = n + fixed_items
    for m in grid:
        shares = []
        for _ in range(simulations):
            order = rng.permutation(n)
            cal, rest = order[:m], order[m:]
            p_err = np.clip(1 - conf[cal], 0.0, 1.0)
            errors = rng.binomial(units, p_err)
            f = (m + fixed_items) / total
            choice = choose_threshold(conf[cal], errors, np.full(m, units), batch_confidence=conf[rest],
                                      human_error_rate=h, human_error_upper=h_up, people_delta=people_delta,
                                      target=target, fixed_human_share=f,
                                      fixed_error_share=0.0 if reviewed else m / total, delta=delta,
                                      curve_bounds=False, n_candidates=40)
            shares.append(choice.human_share if choice.reachable else 1.0)
        share = float(np.mean(shares))
        logger.debug("evidence plan: slice %d -> expected human share %.3f", m, share)
        if share < best_share - 1e-9:
            best, best_share = m, share
    return int(best if best_share < 1.0 else n)


def describe(plan: dict[str, Any], *, metric: str, unit_name: str) -> str:
    """The plan in plain words for the lead (what step 1 prints)."""
    g = plan["gold_needed"]
    gold_txt = ", ".join(f"{'unreachable' if v is None else v} if people err {float(k):.0%}" for k, v in g.items())
    goal = (f"target {metric} {plan['target']:.1%}" if metric == "WER"
            else f"target accuracy {1 - plan['target']:.1%}")
    parts = [f"Evidence for {goal}: a calibration slice of about "
             f"{plan['calibration_needed']} items (drawn: {plan['calibration_have']}); gold answers needed "
             f"({unit_name}): {gold_txt}; recorded: {plan['gold_have']}."]
    need2 = g.get("0.02")
    if need2 is not None and plan["gold_have"] < need2:
        parts.append(f"TOO FEW GOLD: with {plan['gold_have']} the people's bound stays wide and routing will send "
                     f"more to people; add about {need2 - plan['gold_have']} gold answers "
                     "(`kdh push JOB --gold more_gold.csv`, or more annotators per gold item with --gold-overlap).")
    if plan["calibration_have"] < plan["calibration_needed"]:
        parts.append(f"The slice is smaller than planned: draw {plan['calibration_needed']} items with "
                     f"`kdh route JOB --calibration {plan['calibration_needed']} --target-...` before pushing.")
    return " ".join(parts)
