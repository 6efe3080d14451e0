"""kdh's metrics through Hugging Face ``evaluate``: loaded from the package, offline, same numbers as quality."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kdh_ai import quality
from kdh_ai.evaluate_metrics import METRICS, metric_path

CROWD = Path(__file__).resolve().parent / "data" / "crowd"


@pytest.fixture(scope="module")
def evaluate_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``evaluate`` with the hub switched off and any attempt to open a network connection made an error."""
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
           "HF_HOME": str(tmp_path_factory.mktemp("hf_home"))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    real_connect = socket.socket.connect

    def no_network(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"network access to {address}")
        return real_connect(self, address)

    socket.socket.connect = no_network  # type: ignore[method-assign]
    import evaluate

    try:
        yield evaluate
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def crowdspeech() -> tuple[list[str], list[str]]:
    crowd = pd.read_csv(CROWD / "crowdspeech" / "crowd.tsv", sep="\t", keep_default_na=False)
    refs = pd.read_csv(CROWD / "crowdspeech" / "gt.txt", sep="\t", header=None, names=["task", "ref"],
                       keep_default_na=False).set_index("task")["ref"]
    crowd = crowd[crowd["INPUT:audio"].isin(refs.index)].head(300)
    return list(crowd["OUTPUT:transcription"]), list(refs.loc[crowd["INPUT:audio"]])


@pytest.mark.parametrize("normalizer", ["english", "basic", "none"])
def test_wer_and_cer_equal_kdh_quality(evaluate_offline, crowdspeech, normalizer: str) -> None:
    hyps, refs = crowdspeech
    wer = evaluate_offline.load(metric_path("kdh_wer")).compute(predictions=hyps, references=refs,
                                                                 normalizer=normalizer)
    cer = evaluate_offline.load(metric_path("kdh_cer")).compute(predictions=hyps, references=refs,
                                                                 normalizer=normalizer)
    assert wer == {"wer": quality.wer(refs, hyps, normalizer=normalizer)}
    assert cer == {"cer": quality.cer(refs, hyps, normalizer=normalizer)}
    assert 0.02 < wer["wer"] < 0.5 and 0 < cer["cer"] < wer["wer"]  # real crowd transcripts: real errors


def test_wer_accumulates_batches_like_one_call(evaluate_offline, crowdspeech) -> None:
    hyps, refs = crowdspeech
    metric = evaluate_offline.load(metric_path("wer"))
    for i in range(0, len(hyps), 64):
        metric.add_batch(predictions=hyps[i:i + 64], references=refs[i:i + 64])
    assert metric.compute() == {"wer": quality.wer(refs, hyps)}


def test_bad_options_are_refused_with_the_valid_choices(evaluate_offline) -> None:
    metric = evaluate_offline.load(metric_path("kdh_wer"))
    with pytest.raises(ValueError, match="english"):
        metric.compute(predictions=["a"], references=["a"], normalizer="klingon")
    with pytest.raises(ValueError, match="kdh_wer"):
        metric_path("bleu")


@pytest.mark.parametrize("name,level", [("bluebirds/labels.csv", "nominal"), ("activecrowd/MS_labels.csv",
                                                                               "nominal")])
def test_agreement_equals_kdh_quality_on_real_crowd_labels(evaluate_offline, name: str, level: str) -> None:
    df = pd.read_csv(CROWD / name)[["task", "worker", "label"]].astype({"task": str, "worker": str})
    got = evaluate_offline.load(metric_path("kdh_agreement")).compute(
        task=list(df["task"]), worker=list(df["worker"]), label=list(df["label"]), level=level)
    want = quality.agreement_summary(df, level=level)
    assert got["percent_agreement"] == want.percent_agreement
    assert got["fleiss_kappa"] == want.fleiss_kappa
    assert got["krippendorff_alpha"] == want.krippendorff_alpha
    assert (got["n_ratings"], got["n_tasks"], got["n_annotators"]) == (want.n_ratings, want.n_tasks,
                                                                      want.n_annotators)
    assert got["krippendorff_alpha"] is not None


def test_agreement_keeps_numeric_labels_numeric(evaluate_offline) -> None:
    # As strings, "10" would sort before "2" and ordinal alpha would change.
    df = pd.DataFrame({"task": ["a", "a", "b", "b", "c", "c", "d", "d"], "worker": ["x", "y"] * 4,
                       "label": [1, 2, 2, 10, 10, 10, 1, 1]})
    as_text = quality.krippendorff_alpha(df.astype({"label": str}), level="ordinal", labels=["1", "10", "2"])
    assert as_text != quality.krippendorff_alpha(df, level="ordinal")  # the data tells the two apart
    metric = evaluate_offline.load(metric_path("kdh_agreement"))
    for level in ("ordinal", "interval"):
        got = metric.compute(task=list(df["task"]), worker=list(df["worker"]), label=list(df["label"]),
                             level=level)
        assert got["krippendorff_alpha"] == quality.krippendorff_alpha(df, level=level)


def test_agreement_reports_why_a_statistic_is_missing(evaluate_offline) -> None:
    got = evaluate_offline.load(metric_path("kdh_agreement")).compute(
        task=["t1", "t2"], worker=["ann", "ann"], label=["x", "y"])
    assert got["fleiss_kappa"] is None and "two or more annotators" in got["reasons"]["fleiss_kappa"]


def test_every_shipped_metric_loads(evaluate_offline) -> None:
    for name in METRICS:
        assert evaluate_offline.load(metric_path(name)).name == name
