"""kdh_ai.quality.agreement against scikit-learn, statsmodels and the krippendorff package.

The reference values come from those packages called directly on the same data (real crowd
sets copied in tests/data/crowd), never from numbers typed in here.
"""

from __future__ import annotations

from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from kdh_ai.quality import (
    InsufficientDataError,
    agreement_summary,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)

CROWD = Path(__file__).resolve().parent / "data" / "crowd"


@pytest.fixture(scope="module")
def bluebirds() -> pd.DataFrame:
    return pd.read_csv(CROWD / "bluebirds" / "labels.csv")


@pytest.fixture(scope="module")
def music() -> pd.DataFrame:
    return pd.read_csv(CROWD / "activecrowd" / "MS_labels.csv")


def _reliability(df: pd.DataFrame) -> np.ndarray:
    """workers x tasks matrix with NaN for missing ratings (krippendorff's input)."""
    return df.pivot(index="worker", columns="task", values="label").to_numpy(dtype=float)


def test_fleiss_equals_statsmodels_on_bluebirds(bluebirds: pd.DataFrame) -> None:
    # every one of the 39 workers rated every one of the 108 images: statsmodels' setting
    wide = bluebirds.pivot(index="task", columns="worker", values="label").to_numpy()
    table, _ = aggregate_raters(wide)
    expected = sm_fleiss_kappa(table, method="fleiss")
    assert fleiss_kappa(bluebirds) == pytest.approx(expected, abs=1e-12)


def test_fleiss_with_missing_ratings_generalizes_statsmodels() -> None:
    # 3 tasks x 4 raters, then one rating removed: the per-task agreement uses that task's own count
    full = pd.DataFrame({
        "task": np.repeat([1, 2, 3], 4),
        "worker": list("abcd") * 3,
        "label": ["x", "x", "x", "y", "y", "y", "y", "y", "x", "y", "x", "x"]})
    table, _ = aggregate_raters(full.pivot(index="task", columns="worker", values="label").to_numpy())
    assert fleiss_kappa(full) == pytest.approx(sm_fleiss_kappa(table))
    partial = full.drop(index=3)  # task 1 keeps x, x, x
    # by hand: P1 = 1, P2 = 1, P3 = (1*0 + 3*2)/(4*3) = 0.5; shares x 6/11, y 5/11
    p_bar = (1 + 1 + 0.5) / 3
    p_e = (6 / 11) ** 2 + (5 / 11) ** 2
    assert fleiss_kappa(partial) == pytest.approx((p_bar - p_e) / (1 - p_e))
    assert percent_agreement(partial) == pytest.approx(p_bar)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_equals_package_with_missing_ratings(music: pd.DataFrame, level: str) -> None:
    # MS: 44 workers, 700 clips, ~4 ratings per clip: most of the matrix is missing
    expected = krippendorff.alpha(reliability_data=_reliability(music), level_of_measurement=level)
    assert krippendorff_alpha(music, level=level) == pytest.approx(expected, abs=1e-9)


def test_krippendorff_equals_package_on_bluebirds(bluebirds: pd.DataFrame) -> None:
    expected = krippendorff.alpha(reliability_data=_reliability(bluebirds), level_of_measurement="nominal")
    assert krippendorff_alpha(bluebirds) == pytest.approx(expected, abs=1e-9)


def test_krippendorff_ordinal_text_labels_follow_the_schema_order() -> None:
    words = pd.DataFrame({"task": [1, 1, 2, 2, 3, 3, 4, 4],
                          "worker": ["a", "b"] * 4,
                          "label": ["bad", "ok", "good", "good", "ok", "ok", "bad", "good"]})
    codes = words.assign(label=words["label"].map({"bad": 0, "ok": 1, "good": 2}))
    expected = krippendorff.alpha(reliability_data=_reliability(codes), level_of_measurement="ordinal")
    assert krippendorff_alpha(words, level="ordinal", labels=["bad", "ok", "good"]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="needs labels=\\[...\\] in their order"):
        krippendorff_alpha(words, level="ordinal")
    with pytest.raises(ValueError, match="level='interval' needs numeric labels"):
        krippendorff_alpha(words, level="interval")


def test_cohen_equals_scikit_learn_on_two_bluebirds_workers(bluebirds: pd.DataFrame) -> None:
    a = bluebirds[bluebirds["worker"] == 39].set_index("task")["label"]
    b = bluebirds[bluebirds["worker"] == 97].set_index("task")["label"].loc[a.index]
    expected = cohen_kappa_score(a, b)
    assert cohen_kappa(bluebirds, annotators=(39, 97)) == pytest.approx(expected, abs=1e-12)
    pair = bluebirds[bluebirds["worker"].isin([39, 97])]
    assert cohen_kappa(pair) == pytest.approx(expected, abs=1e-12)  # two workers: no need to name them


def test_weighted_cohen_equals_scikit_learn(music: pd.DataFrame) -> None:
    # the two MS workers who share the most clips
    counts = music.groupby("worker").size().sort_values(ascending=False)
    first = counts.index[0]
    tasks = set(music.loc[music["worker"] == first, "task"])
    overlap = (music[music["task"].isin(tasks) & (music["worker"] != first)]
               .groupby("worker").size().sort_values(ascending=False))
    second = overlap.index[0]
    a = music[music["worker"] == first].set_index("task")["label"]
    b = music[music["worker"] == second].set_index("task")["label"]
    shared = a.index.intersection(b.index)
    assert len(shared) >= 10
    for weights in (None, "linear", "quadratic"):
        expected = cohen_kappa_score(a.loc[shared], b.loc[shared], weights=weights,
                                     labels=sorted(set(a.loc[shared]) | set(b.loc[shared])))
        got = cohen_kappa(music, annotators=(first, second), weights=weights)
        assert got == pytest.approx(expected, abs=1e-12)


def test_percent_agreement_two_annotators_is_share_of_equal_tasks(bluebirds: pd.DataFrame) -> None:
    pair = bluebirds[bluebirds["worker"].isin([39, 97])]
    wide = pair.pivot(index="task", columns="worker", values="label")
    assert percent_agreement(pair) == pytest.approx((wide[39] == wide[97]).mean())


def test_missing_labels_are_missing_ratings() -> None:
    df = pd.DataFrame({"task": [1, 1, 2, 2, 3, 3],
                       "worker": ["a", "b"] * 3,
                       "label": ["x", "x", "y", None, "y", "y"]})
    assert percent_agreement(df) == 1.0  # task 2 has one rating left and is skipped
    assert krippendorff_alpha(df) == pytest.approx(
        krippendorff.alpha(reliability_data=[[0, 1, 1], [0, np.nan, 1]], level_of_measurement="nominal"))


def test_unknown_annotator_is_named() -> None:
    df = pd.DataFrame({"task": [1, 1], "worker": ["ann", "bob"], "label": [1, 1]})
    with pytest.raises(ValueError, match="unknown annotator 'cy'; annotators in df: 'ann', 'bob'"):
        cohen_kappa(df, annotators=("ann", "cy"))


def test_cohen_needs_two_annotators() -> None:
    one = pd.DataFrame({"task": [1, 2], "worker": ["ann", "ann"], "label": [0, 1]})
    with pytest.raises(InsufficientDataError, match="needs two annotators; df has 1: 'ann'"):
        cohen_kappa(one)
    three = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "b", "c"], "label": [0, 1, 1]})
    with pytest.raises(ValueError, match="pass annotators=\\(a, b\\)"):
        cohen_kappa(three)
    apart = pd.DataFrame({"task": [1, 2], "worker": ["a", "b"], "label": [0, 1]})
    with pytest.raises(InsufficientDataError, match="rated no task in common"):
        cohen_kappa(apart)
    constant = pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b"] * 2, "label": [1] * 4})
    with pytest.raises(InsufficientDataError, match="undefined"):
        cohen_kappa(constant)


def test_multi_annotator_stats_need_a_shared_task() -> None:
    one = pd.DataFrame({"task": [1, 2, 3], "worker": ["ann"] * 3, "label": ["x", "y", "x"]})
    for func in (percent_agreement, fleiss_kappa, krippendorff_alpha):
        with pytest.raises(InsufficientDataError, match="rated by two or more annotators"):
            func(one)
    constant = pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b"] * 2, "label": ["x"] * 4})
    with pytest.raises(InsufficientDataError, match="every rating uses the label 'x'"):
        fleiss_kappa(constant)
    with pytest.raises(InsufficientDataError, match="all ratings on multiply-rated tasks are equal"):
        krippendorff_alpha(constant)
    assert percent_agreement(constant) == 1.0


def test_summary_records_reasons_instead_of_failing(bluebirds: pd.DataFrame) -> None:
    summary = agreement_summary(bluebirds)
    assert summary.fleiss_kappa == pytest.approx(fleiss_kappa(bluebirds))
    assert summary.krippendorff_alpha == pytest.approx(krippendorff_alpha(bluebirds))
    assert (summary.n_ratings, summary.n_tasks, summary.n_annotators, summary.n_tasks_multi) == (4212, 108, 39, 108)
    assert summary.reasons == {}
    one = agreement_summary(pd.DataFrame({"task": [1], "worker": ["a"], "label": ["x"]}))
    assert one.percent_agreement is None and one.fleiss_kappa is None and one.krippendorff_alpha is None
    assert set(one.reasons) == {"percent_agreement", "fleiss_kappa", "krippendorff_alpha"}
    empty = agreement_summary(pd.DataFrame({"task": [1], "worker": ["a"], "label": [None]}))
    assert empty.n_ratings == 0 and "no ratings" in empty.reasons["fleiss_kappa"]


def test_labels_outside_schema_and_bad_options() -> None:
    df = pd.DataFrame({"task": [1, 1], "worker": ["a", "b"], "label": ["pos", "neutral"]})
    with pytest.raises(ValueError, match="outside the label schema: 'neutral' at tasks 1; valid labels: 'pos', 'neg'"):
        fleiss_kappa(df, labels=["pos", "neg"])
    with pytest.raises(ValueError, match="choose one of: 'nominal', 'ordinal', 'interval', 'ratio'"):
        krippendorff_alpha(df, level="categorical")
    with pytest.raises(ValueError, match="weights='cubic'"):
        cohen_kappa(df, weights="cubic")
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['label'\\]"):
        fleiss_kappa(df.rename(columns={"label": "answer"}))


def test_duplicate_ratings_are_refused_with_a_fix() -> None:
    df = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "a", "b"], "label": [0, 1, 1]})
    with pytest.raises(ValueError, match="rated more than once: \\(1, 'a'\\).*drop_duplicates"):
        fleiss_kappa(df)
