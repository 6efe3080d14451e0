"""Subtitles and word timing of a delivered transcript: cues for SRT and WebVTT, and word times after an edit.

A delivered long recording is a list of work segments (:class:`kdh_ai.records.Segment`), each with its
delivered text and the words' times. This module turns them into subtitle cues that follow common subtitle
guidelines (Netflix, BBC, EBU: at most 42 characters per line, at most 2 lines, each cue on screen 1 to 7 s):

* a cue breaks only between words, and prefers a sentence end, then a clause end (comma, semicolon, colon,
  dash), then a pause; a pause of ``hard_pause_s`` or more always ends a cue (no text over silence);
* a cue never crosses a segment's bounds, so every cue lies inside the segment whose words it shows;
* a cue starts at its first word and ends at its last word; only a cue shorter than ``min_s`` is stretched
  (into the silence after it, then before it, never over the next cue or out of its segment);
* lines are balanced (two lines of similar length), preferring to break after punctuation.

When people edited a segment's text, the model's word times no longer fit the words. :func:`retime_words`
keeps the segment's bounds and gives every word of the new text a time: a word people kept (same word, in
order, as the model's) keeps the model's time; the words they changed or added share, by length, the time
between the kept words around them (within the segment). Such words are marked ``estimated``.

:func:`to_srt` and :func:`to_vtt` write the cues with the ``srt`` and ``webvtt-py`` libraries.

Example:
    >>> words = [{"word": " Hello", "start": 0.5, "end": 0.9}, {"word": " there.", "start": 1.0, "end": 1.5},
    ...          {"word": " How", "start": 2.6, "end": 2.8}, {"word": " are", "start": 2.8, "end": 3.0},
    ...          {"word": " you?", "start": 3.0, "end": 3.4}]
    >>> [(c.start, c.end, c.lines) for c in make_cues(words, start=0.0, end=4.0)]
    [(0.5, 1.5, ['Hello there.']), (2.6, 3.6, ['How are you?'])]
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cue", "SubtitleOptions", "cue_problems", "make_cues", "normalize_word", "retime_words", "to_srt", "to_vtt", "wrap_lines"]

_SENTENCE_END = re.compile(r"[.?!…][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:–—-][\"'”’)\]]*$")


@dataclass(frozen=True)
class SubtitleOptions:
    """The subtitle rules :func:`make_cues` follows (defaults: common subtitle guidelines).

    Attributes:
        max_chars: Most characters per line (42).
        max_lines: Most lines per cue (2).
        min_s: Shortest time on screen (1 s).
        max_s: Longest time on screen (7 s).

    Example:
        >>> SubtitleOptions(max_chars=0)
        Traceback (most recent call last):
        ...
        ValueError: subtitle options: need max_chars >= 10, max_lines >= 1 and 0 < min_s <= max_s; got max_chars=0, max_lines=2, min_s=1.0, max_s=7.0
    """

    max_chars: int = 42
    max_lines: int = 2
    min_s: float = 1.0
    max_s: float = 7.0

    def __post_init__(self) -> None:
        if self.max_chars < 10 or self.max_lines < 1 or not 0 < self.min_s <= self.max_s:
            raise ValueError("subtitle options: need max_chars >= 10, max_lines >= 1 and 0 < min_s <= max_s; got "
                             f"max_chars={self.max_chars!r}, max_lines={self.max_lines!r}, min_s={self.min_s!r}, "
                             f"max_s={self.max_s!r}")

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`make_cues` and :func:`cue_problems`."""
        return {"max_chars": self.max_chars, "max_lines": self.max_lines, "min_s": self.min_s, "max_s": self.max_s}


@dataclass
class Cue:
    """One subtitle cue.

    Attributes:
        start: When it appears (s, in the recording).
        end: When it disappears (s).
        lines: Its lines of text (at most ``max_lines``).
        segment: The work segment whose words it shows (``None`` for a whole clip).
        first_word: Start time of its first word (s).
        last_word: End time of its last word (s).
    """

    start: float
    end: float
    lines: list[str]
    segment: int | None = None
    first_word: float = 0.0
    last_word: float = 0.0

    @property
    def text(self) -> str:
        """The lines joined by newlines."""
        return "\n".join(self.lines)

    def to_dict(self) -> dict[str, Any]:
        """The cue as a JSON-ready dict."""
        return {"start": self.start, "end": self.end, "lines": list(self.lines), "segment": self.segment}


def normalize_word(word: str) -> str:
    """A word as :func:`retime_words` compares it: lower case, without surrounding punctuation.

    Example:
        >>> normalize_word(" Hello,"), normalize_word("“Don't”")
        ('hello', "don't")
    """
    return re.sub(r"^\W+|\W+$", "", word.strip().lower())


def _text(words: Sequence[dict[str, Any]]) -> str:
    return " ".join("".join(str(w["word"]) for w in words).split())


def wrap_lines(text: str, *, max_chars: int = 42, max_lines: int = 2) -> list[str] | None:
    """Break ``text`` into at most ``max_lines`` lines of at most ``max_chars`` characters, between words.

    Lines are balanced (the longest line as short as possible), but a break after punctuation wins over one
    up to 8 characters better balanced. Returns ``None`` when the text does not fit.

    Example:
        >>> wrap_lines("We walked to the market, and then we went home for the evening.")
        ['We walked to the market,', 'and then we went home for the evening.']
        >>> wrap_lines("short"), wrap_lines("x" * 50)
        (['short'], None)
    """
    if max_chars < 1 or max_lines < 1:
        raise ValueError(f"max_chars and max_lines must be positive, got {max_chars!r} and {max_lines!r}")
    words = text.split()
    if not words:
        return []
    joined = " ".join(words)
    if len(joined) <= max_chars:
        return [joined]
    if max_lines == 1:
        return None
    best: tuple[tuple[int, int], list[str]] | None = None
    for k in range(1, len(words)):
        first = " ".join(words[:k])
        if len(first) > max_chars:
            break
        rest = wrap_lines(" ".join(words[k:]), max_chars=max_chars, max_lines=max_lines - 1)
        if rest is None:
            continue
        lines = [first, *rest]
        punct = bool(_CLAUSE_END.search(first) or _SENTENCE_END.search(first))
        key = (max(map(len, lines)) - (8 if punct else 0), max(map(len, lines)))
        if best is None or key < best[0]:
            best = (key, lines)
    return None if best is None else best[1]


def _ends_cue(words: Sequence[dict[str, Any]], i: int, j: int, *, hard_pause_s: float, sentence_pause_s: float,
              min_s: float) -> bool:
    """Whether a cue of ``words[i:j]`` must end before word ``j``: a long pause, or a sentence end and a pause."""
    gap = float(words[j]["start"]) - float(words[j - 1]["end"])
    if gap >= hard_pause_s:
        return True
    return (gap >= sentence_pause_s and bool(_SENTENCE_END.search(str(words[j - 1]["word"]).strip()))
            and float(words[j - 1]["end"]) - float(words[i]["start"]) >= min_s)


def _break_score(words: Sequence[dict[str, Any]], i: int, k: int, *, capacity: int, min_s: float) -> float:
    """How good a cue of ``words[i:k]`` is, ending before word ``k``: sentence end, clause end, pause, fill."""
    last = str(words[k - 1]["word"]).strip()
    score = 3.0 if _SENTENCE_END.search(last) else 1.5 if _CLAUSE_END.search(last) else 0.0
    if k < len(words):
        score += 2.0 * min(1.0, max(0.0, float(words[k]["start"]) - float(words[k - 1]["end"])))
    fill = len(_text(words[i:k])) / capacity
    score += fill
    if float(words[k - 1]["end"]) - float(words[i]["start"]) < min_s:
        score -= 3.0
    if fill < 0.25:
        score -= 1.5
    return score


def make_cues(words: Sequence[dict[str, Any]], *, start: float, end: float, segment: int | None = None,
              max_chars: int = 42, max_lines: int = 2, min_s: float = 1.0, max_s: float = 7.0,
              hard_pause_s: float = 1.5, sentence_pause_s: float = 0.3) -> list[Cue]:
    """Subtitle cues for the words of one segment (or clip) spanning ``[start, end]``.

    Args:
        words: The words in time order (``word``, ``start``, ``end``; Whisper's words carry a leading space).
        start: The segment's start (s): no cue starts before it.
        end: The segment's end (s): no cue ends after it.
        segment: The segment's index, recorded on each cue.
        max_chars: Most characters per line.
        max_lines: Most lines per cue.
        min_s: Shortest time on screen (a shorter cue is stretched into the silence around it).
        max_s: Longest time on screen.
        hard_pause_s: A pause at least this long between two words always ends the cue.
        sentence_pause_s: A sentence end followed by a pause at least this long ends the cue, once the cue
            lasts ``min_s``.

    Returns:
        The cues in time order, inside ``[start, end]``, not overlapping.

    Raises:
        ValueError: ``end`` before ``start``, or an option out of range.

    Example:
        >>> ws = [{"word": f" w{i}", "start": i * 0.5, "end": i * 0.5 + 0.4} for i in range(30)]
        >>> cues = make_cues(ws, start=0.0, end=15.0, max_chars=20)
        >>> [len(c.lines) for c in cues], all(c.end - c.start <= 7 for c in cues)
        ([2, 2, 2], True)
    """
    if end < start:
        raise ValueError(f"the segment ends ({end}) before it starts ({start})")
    if not 0 < min_s <= max_s:
        raise ValueError(f"need 0 < min_s <= max_s, got min_s={min_s!r}, max_s={max_s!r}")
    words = [w for w in words if str(w.get("word", "")).strip()]
    capacity = max_chars * max_lines
    spans: list[tuple[int, int]] = []
    i, n = 0, len(words)
    while i < n:
        j = i + 1  # words[i:j] fits; the first word always goes in, however long
        while j < n and not _ends_cue(words, i, j, hard_pause_s=hard_pause_s, sentence_pause_s=sentence_pause_s,
                                      min_s=min_s) \
                and float(words[j]["end"]) - float(words[i]["start"]) <= max_s \
                and wrap_lines(_text(words[i:j + 1]), max_chars=max_chars, max_lines=max_lines) is not None:
            j += 1
        k = j
        if j < n and not _ends_cue(words, i, j, hard_pause_s=hard_pause_s, sentence_pause_s=sentence_pause_s,
                                   min_s=min_s):
            k = max(range(i + 1, j + 1), key=lambda k: (_break_score(words, i, k, capacity=capacity, min_s=min_s), k))
        spans.append((i, k))
        i = k
    spans = _merge_short(words, spans, start=start, end=end, max_chars=max_chars, max_lines=max_lines, min_s=min_s,
                         max_s=max_s)
    cues = []
    for a, b in spans:
        text = _text(words[a:b])
        lines = wrap_lines(text, max_chars=max_chars, max_lines=max_lines) or [text]
        first, last = float(words[a]["start"]), max(float(words[b - 1]["end"]), float(words[a]["start"]))
        cues.append(Cue(start=min(max(first, start), end), end=min(max(last, start), end), lines=lines,
                        segment=segment, first_word=first, last_word=last))
    _stretch(cues, start=start, end=end, min_s=min_s, max_s=max_s)
    return cues


def _merge_short(words: Sequence[dict[str, Any]], spans: list[tuple[int, int]], *, start: float, end: float,
                 max_chars: int, max_lines: int, min_s: float, max_s: float) -> list[tuple[int, int]]:
    """Join a cue shorter than ``min_s`` that the silence around it cannot stretch to ``min_s`` with the cue
    before it (or else after it), where the two fit as one; else move the last words of the cue before into it
    (the fewest that make it last ``min_s``)."""
    def dur(a: int, b: int) -> float:
        return float(words[b - 1]["end"]) - float(words[a]["start"])

    def fits(a: int, b: int) -> bool:
        return dur(a, b) <= max_s and wrap_lines(_text(words[a:b]), max_chars=max_chars,
                                                 max_lines=max_lines) is not None

    out = list(spans)
    k = 0
    while k < len(out):
        a, b = out[k]
        lo = float(words[out[k - 1][1] - 1]["end"]) if k > 0 else start
        hi = float(words[out[k + 1][0]]["start"]) if k + 1 < len(out) else end
        if dur(a, b) < min_s and hi - lo < min_s:
            if k > 0 and fits(out[k - 1][0], b):
                out[k - 1:k + 1] = [(out[k - 1][0], b)]
                continue
            if k + 1 < len(out) and fits(a, out[k + 1][1]):
                out[k:k + 2] = [(a, out[k + 1][1])]
                continue
            if k > 0:  # the two do not fit as one: move words from the cue before into this one
                p0 = out[k - 1][0]
                moves = [j for j in range(p0 + 1, a) if fits(p0, j) and fits(j, b) and dur(p0, j) >= min_s
                         and hi - float(words[j]["start"]) >= min_s]
                if moves:
                    out[k - 1:k + 1] = [(p0, moves[-1]), (moves[-1], b)]
        k += 1
    return out


def _stretch(cues: list[Cue], *, start: float, end: float, min_s: float, max_s: float) -> None:
    """Give each cue at least ``min_s`` on screen where the silence around it allows, at most ``max_s``; a cue
    ends before the next starts (Whisper's word times can overlap by a few hundredths of a second)."""
    for k, c in enumerate(cues):
        if k + 1 < len(cues) and c.end > cues[k + 1].start:
            c.end = max(c.start, cues[k + 1].start)
        if c.end - c.start > max_s:
            c.end = c.start + max_s
        if c.end - c.start < min_s:
            limit = cues[k + 1].start if k + 1 < len(cues) else end
            c.end = max(c.end, min(c.start + min_s, limit))
        if c.end - c.start < min_s:
            floor = cues[k - 1].end if k else start
            c.start = min(c.start, max(c.end - min_s, floor))
        c.start, c.end = round(c.start, 3), round(c.end, 3)


def retime_words(text: str, model_words: Sequence[dict[str, Any]], *, start: float, end: float,
                 aligned: Sequence[tuple[float, float]] | None = None, min_word_s: float = 0.12
                 ) -> list[dict[str, Any]]:
    """Word times for a segment's text after people edited it, inside the segment's bounds.

    Words of ``text`` that match the model's words in order (compared by :func:`normalize_word`, aligned with
    :class:`difflib.SequenceMatcher`) keep the model's times. Each run of other words shares, by length, the
    time between the kept words around it (or the segment's speech: from the model's first word to its last,
    the segment's bounds without model words). When that time is shorter than ``min_word_s`` per word, the
    kept words next to the run give up their times too, until the run fits.

    With ``aligned`` (each word's times from a forced alignment of ``text`` to the segment's audio, e.g.
    :class:`kdh_ai.realign.Realigner`), a run takes its aligned times instead, where they lie in order inside
    the run's time and give each word at least half of ``min_word_s`` (the alignment squeezes words that are
    not in the audio to nothing); otherwise it is spread as above.

    Args:
        text: The delivered (edited) text.
        model_words: The model's words of the segment (``word``, ``start``, ``end``, ``probability``).
        start: The segment's start (s).
        end: The segment's end (s).
        aligned: ``(start, end)`` per word of ``text`` (split on white space), in the recording's time.
        min_word_s: Least time a re-timed word gets, where the segment allows.

    Returns:
        One dict per word of ``text``: ``word`` (with a leading space), ``start``, ``end``, ``probability``
        (the model's, for a kept word; else ``None``), ``aligned`` (timed by ``aligned``) and ``estimated``
        (spread by length: neither the model's time nor an aligned one).

    Raises:
        ValueError: ``end`` before ``start``, or ``aligned`` not one pair per word.

    Example:
        >>> model = [{"word": " the", "start": 1.0, "end": 1.2, "probability": 0.9},
        ...          {"word": " cat", "start": 1.3, "end": 1.6, "probability": 0.4},
        ...          {"word": " sat.", "start": 1.7, "end": 2.0, "probability": 0.9}]
        >>> [(w["word"], w["start"], w["end"], w["estimated"]) for w in retime_words(
        ...     "The hat sat.", model, start=0.0, end=3.0)]
        [(' The', 1.0, 1.2, False), (' hat', 1.2, 1.7, True), (' sat.', 1.7, 2.0, False)]
        >>> [(w["start"], w["end"], w["aligned"]) for w in retime_words(
        ...     "The hat sat.", model, start=0.0, end=3.0, aligned=[(1.0, 1.2), (1.32, 1.62), (1.7, 2.0)])][1]
        (1.32, 1.62, True)
    """
    if end < start:
        raise ValueError(f"the segment ends ({end}) before it starts ({start})")
    tokens = text.split()
    if aligned is not None and len(aligned) != len(tokens):
        raise ValueError(f"aligned has {len(aligned)} times for {len(tokens)} words")
    if not tokens:
        return []
    model = [w for w in model_words if str(w.get("word", "")).strip()]
    # per token: (start, end, probability, "model" | "aligned" | "estimated") or None while untimed
    times: list[tuple[float, float, float | None, str] | None] = [None] * len(tokens)
    if model:
        sm = difflib.SequenceMatcher(None, [normalize_word(str(w["word"])) for w in model],
                                     [normalize_word(t) for t in tokens], autojunk=False)
        for block in sm.get_matching_blocks():
            for d in range(block.size):
                w = model[block.a + d]
                prob = w.get("probability")
                times[block.b + d] = (float(w["start"]), float(w["end"]), None if prob is None else float(prob),
                                      "model")
        lo_all = min(max(float(model[0]["start"]), start), end)
        hi_all = max(min(float(model[-1]["end"]), end), lo_all)
    else:
        lo_all, hi_all = start, end
    _fill_runs(tokens, times, lo_all=lo_all, hi_all=hi_all, start=start, end=end, min_word_s=min_word_s,
               aligned=aligned)
    out = []
    for tok, t in zip(tokens, times):
        s, e, prob, kind = t  # type: ignore[misc]  # every run was filled
        s, e = min(max(s, start), end), min(max(e, start), end)
        out.append({"word": " " + tok, "start": round(s, 3), "end": round(max(s, e), 3),
                    "probability": prob if kind == "model" else None, "aligned": kind == "aligned",
                    "estimated": kind == "estimated"})
    return out


def _fill_runs(tokens: list[str], times: list[Any], *, lo_all: float, hi_all: float, start: float, end: float,
               min_word_s: float, aligned: Sequence[tuple[float, float]] | None = None) -> None:
    """Time each run of untimed tokens: with its aligned times where they fit the time between its timed
    neighbours, else spread by length over that time (in place)."""
    n = len(times)
    while (a := next((k for k, t in enumerate(times) if t is None), None)) is not None:
        b = a
        while b < n and times[b] is None:
            b += 1
        need = min_word_s * (b - a)
        if a == 0 and b == n:
            lo, hi = lo_all, hi_all
            if hi - lo < need:
                lo, hi = start, end
        else:
            lo = times[a - 1][1] if a > 0 else max(start, min(lo_all, times[b][0] - need))
            hi = times[b][0] if b < n else min(end, max(hi_all, lo + need))
            if hi - lo < need - 1e-9:  # too little room: the kept neighbours give up their times
                if a > 0:
                    times[a - 1] = None
                if b < n:
                    times[b] = None
                continue
        if aligned is not None and _fits(aligned[a:b], lo, hi, min_word_s / 2):
            for k in range(a, b):
                times[k] = (float(aligned[k][0]), float(aligned[k][1]), None, "aligned")
            continue
        weights = [len(t) + 1 for t in tokens[a:b]]
        total, t0, acc = float(sum(weights)), lo, 0
        for k, wgt in enumerate(weights):
            acc += wgt
            t1 = lo + (hi - lo) * acc / total
            times[a + k] = (t0, t1, None, "estimated")
            t0 = t1


def _fits(run: Sequence[tuple[float, float]], lo: float, hi: float, least_s: float) -> bool:
    """Aligned times of a run: in order, inside ``[lo, hi]`` (10 ms of slack), each word at least ``least_s``."""
    prev = lo - 0.01
    for s, e in run:
        if s < prev - 1e-6 or e - s < least_s or e > hi + 0.01:
            return False
        prev = e
    return True


def cue_problems(cues: Sequence[Cue], *, max_chars: int = 42, max_lines: int = 2, min_s: float = 1.0,
                 max_s: float = 7.0) -> list[str]:
    """What breaks the subtitle rules in ``cues`` (``[]``: nothing): too many lines or characters, a cue
    shorter than ``min_s`` or longer than ``max_s`` (1 ms of rounding allowed), overlapping or out-of-order cues.

    Example:
        >>> cue_problems([Cue(0.0, 0.5, ["hi"]), Cue(0.4, 9.0, ["a", "b", "c"])])
        ['cue 1: on screen 0.50 s (< 1.0)', 'cue 2: 3 lines (> 2)', 'cue 2: on screen 8.60 s (> 7.0)', 'cue 2 starts before cue 1 ends']
    """
    out = []
    for k, c in enumerate(cues, 1):
        if len(c.lines) > max_lines:
            out.append(f"cue {k}: {len(c.lines)} lines (> {max_lines})")
        out += [f"cue {k}: line {i} has {len(x)} characters (> {max_chars})" for i, x in enumerate(c.lines, 1)
                if len(x) > max_chars]
        d = c.end - c.start
        if d < min_s - 1e-3:
            out.append(f"cue {k}: on screen {d:.2f} s (< {min_s})")
        if d > max_s + 1e-3:
            out.append(f"cue {k}: on screen {d:.2f} s (> {max_s})")
        if k > 1 and c.start < cues[k - 2].end - 1e-6:
            out.append(f"cue {k} starts before cue {k - 1} ends")
    return out


def _timestamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """The cues as a SubRip (``.srt``) file (composed by the ``srt`` library; the text as written).

    Example:
        >>> print(to_srt([Cue(1.0, 2.5, ["Hello,", "world."])]).strip())
        1
        00:00:01,000 --> 00:00:02,500
        Hello,
        world.
    """
    import datetime

    import srt

    return srt.compose([srt.Subtitle(index=k, start=datetime.timedelta(milliseconds=round(c.start * 1000)),
                                     end=datetime.timedelta(milliseconds=round(c.end * 1000)), content=c.text)
                        for k, c in enumerate(cues, 1)])


def to_vtt(cues: Sequence[Cue]) -> str:
    """The cues as a WebVTT (``.vtt``) file (written by ``webvtt-py``; ``&``, ``<`` and ``>`` escaped as the
    WebVTT standard asks, so a transcript's "<" is text, not markup).

    Example:
        >>> print(to_vtt([Cue(1.0, 2.5, ["Fish & chips."])]).strip())
        WEBVTT
        <BLANKLINE>
        00:00:01.000 --> 00:00:02.500
        Fish &amp; chips.
    """
    import html

    import webvtt

    captions = [webvtt.Caption(_timestamp(c.start), _timestamp(c.end), html.escape(c.text, quote=False))
                for c in cues]
    return webvtt.WebVTT(captions=captions).content
