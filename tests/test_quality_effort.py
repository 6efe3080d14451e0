"""kdh_ai.quality.effort: real-time factor of human transcription, with and without pre-labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from kdh_ai.quality import InsufficientDataError, compare_prelabel_effort, real_time_factor


def _annotations(seed: int = 0, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    duration = rng.uniform(3.0, 12.0, size=n)
    prelabeled = np.arange(n) % 2 == 0
    # from scratch ~6 s of work per s of audio, correcting a pre-label ~3 s
    rtf = np.where(prelabeled, rng.normal(3.0, 0.5, n), rng.normal(6.0, 1.0, n)).clip(0.5)
    return pd.DataFrame({"task": [f"clip{i}" for i in range(n)], "duration": duration,
                         "lead_time": rtf * duration, "prelabeled": prelabeled})


def test_rtf_is_work_over_audio() -> None:
    df = _annotations()
    result = real_time_factor(df)
    assert result.n == 40 and result.n_missing_lead_time == 0
    assert result.work_seconds == pytest.approx(df["lead_time"].sum())
    assert result.audio_seconds == pytest.approx(df["duration"].sum())
    assert result.rtf == pytest.approx(df["lead_time"].sum() / df["duration"].sum())
    assert result.median_rtf == pytest.approx(np.median(df["lead_time"] / df["duration"]))


def test_durations_mapping_and_repeated_tasks() -> None:
    # the same clip done by two annotators: its audio counts twice
    df = pd.DataFrame({"task": ["a", "a", "b"], "lead_time": [30.0, 50.0, 20.0]})
    result = real_time_factor(df, durations={"a": 10.0, "b": 5.0})
    assert result.audio_seconds == 25.0 and result.rtf == pytest.approx(100 / 25)
    assert result.median_rtf == pytest.approx(4.0)  # per-annotation 3, 5, 4


def test_compare_prelabel_effort() -> None:
    df = _annotations()
    comparison = compare_prelabel_effort(df)
    pre, scratch = df[df["prelabeled"]], df[~df["prelabeled"]]
    assert comparison.with_prelabels.rtf == pytest.approx(pre["lead_time"].sum() / pre["duration"].sum())
    assert comparison.without_prelabels.rtf == pytest.approx(scratch["lead_time"].sum() / scratch["duration"].sum())
    assert comparison.speedup == pytest.approx(comparison.without_prelabels.rtf / comparison.with_prelabels.rtf)
    assert comparison.speedup > 1.5
    expected_p = mannwhitneyu(pre["lead_time"] / pre["duration"], scratch["lead_time"] / scratch["duration"]).pvalue
    assert comparison.p_value == pytest.approx(expected_p)
    assert comparison.p_value < 0.001


def test_missing_lead_time_is_skipped_and_counted() -> None:
    df = _annotations(n=6)
    df.loc[0, "lead_time"] = None
    result = real_time_factor(df)
    assert result.n == 5 and result.n_missing_lead_time == 1
    df["lead_time"] = None
    with pytest.raises(InsufficientDataError, match="no annotation with a lead time \\(6 annotation"):
        real_time_factor(df)


def test_bad_input_names_the_task() -> None:
    df = pd.DataFrame({"task": ["a", "b"], "lead_time": [10.0, -1.0], "duration": [2.0, 3.0]})
    with pytest.raises(ValueError, match="lead_time is negative for tasks 'b'"):
        real_time_factor(df)
    df = pd.DataFrame({"task": ["a", "b"], "lead_time": [10.0, 1.0], "duration": [2.0, 0.0]})
    with pytest.raises(ValueError, match="positive number of seconds; tasks 'b'"):
        real_time_factor(df)
    with pytest.raises(ValueError, match="no audio duration for task\\(s\\) 'b'"):
        real_time_factor(df.drop(columns="duration"), durations={"a": 1.0})
    with pytest.raises(ValueError, match="give df a 'duration' column"):
        real_time_factor(df.drop(columns="duration"))
    with pytest.raises(ValueError, match="lead_time is not a number for tasks 'a'"):
        real_time_factor(pd.DataFrame({"task": ["a"], "lead_time": ["soon"], "duration": [1.0]}))


def test_comparison_needs_both_groups() -> None:
    df = _annotations(n=4)
    df["prelabeled"] = True
    with pytest.raises(InsufficientDataError, match="no annotation without pre-label"):
        compare_prelabel_effort(df)
    df["prelabeled"] = ["yes", True, False, False]
    with pytest.raises(ValueError, match="'prelabeled' must be True or False; rows 0"):
        compare_prelabel_effort(df)


def test_effort_per_audio_minute_splits_by_prelabel_and_tolerates_one_group() -> None:
    from kdh_ai.quality import effort_per_audio_minute

    df = _annotations()
    e = effort_per_audio_minute(df)
    pre, scratch = df[df["prelabeled"]], df[~df["prelabeled"]]
    assert e.all == pytest.approx(60 * df["lead_time"].sum() / df["duration"].sum())
    assert e.with_prelabels == pytest.approx(60 * pre["lead_time"].sum() / pre["duration"].sum())
    assert e.without_prelabels == pytest.approx(60 * scratch["lead_time"].sum() / scratch["duration"].sum())
    assert e.n_with == e.n_without == 20 and e.with_prelabels < e.without_prelabels
    only = effort_per_audio_minute(pre)  # every task pre-labelled: no comparison, still a cost per minute
    assert only.without_prelabels is None and only.with_prelabels == pytest.approx(e.with_prelabels)
    assert effort_per_audio_minute(df.drop(columns="prelabeled")).with_prelabels is None
    with pytest.raises(ValueError, match="'prelabeled' must be True, False or missing"):
        effort_per_audio_minute(df.assign(prelabeled="yes"))
    with pytest.raises(InsufficientDataError):
        effort_per_audio_minute(df.assign(lead_time=None))


def test_review_coverage_per_file() -> None:
    from kdh_ai.quality import review_coverage

    segs = pd.DataFrame({"item": ["a", "a", "a", "b"], "start": [0.0, 12.0, 30.0, 0.0],
                         "end": [12.0, 30.0, 60.0, 20.0], "checked": [True, False, True, False],
                         "work_s": [40.0, None, 80.0, None]})
    cov = review_coverage(segs)
    assert list(cov.index) == ["a", "b"]
    assert cov.loc["a", "checked_s"] == 42.0 and cov.loc["a", "checked_share"] == pytest.approx(0.7)
    assert cov.loc["a", "human_s_per_audio_min"] == pytest.approx(120.0) and cov.loc["b", "human_s"] == 0
    assert int(cov.loc["b", "checked_segments"]) == 0 and int(cov.loc["a", "segments"]) == 3
    with pytest.raises(ValueError, match="start <= end; rows 0"):
        review_coverage(segs.assign(end=[-1.0, 30.0, 60.0, 20.0]))
    with pytest.raises(ValueError, match="'checked' must be True or False"):
        review_coverage(segs.assign(checked=["yes", True, True, False]))
    with pytest.raises(ValueError, match="missing column|column"):
        review_coverage(segs.drop(columns="checked"))
