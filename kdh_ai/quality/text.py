"""Transcription quality: text normalization, WER/CER, alignment counts, confusions.

All metrics compare a *reference* (the truth) with a *hypothesis* (a worker's or a
model's transcript). Both are normalized first with the same normalizer:

* ``"english"`` (the default, :data:`DEFAULT_NORMALIZER`): Whisper's English text
  normalizer from the ``whisper-normalizer`` package (lower-case, no punctuation,
  spelled-out numbers to digits, British to American spelling, "mr" -> "mister").
  This is how Whisper and the Open ASR leaderboard score English.
* ``"basic"``: Whisper's language-agnostic basic normalizer (lower-case, drops
  bracketed text and punctuation, keeps diacritics). Use it for every language
  other than English, e.g. Swahili, Somali or Arabic transcripts.
* ``"none"``: only surrounding and repeated whitespace is removed.

One difference from Whisper's own normalizers: words in **round** parentheses are
kept (only the parentheses go). Whisper drops both ``[...]`` and ``(...)`` as
non-speech tags; in the hub's transcription guidelines tags are in square
brackets (``[inaudible]``, ``[music]``), and parentheses in a transcript hold
spoken words (LJ Speech: "But the first Bible actually dated (which also was
printed at Maintz ...)"), whose loss would count as a dozen model insertions.

Word and character error rates are computed by ``jiwer`` (Morris et al., 2004,
"From WER and RIL to MER and WIL: improved evaluation measures for connected speech
recognition"): ``(substitutions + deletions + insertions) / reference length``.
Corpus-level rates sum the counts over items before dividing, which weighs long
items more, as the ASR literature does.

Example:
    >>> wer("the cat sat on the mat", "the cat sat on mat")
    0.16666666666666666
    >>> cer("Hello, world!", "hello world")
    0.0
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Union

import jiwer
import pandas as pd

from ._common import InsufficientDataError, check_choice, preview

__all__ = [
    "DEFAULT_NORMALIZER",
    "NORMALIZERS",
    "AlignmentCounts",
    "Normalizer",
    "alignment_counts",
    "cer",
    "get_normalizer",
    "item_error_rates",
    "normalize_text",
    "top_confusions",
    "wer",
]

logger = logging.getLogger(__name__)

Normalizer = Literal["english", "basic", "none"]
"""Name of a text normalizer: ``"english"``, ``"basic"`` or ``"none"``."""

NORMALIZERS: tuple[str, ...] = ("english", "basic", "none")
"""The valid normalizer names."""

DEFAULT_NORMALIZER: Normalizer = "english"
"""The normalizer every function uses unless told otherwise."""

Texts = Union[str, Sequence[str], pd.Series]
UNITS: tuple[str, ...] = ("word", "char")


_SPOKEN_PARENTHESES = re.compile(r"[()]")
"""Round parentheses, removed before Whisper's normalizers so that the words inside them are scored (tags are
in square brackets: ``docs/guidelines/transcription.md``)."""


def _whitespace_only(text: str) -> str:
    return " ".join(text.split())


@functools.lru_cache(maxsize=None)
def get_normalizer(normalizer: str = DEFAULT_NORMALIZER) -> Callable[[str], str]:
    """Return the normalizing function for a normalizer name.

    The Whisper normalizers are built on first use (never at import) and cached.

    Args:
        normalizer: One of :data:`NORMALIZERS`.

    Returns:
        A function ``str -> str`` whose output has single spaces and no leading
        or trailing whitespace.

    Raises:
        ValueError: If ``normalizer`` is not a known name.

    Example:
        >>> get_normalizer("basic")("Habari, RAFIKI!")
        'habari rafiki'
        >>> get_normalizer("english")("dated (which also was printed) [inaudible] here")
        'dated which also was printed here'
    """
    check_choice("normalizer", normalizer, NORMALIZERS)
    if normalizer == "none":
        return _whitespace_only
    if normalizer == "english":
        from whisper_normalizer.english import EnglishTextNormalizer

        base: Callable[[str], str] = EnglishTextNormalizer()
    else:
        from whisper_normalizer.basic import BasicTextNormalizer

        base = BasicTextNormalizer()
    return lambda text: _whitespace_only(base(_SPOKEN_PARENTHESES.sub(" ", text)))


def normalize_text(text: str, *, normalizer: Normalizer = DEFAULT_NORMALIZER) -> str:
    """Normalize one transcript for scoring or aggregation.

    Args:
        text: The transcript.
        normalizer: ``"english"`` (default), ``"basic"`` (any language) or ``"none"``.

    Returns:
        The normalized text.

    Raises:
        ValueError: If ``text`` is not a string or ``normalizer`` is unknown.

    Example:
        >>> normalize_text("Mr. Smith paid twenty-one dollars!")
        'mister smith paid $21'
        >>> normalize_text("Mr. Smith paid twenty-one dollars!", normalizer="basic")
        'mr smith paid twenty one dollars'
    """
    func = get_normalizer(normalizer)
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}: {text!r}")
    return func(text)


def _as_pairs(
    reference: Texts, hypothesis: Texts, normalizer: str
) -> tuple[list[str], list[str], list]:
    """Validate and normalize reference/hypothesis pairs; return them with item ids."""
    func = get_normalizer(normalizer)
    if isinstance(reference, str) != isinstance(hypothesis, str):
        raise ValueError(
            "reference and hypothesis must both be strings or both be sequences of strings"
        )
    if isinstance(reference, str):
        refs, hyps, ids = [reference], [hypothesis], [0]
    elif isinstance(reference, pd.Series) and isinstance(hypothesis, pd.Series):
        if not reference.index.is_unique or not hypothesis.index.is_unique:
            raise ValueError("reference and hypothesis Series must have unique indexes")
        missing = reference.index.difference(hypothesis.index)
        extra = hypothesis.index.difference(reference.index)
        if len(missing) or len(extra):
            raise ValueError(
                "reference and hypothesis Series must have the same index; "
                f"items without hypothesis: {preview(missing)}; "
                f"items without reference: {preview(extra)}"
            )
        ids = list(reference.index)
        refs = list(reference)
        hyps = list(hypothesis.loc[reference.index])
    else:
        refs, hyps = list(reference), list(hypothesis)  # type: ignore[arg-type]
        if len(refs) != len(hyps):
            raise ValueError(
                f"reference has {len(refs)} items but hypothesis has {len(hyps)}; "
                "pass one hypothesis per reference"
            )
        ids = (
            list(reference.index)
            if isinstance(reference, pd.Series)
            else list(hypothesis.index)
            if isinstance(hypothesis, pd.Series)
            else list(range(len(refs)))
        )
    if not refs:
        raise InsufficientDataError("no reference/hypothesis pairs given")
    for side, texts in (("reference", refs), ("hypothesis", hyps)):
        for item, text in zip(ids, texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"{side} of item {item!r} is {text!r}, not a string; "
                    "use '' for an empty transcript"
                )
    return [func(t) for t in refs], [func(t) for t in hyps], ids


@dataclass(frozen=True)
class AlignmentCounts:
    """Edit-operation counts of an alignment (summed over items).

    Attributes:
        hits: Reference units found in the hypothesis.
        substitutions: Reference units replaced by another unit.
        deletions: Reference units missing from the hypothesis.
        insertions: Hypothesis units not in the reference.
        reference_length: Units in the reference (hits + substitutions + deletions).
        unit: ``"word"`` or ``"char"``.
    """

    hits: int
    substitutions: int
    deletions: int
    insertions: int
    reference_length: int
    unit: str = "word"

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """Errors divided by reference length (WER or CER).

        Raises:
            InsufficientDataError: If the reference is empty.
        """
        if self.reference_length == 0:
            raise InsufficientDataError(
                "the error rate is undefined: the normalized reference is empty"
            )
        return self.errors / self.reference_length


def _process(refs: list[str], hyps: list[str], unit: str):
    check_choice("unit", unit, UNITS)
    if unit == "word":
        return jiwer.process_words(refs, hyps)
    return jiwer.process_characters(refs, hyps)


def alignment_counts(
    reference: Texts,
    hypothesis: Texts,
    *,
    normalizer: Normalizer = DEFAULT_NORMALIZER,
    unit: Literal["word", "char"] = "word",
) -> AlignmentCounts:
    """Count hits, substitutions, deletions and insertions (corpus level).

    Args:
        reference: One reference string, or a sequence/Series of them.
        hypothesis: The matching hypothesis string(s). Two Series are matched by index.
        normalizer: Normalizer applied to both sides (default ``"english"``).
        unit: ``"word"`` (default) or ``"char"``.

    Returns:
        The summed :class:`AlignmentCounts`.

    Raises:
        ValueError: On unknown options, mismatched lengths or non-string texts.
        InsufficientDataError: If no pairs are given.

    Example:
        >>> counts = alignment_counts("a b c d", "a x c d e", normalizer="none")
        >>> counts.substitutions, counts.deletions, counts.insertions, counts.errors
        (1, 0, 1, 2)
        >>> counts.error_rate
        0.5
    """
    refs, hyps, _ = _as_pairs(reference, hypothesis, normalizer)
    out = _process(refs, hyps, unit)
    return AlignmentCounts(
        hits=out.hits,
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
        reference_length=out.hits + out.substitutions + out.deletions,
        unit=unit,
    )


def wer(
    reference: Texts, hypothesis: Texts, *, normalizer: Normalizer = DEFAULT_NORMALIZER
) -> float:
    """Word error rate, corpus level (errors summed over items / reference words).

    Args:
        reference: One reference string, or a sequence/Series of them.
        hypothesis: The matching hypothesis string(s). Two Series are matched by index.
        normalizer: Normalizer applied to both sides (default ``"english"``).

    Returns:
        The WER as a fraction (0.05 = 5 %). It can exceed 1 with many insertions.

    Raises:
        ValueError: On unknown options, mismatched lengths or non-string texts.
        InsufficientDataError: If there are no pairs or all references are empty.

    Example:
        >>> wer(["the cat sat", "on the mat"], ["the cat sat", "on a mat"])
        0.16666666666666666
    """
    return alignment_counts(reference, hypothesis, normalizer=normalizer, unit="word").error_rate


def cer(
    reference: Texts, hypothesis: Texts, *, normalizer: Normalizer = DEFAULT_NORMALIZER
) -> float:
    """Character error rate, corpus level (spaces count as characters).

    Args:
        reference: One reference string, or a sequence/Series of them.
        hypothesis: The matching hypothesis string(s). Two Series are matched by index.
        normalizer: Normalizer applied to both sides (default ``"english"``).

    Returns:
        The CER as a fraction.

    Raises:
        ValueError: On unknown options, mismatched lengths or non-string texts.
        InsufficientDataError: If there are no pairs or all references are empty.

    Example:
        >>> cer("kakuma", "kakoma")
        0.16666666666666666
    """
    return alignment_counts(reference, hypothesis, normalizer=normalizer, unit="char").error_rate


def item_error_rates(
    reference: Texts,
    hypothesis: Texts,
    *,
    normalizer: Normalizer = DEFAULT_NORMALIZER,
    unit: Literal["word", "char"] = "word",
) -> pd.DataFrame:
    """Per-item alignment counts and error rate (WER or CER of each item).

    Args:
        reference: Reference strings (a Series keeps its index as item ids).
        hypothesis: The matching hypotheses. Two Series are matched by index.
        normalizer: Normalizer applied to both sides (default ``"english"``).
        unit: ``"word"`` (default) or ``"char"``.

    Returns:
        A DataFrame indexed by item with integer columns ``reference_length``,
        ``hits``, ``substitutions``, ``deletions``, ``insertions``, ``errors`` and
        the float column ``error_rate``.

    Raises:
        ValueError: On bad input, or if an item's normalized reference is empty
            (its error rate is undefined; the message names the item).

    Example:
        >>> refs = pd.Series({"clip1": "a b c d", "clip2": "x y"})
        >>> hyps = pd.Series({"clip1": "a c c d e", "clip2": "x"})
        >>> item_error_rates(refs, hyps, normalizer="none")[["errors", "error_rate"]]
               errors  error_rate
        item                     
        clip1       2         0.5
        clip2       1         0.5
    """
    refs, hyps, ids = _as_pairs(reference, hypothesis, normalizer)
    empty = [item for item, ref in zip(ids, refs) if not ref]
    if empty:
        raise ValueError(
            f"{len(empty)} item(s) have an empty reference after normalization "
            f"({preview(empty)}); their error rate is undefined: drop them or fix the reference"
        )
    out = _process(refs, hyps, unit)
    rows = []
    for ref_units, chunks in zip(out.references, out.alignments):
        counts = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
        for chunk in chunks:
            if chunk.type == "insert":
                counts["insert"] += chunk.hyp_end_idx - chunk.hyp_start_idx
            else:
                counts[chunk.type] += chunk.ref_end_idx - chunk.ref_start_idx
        errors = counts["substitute"] + counts["delete"] + counts["insert"]
        rows.append(
            (
                len(ref_units),
                counts["equal"],
                counts["substitute"],
                counts["delete"],
                counts["insert"],
                errors,
                errors / len(ref_units),
            )
        )
    return pd.DataFrame(
        rows,
        index=pd.Index(ids, name="item"),
        columns=[
            "reference_length",
            "hits",
            "substitutions",
            "deletions",
            "insertions",
            "errors",
            "error_rate",
        ],
    )


def top_confusions(
    reference: Texts,
    hypothesis: Texts,
    *,
    normalizer: Normalizer = DEFAULT_NORMALIZER,
    n: int = 10,
) -> pd.DataFrame:
    """The most frequent word-level errors: substitutions, deletions, insertions.

    Args:
        reference: Reference string(s).
        hypothesis: The matching hypothesis string(s).
        normalizer: Normalizer applied to both sides (default ``"english"``).
        n: How many of the most frequent errors to return (``n >= 1``).

    Returns:
        A DataFrame with columns ``kind`` (``"substitution"``, ``"deletion"`` or
        ``"insertion"``), ``reference`` (word, ``""`` for insertions),
        ``hypothesis`` (word, ``""`` for deletions) and ``count``, most frequent
        first (ties in alphabetical order). Empty if there are no errors.

    Raises:
        ValueError: If ``n < 1`` or the input is bad.

    Example:
        >>> top_confusions(["the cat sat", "the cat ran"], ["a cat sat", "a cat"],
        ...                normalizer="none")
                   kind reference hypothesis  count
        0  substitution       the          a      2
        1      deletion       ran                 1
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    refs, hyps, _ = _as_pairs(reference, hypothesis, normalizer)
    out = jiwer.process_words(refs, hyps)
    substitutions, insertions, deletions = jiwer.collect_error_counts(out)
    rows = [("substitution", r, h, c) for (r, h), c in substitutions.items()]
    rows += [("deletion", w, "", c) for w, c in deletions.items()]
    rows += [("insertion", "", w, c) for w, c in insertions.items()]
    table = pd.DataFrame(rows, columns=["kind", "reference", "hypothesis", "count"])
    if table.empty:
        return table.astype({"count": int})
    table = table.sort_values(
        ["count", "kind", "reference", "hypothesis"], ascending=[False, True, True, True]
    )
    return table.head(n).reset_index(drop=True)
