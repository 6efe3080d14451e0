"""kdh_ai.quality.text: normalization, WER/CER, alignment counts, per-item rates, confusions."""

from __future__ import annotations

import jiwer
import pandas as pd
import pytest

from kdh_ai.quality import (
    DEFAULT_NORMALIZER,
    InsufficientDataError,
    alignment_counts,
    cer,
    get_normalizer,
    item_error_rates,
    normalize_text,
    top_confusions,
    wer,
)


def test_wer_by_hand() -> None:
    # reference: 6 words; first "the" deleted (D), "sat" -> "sit" (S), "today" inserted (I)
    ref = "the cat sat on the mat"
    hyp = "cat sit on the mat today"
    counts = alignment_counts(ref, hyp, normalizer="none")
    assert (counts.hits, counts.substitutions, counts.deletions, counts.insertions) == (4, 1, 1, 1)
    assert counts.reference_length == 6
    assert wer(ref, hyp, normalizer="none") == pytest.approx(3 / 6)


def test_corpus_wer_weighs_items_by_length() -> None:
    refs = ["a b c d e f g h i j", "x"]  # 10 words, 1 word
    hyps = ["a b c d e f g h i j", "y"]  # 0 errors, 1 error
    assert wer(refs, hyps, normalizer="none") == pytest.approx(1 / 11)
    per_item = item_error_rates(refs, hyps, normalizer="none")
    assert per_item["error_rate"].tolist() == [0.0, 1.0]
    assert per_item["errors"].sum() == 1


def test_wer_matches_jiwer_on_normalized_text() -> None:
    refs = ["Mr. Brown paid twenty-one dollars.", "Habari ya asubuhi"]
    hyps = ["mister brown payed 21 dollars", "habari za asubuhi rafiki"]
    norm = get_normalizer("english")
    expected = jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])
    assert wer(refs, hyps) == pytest.approx(expected)
    assert DEFAULT_NORMALIZER == "english"


def test_normalizer_choice_changes_the_score() -> None:
    ref, hyp = "Twenty-one Dollars", "21 dollars"
    assert wer(ref, hyp, normalizer="english") == 0.0  # numbers are standardized
    assert wer(ref, hyp, normalizer="basic") == pytest.approx(2 / 3)  # "twenty one dollars"
    assert wer(ref, hyp, normalizer="none") == 1.0  # case differs too


def test_words_in_round_parentheses_are_scored_and_square_bracket_tags_are_not() -> None:
    # LJ001-0024: the aside in parentheses is read aloud; a model that transcribes it is right.
    ref = "But the first Bible actually dated (which also was printed at Maintz by Peter Schoeffer)"
    hyp = "but the first bible actually dated which also was printed at maintz by peter schoeffer"
    assert wer(ref, hyp) == 0.0
    assert wer(ref, "but the first bible actually dated") == pytest.approx(9 / 15)  # the aside missing
    for normalizer in ("english", "basic"):
        assert normalize_text("we met at [inaudible] (the) station", normalizer=normalizer) == "we met at the station"


def test_basic_normalizer_keeps_non_english_words() -> None:
    assert normalize_text("Ninakupenda, RAFIKI! [laughs]", normalizer="basic") == "ninakupenda rafiki"
    assert normalize_text("Café", normalizer="basic") == "café"


def test_cer() -> None:
    assert cer("kakuma", "kakoma", normalizer="none") == pytest.approx(1 / 6)
    assert cer(["ab", "cd"], ["ab", "c"], normalizer="none") == pytest.approx(1 / 4)


def test_series_are_matched_by_index() -> None:
    refs = pd.Series({"a": "one two", "b": "three four"})
    hyps = pd.Series({"b": "three four", "a": "one"})  # other order
    assert wer(refs, hyps, normalizer="none") == pytest.approx(1 / 4)
    per_item = item_error_rates(refs, hyps, normalizer="none")
    assert per_item.loc["a", "deletions"] == 1 and per_item.loc["b", "errors"] == 0


def test_series_with_different_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="items without hypothesis: 'b'"):
        wer(pd.Series({"a": "x", "b": "y"}), pd.Series({"a": "x", "c": "y"}))


def test_mismatched_lengths_and_non_strings() -> None:
    with pytest.raises(ValueError, match="reference has 2 items but hypothesis has 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="hypothesis of item 1 is None"):
        wer(["a", "b"], ["a", None])
    with pytest.raises(ValueError, match="both be strings or both be sequences"):
        wer("a", ["a"])


def test_unknown_normalizer_names_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of: 'english', 'basic', 'none'"):
        wer("a", "a", normalizer="french")
    with pytest.raises(ValueError, match="unit='token'"):
        alignment_counts("a", "a", unit="token")


def test_not_enough_data_is_explicit() -> None:
    with pytest.raises(InsufficientDataError, match="no reference/hypothesis pairs"):
        wer([], [])
    with pytest.raises(InsufficientDataError, match="reference is empty"):
        wer("", "something")
    with pytest.raises(ValueError, match="empty reference after normalization"):
        item_error_rates(["ok", "?!"], ["ok", "x"], normalizer="basic")
    # an empty reference inside a corpus is fine: its hypothesis words are insertions
    assert wer(["a b", ""], ["a b", "c"], normalizer="none") == pytest.approx(1 / 2)


def test_empty_hypothesis_is_all_deletions() -> None:
    counts = alignment_counts("one two three", "", normalizer="none")
    assert counts.deletions == 3 and counts.error_rate == 1.0


def test_top_confusions() -> None:
    refs = ["the cat sat", "the dog sat", "a cat ran"]
    hyps = ["a cat sat", "a dog sat", "a cat"]
    table = top_confusions(refs, hyps, normalizer="none", n=5)
    assert table.iloc[0].to_dict() == {
        "kind": "substitution", "reference": "the", "hypothesis": "a", "count": 2}
    assert table.iloc[1].to_dict() == {
        "kind": "deletion", "reference": "ran", "hypothesis": "", "count": 1}
    assert len(table) == 2
    assert top_confusions("same words", "same words").empty
    with pytest.raises(ValueError, match="n must be a positive integer"):
        top_confusions("a", "b", n=0)
