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
