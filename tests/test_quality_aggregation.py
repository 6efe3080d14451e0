"""kdh_ai.quality.aggregation on small hand-made data: tie rules, methods, model-aware aggregation,
input checks. The real-data validation is in test_quality_validation.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import GLAD, MACE, ROVER, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa

from kdh_ai.quality import (
    LABEL_METHODS,
    MODEL_WORKER_PREFIX,
    aggregate_labels,
    aggregate_texts,
    with_model_answers,
)


def _simulated_crowd(seed: int = 0, n_tasks: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    """5 workers of known skill (two of them spammers) label a binary task."""
    rng = np.random.default_rng(seed)
    truth = pd.Series(rng.integers(0, 2, n_tasks), index=[f"t{i}" for i in range(n_tasks)])
    skills = {"good1": 0.95, "good2": 0.9, "ok": 0.75, "spam1": 0.5, "spam2": 0.5}
    rows = []
    for task, label in truth.items():
        for worker, skill in skills.items():
            rows.append((task, worker, int(label) if rng.random() < skill else 1 - int(label)))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


TIED = pd.DataFrame({
    "task": ["t1", "t1", "t2", "t2", "t3", "t3", "t3"],
    "worker": ["a", "b", "a", "b", "a", "b", "c"],
    "label": ["dog", "cat", "cat", "dog", "dog", "dog", "cat"]})


def test_tie_rules() -> None:
    assert aggregate_labels(TIED, tie_break="first_seen").to_dict() == {"t1": "dog", "t2": "cat", "t3": "dog"}
    assert aggregate_labels(TIED, tie_break="smallest").to_dict() == {"t1": "cat", "t2": "cat", "t3": "dog"}
    picks = {seed: aggregate_labels(TIED, seed=seed)["t1"] for seed in range(20)}
    assert set(picks.values()) == {"cat", "dog"}  # both tied labels get picked across seeds
    assert aggregate_labels(TIED, seed=3).equals(aggregate_labels(TIED, seed=3))
    assert aggregate_labels(TIED)["t3"] == "dog"  # no tie: every rule agrees


def test_random_ties_do_not_depend_on_row_order() -> None:
    shuffled = TIED.sample(frac=1.0, random_state=1)
    for seed in range(5):
        assert aggregate_labels(TIED, seed=seed).equals(aggregate_labels(shuffled, seed=seed))


def test_crowdkit_rule_reproduces_crowd_kit() -> None:
    df, _ = _simulated_crowd()
    df = df[df["worker"].isin(["good1", "spam1"])]  # two workers: many ties
    theirs = MajorityVote().fit_predict(df).sort_index()
    assert aggregate_labels(df, tie_break="crowdkit").tolist() == theirs.tolist()
    smallest = aggregate_labels(df, tie_break="smallest")
    tied = df.groupby("task")["label"].nunique() == 2
    assert (smallest[tied] == 0).all() and tied.sum() > 5


@pytest.mark.parametrize(("method", "factory"), [
    ("dawid_skene", lambda: DawidSkene(n_iter=10)),
    ("one_coin_dawid_skene", lambda: OneCoinDawidSkene(n_iter=10)),
    ("glad", lambda: GLAD(n_iter=2)),
    ("mace", lambda: MACE(n_iter=3, random_state=0)),
    ("wawa", Wawa),
])
def test_methods_equal_crowd_kit(method: str, factory) -> None:
    # also guards the version pins: crowd-kit 1.4.2's Wawa breaks with scikit-learn >= 1.8
    df, truth = _simulated_crowd(n_tasks=20)
    model = factory()
    n_iter = getattr(model, "n_iter", 100)
    ours = aggregate_labels(df, method=method, n_iter=n_iter)
    theirs = model.fit_predict(df)
    assert ours.tolist() == theirs.sort_index().tolist()
    assert ours.name == "agg_label" and ours.index.name == "task"
    assert (ours.loc[truth.index] == truth).mean() >= 0.8


def test_dawid_skene_discounts_spammers() -> None:
    df, truth = _simulated_crowd(seed=1, n_tasks=100)
    # three spammers and two good workers: the majority is often wrong, DS learns who to trust
    extra = df[df["worker"] == "spam1"].assign(worker="spam3")
    extra["label"] = np.random.default_rng(5).integers(0, 2, len(extra))
    crowd = pd.concat([df[df["worker"] != "ok"], extra], ignore_index=True)
    mv = (aggregate_labels(crowd).loc[truth.index] == truth).mean()
    ds = (aggregate_labels(crowd, method="dawid_skene", n_iter=30).loc[truth.index] == truth).mean()
    assert ds > mv + 0.05


def test_model_labels_join_as_weighted_workers() -> None:
    df = pd.DataFrame({"task": ["t1", "t1", "t1", "t2", "t2"],
                       "worker": ["a", "b", "c", "a", "b"],
                       "label": ["x", "x", "y", "x", "y"]})
    model = {"t1": "y", "t2": "y"}
    # weight 1: t2's 1-1 tie is broken by the model; t1's 2-1 majority becomes a 2-2 tie
    assert aggregate_labels(df, model_labels=model, tie_break="first_seen").to_dict() == {"t1": "x", "t2": "y"}
    assert aggregate_labels(df, model_labels=model, model_weight=2).to_dict() == {"t1": "y", "t2": "y"}
    # the model may cover a subset of tasks
    assert aggregate_labels(df, model_labels={"t2": "x"}).to_dict() == {"t1": "x", "t2": "x"}
    combined = with_model_answers(df, model, model_weight=3)
    assert len(combined) == len(df) + 6
    assert set(combined["worker"]) - set(df["worker"]) == {f"{MODEL_WORKER_PREFIX}{i}" for i in (1, 2, 3)}
    ds = aggregate_labels(df, method="dawid_skene", model_labels=pd.Series(model))
    assert set(ds.index) == {"t1", "t2"}


def test_model_input_errors() -> None:
    with pytest.raises(ValueError, match="model_labels has 1 task\\(s\\) that no annotator did: 't9'"):
        aggregate_labels(TIED, model_labels={"t9": "cat"})
    with pytest.raises(ValueError, match="model_labels has 1 value\\(s\\) outside the label schema: 'cow'"):
        aggregate_labels(TIED, model_labels={"t1": "cow"}, labels=["cat", "dog"])
    for weight in (0, 1.5, True, -1):
        with pytest.raises(ValueError, match="model_weight must be a whole number >= 1"):
            aggregate_labels(TIED, model_labels={"t1": "cat"}, model_weight=weight)
    with pytest.raises(ValueError, match="model_labels has missing answers for tasks 't1'"):
        aggregate_labels(TIED, model_labels={"t1": None})
    clash = TIED.assign(worker=TIED["worker"].replace({"a": "__model__1"}))
    with pytest.raises(ValueError, match="reserved prefix '__model__'"):
        aggregate_labels(clash, model_labels={"t1": "cat"})


def test_label_input_errors() -> None:
    with pytest.raises(ValueError, match="method='vote' is not supported; choose one of: 'majority_vote'"):
        aggregate_labels(TIED, method="vote")
    with pytest.raises(ValueError, match="tie_break='coin'.*'random', 'first_seen', 'smallest'"):
        aggregate_labels(TIED, tie_break="coin")
    with pytest.raises(ValueError, match="outside the label schema: 'cat' at tasks 't1'"):
        aggregate_labels(TIED, labels=["dog", "bird"])
    with pytest.raises(ValueError, match="missing 'label': rows 1 \\(tasks 't1'\\)"):
        aggregate_labels(TIED.assign(label=TIED["label"].where(TIED.index != 1)))
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['worker'\\]"):
        aggregate_labels(TIED.rename(columns={"worker": "annotator"}))
    with pytest.raises(ValueError, match="no rows"):
        aggregate_labels(TIED.iloc[:0])
    with pytest.raises(ValueError, match="labels mix kinds of values \\(number, str\\)"):
        aggregate_labels(TIED, model_labels={"t1": 1})
    assert set(LABEL_METHODS) >= {"majority_vote", "dawid_skene", "glad", "mace", "wawa"}


TEXTS = pd.DataFrame({
    "task": ["c1", "c1", "c1", "c2", "c2"],
    "worker": ["a", "b", "c", "a", "b"],
    "text": ["The cat sat on the mat.", "the cat sat on a mat", "a cat sat on the mat", "hello world", ""]})


def test_rover_equals_crowd_kit_on_normalized_text() -> None:
    ours = aggregate_texts(TEXTS, normalizer="basic")
    prepared = TEXTS.assign(text=TEXTS["text"].str.lower().str.replace(".", "", regex=False))
    theirs = ROVER(tokenizer=str.split, detokenizer=" ".join).fit_predict(prepared)
    assert ours.tolist() == theirs.tolist() == ["the cat sat on the mat", "hello world"]
    assert ours.name == "agg_text" and ours.index.name == "task"


def test_rover_with_model_transcript() -> None:
    crowd = TEXTS[TEXTS["task"] == "c2"]  # "hello world" vs "" : a tie the model can break
    assert aggregate_texts(crowd, model_texts={"c2": ""}, model_weight=2).tolist() == [""]
    assert aggregate_texts(crowd, model_texts={"c2": "hello world"}).tolist() == ["hello world"]
    assert aggregate_texts(TEXTS, model_texts={"c1": "the cat sat on a mat"}, model_weight=3)["c1"] == (
        "the cat sat on a mat")


def test_text_input_errors() -> None:
    with pytest.raises(ValueError, match="method='rasa' is not supported; choose one of: 'rover'"):
        aggregate_texts(TEXTS, method="rasa")
    with pytest.raises(ValueError, match="normalizer='latin'"):
        aggregate_texts(TEXTS, normalizer="latin")
    with pytest.raises(ValueError, match="missing 'text': rows 4 \\(tasks 'c2'\\)"):
        aggregate_texts(TEXTS.assign(text=TEXTS["text"].where(TEXTS.index != 4)))
    with pytest.raises(ValueError, match="text must be a string; rows 0"):
        aggregate_texts(TEXTS.assign(text=[1, "a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="model_texts has 1 task\\(s\\) that no annotator did: 'c7'"):
        aggregate_texts(TEXTS, model_texts={"c7": "x"})
    with pytest.raises(ValueError, match="model_texts must be strings; tasks 'c1'"):
        aggregate_texts(TEXTS, model_texts={"c1": 5})
