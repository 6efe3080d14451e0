"""Subtitles and timed transcripts of long recordings: cue rules, re-timing after people's edits, and the files
``kdh deliver`` writes, read back with independent SRT and WebVTT parsers (``srt``, ``webvtt-py``), on a real
transcription (Whisper tiny.en) of a real-speech long recording."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pysubs2
import pytest
import srt
import webvtt
from typer.testing import CliRunner

from kdh_ai.cli import app
from kdh_ai.deliver import deliver, delivered_units, file_stem
from kdh_ai.job import Job
from kdh_ai.records import Prediction
from kdh_ai.subtitles import Cue, SubtitleOptions, cue_problems, make_cues, retime_words, to_srt, to_vtt, wrap_lines
from long_job import LongJob, build_long_job

TOLERANCE_S = 0.3  # cue boundaries against the words' times (issue 15)


def _random_words(rng: np.random.Generator, n: int) -> list[dict]:
    vocab = ["a", "the", "interview", "of", "printing,", "books.", "movable", "types", "and", "extraordinarily",
             "why?", "we", "said:", "it", "was", "42-line", "Gutenberg", "comparatively", "modern.", "so"]
    t, out = float(rng.uniform(0, 1)), []
    for _ in range(n):
        w = str(rng.choice(vocab))
        dur = 0.08 + 0.06 * len(w) * float(rng.uniform(0.6, 1.4))
        out.append({"word": " " + w, "start": round(t, 3), "end": round(t + dur, 3), "probability": 0.9})
        t += dur + float(rng.choice([0.0, 0.05, 0.2, 0.6, 2.0], p=[0.5, 0.25, 0.12, 0.1, 0.03]))
    return out


def _words_of(cue_text: str, words: list[dict], at: int) -> tuple[list[dict], int]:
    """The words a cue shows, consumed in order from ``words[at:]`` (compared without white space: a word such
    as Whisper's ``-line`` in ``42-line`` has no leading space)."""
    target, got, end = "".join(cue_text.split()), "", at
    while len(got) < len(target) and end < len(words):
        got += "".join(words[end]["word"].split())
        end += 1
    assert got == target, (cue_text, words[at:end])
    return words[at:end], end


@pytest.mark.parametrize("seed", range(6))
def test_cues_follow_the_rules_on_random_speech(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = _random_words(rng, 400)
    end = words[-1]["end"] + 0.5
    cues = make_cues(words, start=0.0, end=end)
    assert cue_problems(cues) == []
    at = 0
    for c in cues:
        shown, at = _words_of(c.text, words, at)
        assert 0.0 <= c.start <= shown[0]["start"] + 1e-9 and shown[-1]["end"] - 1e-9 <= c.end <= end
        # a cue starts and ends with its words; only a cue stretched to the minimum second moves further
        stretched = abs((c.end - c.start) - 1.0) < 2e-3
        assert shown[0]["start"] - c.start <= TOLERANCE_S or stretched
        assert c.end - shown[-1]["end"] <= TOLERANCE_S or stretched
    assert at == len(words)  # every word is shown exactly once, in order
    # breaks prefer sentence ends: most cues that end before a sentence's end would otherwise be full
    ends = [c.lines[-1].rstrip()[-1] for c in cues]
    assert sum(e in ".?" for e in ends) >= 0.3 * len(cues)


def test_a_long_pause_ends_a_cue_and_a_lone_word_gets_a_second() -> None:
    words = [{"word": " Yes.", "start": 1.0, "end": 1.3}, {"word": " And", "start": 4.0, "end": 4.2},
             {"word": " then", "start": 4.2, "end": 4.5}]
    cues = make_cues(words, start=0.5, end=5.0)
    assert [c.text for c in cues] == ["Yes.", "And then"]
    assert (cues[0].start, cues[0].end) == (1.0, 2.0)  # stretched into the silence after it
    assert (cues[1].start, cues[1].end) == (4.0, 5.0)  # no further than its segment's end


def test_overlapping_word_times_never_overlap_cues() -> None:
    """Whisper's word times overlap now and then ("most" ends at 528.96, "if" starts at 528.86: a real case)."""
    words = [{"word": " alpha", "start": 520.0, "end": 520.5}, {"word": " mostly", "start": 520.5, "end": 521.2},
             {"word": " if", "start": 521.1, "end": 521.4}, {"word": " not.", "start": 521.4, "end": 522.6}]
    cues = make_cues(words, start=519.0, end=523.0, max_chars=12, max_lines=1)
    assert [c.text for c in cues] == ["alpha mostly", "if not."]
    assert cues[0].end == cues[1].start == 521.1 and cue_problems(cues, max_chars=12, max_lines=1) == []


def test_a_lone_last_word_takes_words_from_a_full_cue_before_it() -> None:
    """A real case (10-minute recording): a full two-line cue, then "book" alone at the segment's end with
    less than a second left; the two do not fit as one cue, so "printed" moves over to give "book" a second."""
    text = "produced the block books which were the immediate predecessors of the true printed book"
    times = [361.66, 362.02, 362.42, 362.76, 363.28, 363.66, 363.9, 364.1, 364.58, 365.12, 365.56, 365.7, 365.98,
             366.34, 366.71]
    words = [{"word": " " + w, "start": a, "end": b} for w, a, b in zip(text.split(), times, times[1:])]
    cues = make_cues(words, start=350.64, end=367.285)
    assert cue_problems(cues) == [], [(c.start, c.end, c.lines) for c in cues]
    assert " ".join(c.text.replace("\n", " ") for c in cues) == text and cues[-1].text != "book"


def test_wrap_lines_keeps_the_limits() -> None:
    text = "the invention of movable metal letters in the middle of the 15th century"
    lines = wrap_lines(text)
    assert lines is not None and len(lines) == 2 and all(len(x) <= 42 for x in lines)
    assert " ".join(lines) == text
    assert lines == ["the invention of movable metal letters", "in the middle of the 15th century"]  # balanced
    assert wrap_lines(text + " may justly be considered as the art") is None  # more than 2 x 42
    assert wrap_lines(text, max_chars=30, max_lines=3) == ["the invention of movable", "metal letters in the",
                                                           "middle of the 15th century"]


def test_retime_keeps_kept_words_and_stays_inside_the_segment() -> None:
    model = [{"word": f" w{i}", "start": 10 + i * 0.5, "end": 10 + i * 0.5 + 0.4, "probability": 0.8}
             for i in range(10)]
    out = retime_words("w0 new w2 w3 w5 w6 more words here w7 w8 w9 tail", model, start=9.5, end=15.5)
    assert [w["word"].strip() for w in out][:3] == ["w0", "new", "w2"]
    kept = {w["word"].strip(): w for w in out if not w["estimated"]}
    assert kept["w0"]["start"] == 10.0 and kept["w9"]["end"] == pytest.approx(14.9)
    assert all(9.5 <= w["start"] <= w["end"] <= 15.5 for w in out)
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(out, out[1:]))  # in order, no overlap
    # inserted words with no room between their neighbours take some of the neighbours' time
    out = retime_words("w0 w1 x y z w2", model[:3], start=9.5, end=11.5)
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(out, out[1:]))
    assert min(w["end"] - w["start"] for w in out) >= 0.12 - 1e-6
    # a segment the model left empty: the words share its bounds
    out = retime_words("people heard this", [], start=3.0, end=6.0)
    assert out[0]["start"] == 3.0 and out[-1]["end"] == 6.0 and all(w["estimated"] for w in out)


def test_srt_and_vtt_of_hand_made_cues_parse() -> None:
    cues = [Cue(0.5, 2.0, ["Hello, world."]), Cue(2.5, 4.25, ["A second cue", "on two lines."])]
    parsed = list(srt.parse(to_srt(cues)))
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in parsed] == [
        (0.5, 2.0, "Hello, world."), (2.5, 4.25, "A second cue\non two lines.")]
    vtt = webvtt.from_string(to_vtt(cues))
    assert [(c.start, c.end, c.text) for c in vtt.captions] == [
        ("00:00:00.500", "00:00:02.000", "Hello, world."), ("00:00:02.500", "00:00:04.250", "A second cue\non two lines.")]
    for text, fmt in ((to_srt(cues), "srt"), (to_vtt(cues), "vtt")):  # a third, independent reader
        events = pysubs2.SSAFile.from_string(text, format_=fmt).events
        assert [(e.start, e.end, e.plaintext) for e in events] == [(500, 2000, "Hello, world."),
                                                                  (2500, 4250, "A second cue\non two lines.")]


def test_transcript_text_is_text_not_markup() -> None:
    """People write "&", "<" or "{laughs}" in transcripts: SRT keeps them as written, WebVTT escapes them."""
    import html

    cues = [Cue(0.5, 2.0, ["{laughs} fish & chips", "<inaudible> 5 > 3"])]
    assert list(srt.parse(to_srt(cues)))[0].content == cues[0].text
    vtt = to_vtt(cues)
    assert "fish &amp; chips" in vtt and "&lt;inaudible&gt;" in vtt
    assert html.unescape(webvtt.from_string(vtt).captions[0].text) == cues[0].text


def test_file_stems_are_safe_and_distinct() -> None:
    taken: set[str] = set()
    assert file_stem("a/b c", taken) == "a/b_c"
    assert file_stem("a/b:c", taken).startswith("a/b_c-")  # same safe name: a hash keeps them apart
    assert file_stem("../../etc/passwd") == "etc/passwd"


# ---- a real transcription of a long recording ------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_job(tmp_path_factory: pytest.TempPathFactory) -> LongJob:
    return build_long_job(tmp_path_factory.mktemp("long"), minutes=1.5, seed=3)


@pytest.fixture(scope="module")
def delivered(long_job: LongJob, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("delivered")
    res = CliRunner().invoke(app, ["deliver", str(long_job.job.root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _speech_overlap(start: float, end: float, clips: list[tuple[str, float, float, str]]) -> float:
    """Share of ``[start, end]`` in which a clip of the recording plays (speech)."""
    covered = sum(max(0.0, min(end, b) - max(start, a)) for _, a, b, _ in clips)
    return covered / (end - start)


@pytest.mark.slow
def test_long_recording_subtitles_parse_and_match_the_words(long_job: LongJob, delivered: Path) -> None:
    base = delivered / "transcripts" / "interview"
    doc = json.loads(base.with_suffix(".json").read_text())
    subs = list(srt.parse(base.with_suffix(".srt").read_text(encoding="utf-8")))
    vtt = webvtt.read(str(base.with_suffix(".vtt")))
    third = pysubs2.load(str(base.with_suffix(".vtt"))).events
    assert len(subs) == len(vtt.captions) == len(third) == len(doc["cues"]) > 10
    for s, v, e, c in zip(subs, vtt.captions, third, doc["cues"]):
        assert s.content == v.text == e.plaintext == "\n".join(c["lines"])
        assert abs(s.start.total_seconds() - c["start"]) < 1e-3 and abs(e.start / 1000 - c["start"]) < 1e-3
        assert abs(s.end.total_seconds() - c["end"]) < 1e-3 and abs(e.end / 1000 - c["end"]) < 1e-3
    cues = [Cue(s.start.total_seconds(), s.end.total_seconds(), s.content.split("\n")) for s in subs]
    assert cue_problems(cues) == []  # <= 42 characters, <= 2 lines, 1-7 s, in order
    segments = {s["index"]: s for s in doc["segments"]}
    assert len(segments) == len(long_job.segments)
    # Cues of unedited (and re-aligned) segments: within 0.3 s of their words (as parsed back from the SRT file)
    by_segment: dict[int, list[int]] = {}
    for k, c in enumerate(doc["cues"]):
        by_segment.setdefault(c["segment"], []).append(k)
    checked = 0
    for index, ks in by_segment.items():
        seg = segments[index]
        at = 0
        for k in ks:
            s = subs[k]
            start, end = s.start.total_seconds(), s.end.total_seconds()
            assert seg["start"] - 1e-3 <= start < end <= seg["end"] + 1e-3  # inside its segment
            shown, at = _words_of(s.content.replace("\n", " "), seg["words"], at)
            if seg["word_times"] in ("model", "aligned"):
                stretched = abs((end - start) - 1.0) < 2e-3
                assert abs(start - shown[0]["start"]) <= TOLERANCE_S or stretched, (s, shown[0])
                assert abs(end - shown[-1]["end"]) <= TOLERANCE_S or stretched, (s, shown[-1])
                checked += 1
        assert at == len(seg["words"])
    assert checked >= 10
    # ... and the audio: a cue is on screen while the recording's speech plays (mostly)
    overlaps = [_speech_overlap(c.start, c.end, long_job.rec.clips) for c in cues]
    assert min(overlaps) > 0.4 and float(np.mean(overlaps)) > 0.85, overlaps


@pytest.mark.slow
def test_people_checked_segments_in_the_json_txt_and_tables(long_job: LongJob, delivered: Path) -> None:
    base = delivered / "transcripts" / "interview"
    doc = json.loads(base.with_suffix(".json").read_text())
    segs = {s["index"]: s for s in doc["segments"]}
    for index, text in long_job.edited.items():
        s = segs[index]
        assert s["text"] == text and s["checked"] and s["edited"] and s["role"] == "human"
        assert s["provenance"] == "human" and s["checked_by"] and s["word_times"] in ("aligned", "estimated")
        n = len(s["model_text"].split())
        assert s["model_wer"] == pytest.approx(4 / len(text.split()), abs=1e-9) or n < 9  # 1 sub, 1 del, 2 ins
        assert " ".join(w["word"].strip() for w in s["words"]) == text
        changed = [w for w in s["words"] if w["estimated"] or w["aligned"]]
        assert changed and len(changed) < len(s["words"])  # the kept words keep the model's times
        assert all(s["start"] <= w["start"] <= w["end"] <= s["end"] for w in s["words"])
        assert text in base.with_suffix(".txt").read_text()
    for index in long_job.confirmed:
        s = segs[index]
        assert s["checked"] and not s["edited"] and s["word_times"] == "model" and s["model_wer"] == 0
    for index in long_job.waiting:  # routed to people, no answer yet: the model's text, not checked
        s = segs[index]
        assert not s["checked"] and s["role"] == "human" and s["provenance"] == "model" and s["model_wer"] is None
    auto = [s for s in doc["segments"] if s["role"] == "auto_accept"]
    assert auto and all(not s["checked"] and s["text"] == s["model_text"] for s in auto)
    assert doc["summary"]["checked"] == len(long_job.edited) + len(long_job.confirmed)
    assert doc["text"].startswith(doc["segments"][0]["text"][:20])
    # the per-item table: one row, its answer the segments' answers joined, provenance mixed
    item = [json.loads(x) for x in (delivered / "delivered.jsonl").read_text().splitlines()]
    assert len(item) == 1 and item[0]["provenance"] == "mixed" and item[0]["segments"] == len(segs)
    assert item[0]["segments_checked"] == doc["summary"]["checked"]
    assert item[0]["answer"] == " ".join(s["text"] for s in doc["segments"] if s["text"])
    # the unit table: one row per segment, in Parquet and as a Hugging Face dataset, times and words included
    table = pq.read_table(delivered / "delivered_segments.parquet").to_pylist()
    assert [r["segment"] for r in table] == sorted(segs) and all(r["item_id"] == "interview" for r in table)
    assert all(r["key"] == f"interview#{r['segment']:04d}" for r in table)
    assert [r["start"] for r in table] == [segs[i]["start"] for i in sorted(segs)]
    assert table[0]["words"] and set(table[0]["words"][0]) == {"word", "start", "end", "probability", "aligned",
                                                               "estimated"}
    ds = datasets.load_from_disk(str(delivered / "hf_segments"))
    assert len(ds) == len(segs) and ds[0]["audio_path"].endswith("interview.wav")
    summary = json.loads((delivered / "delivery.json").read_text())
    assert summary["transcripts"] == {"interview": "transcripts/interview"} and summary["units"] == len(segs)


@pytest.mark.slow
def test_subtitle_options_and_per_file_choices(long_job: LongJob, tmp_path: Path) -> None:
    res = deliver(long_job.job.root, tmp_path / "narrow", subtitles=SubtitleOptions(max_chars=32, max_lines=1))
    subs = list(srt.parse((res.transcripts["interview"].with_suffix(".srt")).read_text()))
    assert subs and all(len(s.content.split("\n")) == 1 and len(s.content) <= 32 for s in subs)
    assert not deliver(long_job.job.root, tmp_path / "none", per_file="none").transcripts
    assert not (tmp_path / "none" / "transcripts").exists()
    res = CliRunner().invoke(app, ["deliver", str(long_job.job.root), "--out", str(tmp_path / "x"),
                                   "--per-file", "some"])
    assert res.exit_code == 2 and "long" in res.output


def test_short_clips_get_files_with_per_file_all(tmp_path: Path) -> None:
    """A short clip (no work segments) is one unit; with ``per_file="all"`` it gets its subtitles too."""
    job = Job(tmp_path / "job")
    words = [{"word": " Hello", "start": 0.4, "end": 0.8, "probability": 0.9},
             {"word": " there.", "start": 0.9, "end": 1.6, "probability": 0.9}]
    job.predictions.append([Prediction(item_id="clip", task="transcription", text="Hello there.", confidence=0.9,
                                       status="ok", model={"name": "m", "version": "1"}, config_hash="h",
                                       source="/a/clip.wav", sha256="x",
                                       payload={"duration_s": 2.0, "segments": [{"words": words}]}).to_dict()])
    job.items.append([{"item_id": "clip", "path": "/a/clip.wav"}])
    job.update_manifest(task="transcription", config_hash="h")
    units = delivered_units(job)
    assert len(units) == 1 and units[0]["segment"] is None and units[0]["end"] == 2.0
    assert units[0]["word_times"] == "model" and len(units[0]["words"]) == 2
    assert not deliver(job.root, tmp_path / "d1").transcripts  # default: long recordings only
    res = deliver(job.root, tmp_path / "d2", per_file="all")
    subs = list(srt.parse(res.transcripts["clip"].with_suffix(".srt").read_text()))
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs] == [(0.4, 1.6, "Hello there.")]


@pytest.mark.slow
def test_realigner_agrees_with_the_models_own_word_times(long_job: LongJob, delivered: Path) -> None:
    """Forced alignment of a segment's own text, on the segment's audio cut from the file, gives the words the
    times the model gave them (same alignment, another window); a replaced word takes the replaced one's place."""
    from kdh_ai.realign import Realigner, read_spans

    p = long_job.job.current_predictions()["interview"]
    segs = [s for s in long_job.segments if s.words and s.end - s.start <= 30]
    clips = read_spans(p.source, [(s.start, s.end) for s in segs])
    realigner = Realigner("whisper-tiny.en")
    gaps = []
    for s, audio in zip(segs, clips):
        assert len(audio) == pytest.approx((s.end - s.start) * 16000, abs=2)
        words = realigner.align(audio, s.text, start=s.start, end=s.end)
        assert words is not None and "".join(w["word"] for w in words).split() == s.text.split()
        if len(words) == len(s.words):
            gaps += [abs(a["start"] - b["start"]) for a, b in zip(words, s.words)]
    assert len(gaps) > 100
    assert float(np.median(gaps)) < 0.1 and float(np.quantile(gaps, 0.9)) < TOLERANCE_S, np.quantile(gaps, [.5, .9])
    # in the delivered edit, "corrected" replaced the model's second word: it sits where that word was
    doc = json.loads((delivered / "transcripts" / "interview.json").read_text())
    for index in long_job.edited:
        seg = next(s for s in doc["segments"] if s["index"] == index)
        model = next(s for s in long_job.segments if s.index == index).words
        assert seg["words"][1]["word"] == " corrected" and not seg["words"][1]["estimated"]
        assert abs(seg["words"][1]["start"] - model[1]["start"]) < TOLERANCE_S
    res = deliver(long_job.job.root, delivered.parent / "no-realign", realign=False)
    doc = json.loads(res.transcripts["interview"].with_suffix(".json").read_text())
    assert all(s["word_times"] == "estimated" for s in doc["segments"] if s["edited"])
    assert not any(w["aligned"] for s in doc["segments"] for w in s["words"])


@pytest.mark.slow
def test_delivery_without_the_jobs_model_keeps_estimated_times(long_job: LongJob, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A job made with a model this machine cannot load for alignment (another engine's, or gone): delivery
    goes on, the edited segments keep times placed between the kept words, and the log says why."""
    import shutil

    job = Job(shutil.copytree(long_job.job.root, tmp_path / "job"))
    job.update_manifest(model={"name": "no-such-model", "version": "0"})
    res = deliver(job.root, tmp_path / "out")
    doc = json.loads(res.transcripts["interview"].with_suffix(".json").read_text())
    assert all(s["word_times"] == "estimated" for s in doc["segments"] if s["edited"])
    assert "Cannot re-align the edited segments of interview" in caplog.text
    assert list(srt.parse(res.transcripts["interview"].with_suffix(".srt").read_text()))
