"""Routing: send people only what the model cannot do well enough for the client's target.

* :mod:`kdh_ai.routing.threshold`: choosing the auto-accept threshold from a calibration slice, with a
  finite-sample guarantee (betting bounds, fixed-sequence Learn then Test) — pure functions on arrays.
* :mod:`kdh_ai.routing.evidence`: how many calibration items and gold answers a target needs (step 1 says it).
* :mod:`kdh_ai.routing.people`: how good the people are (their error rate on gold, with its bound).
* :mod:`kdh_ai.routing.plan`: the two routing steps over a job directory (calibration slice, then threshold
  and audit), and the audit check that re-routes a stratum when the target was missed.
"""

from __future__ import annotations

from kdh_ai.routing.plan import (
    ROLES,
    RoutingError,
    RoutingResult,
    check_audit,
    current_roles,
    drift_check,
    evidence_plan,
    plan_calibration,
    route,
    routing_result,
)
from kdh_ai.routing.people import HumanError, human_error_rate
from kdh_ai.routing.threshold import (
    ThresholdChoice,
    betting_upper_bound,
    choose_threshold,
    people_upper_bound,
    rate_and_se,
    ratio_upper_bound,
)

__all__ = ["ROLES", "HumanError", "RoutingError", "RoutingResult", "ThresholdChoice", "betting_upper_bound",
           "check_audit", "choose_threshold", "current_roles", "drift_check", "evidence_plan", "human_error_rate",
           "people_upper_bound", "plan_calibration", "rate_and_se", "ratio_upper_bound", "route", "routing_result"]
