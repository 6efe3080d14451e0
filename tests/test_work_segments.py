"""Work segments of long recordings (issue 15), engine side: cutting, checking, reading in chunks.

The first tests need no model (cut_segments and the chunk reader on words, probabilities and real VAD); the
last ones run the real tiny.en model on a 2-minute recording of real speech (samples.long_recording).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from kdh_ai.audio import SAMPLE_RATE, AudioError, load_audio, stream_audio
from kdh_ai.engines.common import VAD_FRAME, PlausibilityCheck, TranscribeOptions, work_segments
from kdh_ai.engines.streaming import AudioChunks, pause_cut
from kdh_ai.records import Prediction, Segment
from kdh_ai.samples import long_recording
from kdh_ai.segments import cut_segments

FRAME_S = VAD_FRAME / SAMPLE_RATE
_norm = EnglishTextNormalizer()


def _speech(duration_s: float, spans: list[tuple[float, float]]) -> np.ndarray:
    """VAD probabilities: 0.95 inside the spans, 0.02 elsewhere."""
    probs = np.full(math.ceil(duration_s / FRAME_S), 0.02, np.float32)
    for lo, hi in spans:
        probs[int(lo / FRAME_S):int(math.ceil(hi / FRAME_S))] = 0.95
    return probs


def _sentences(starts: list[float], *, words: int = 8, word_s: float = 0.35, p: float = 0.9) -> list[dict]:
    """Words of sentences starting at ``starts``, each ``words`` words of ``word_s`` seconds, no gap inside."""
    out = []
    for t in starts:
        for k in range(words):
            out.append({"word": f" w{len(out)}", "start": round(t + k * word_s, 3),
                        "end": round(t + (k + 1) * word_s, 3), "probability": p})
    return out


def _speech_of(words: list[dict], duration_s: float) -> np.ndarray:
    return _speech(duration_s, [(w["start"], w["end"]) for w in words])


def _assert_tiles(segs: list[Segment], words: list[dict], duration_s: float) -> None:
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(duration_s)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    assert [s.index for s in segs] == list(range(len(segs)))
    assert [w for s in segs for w in s.words] == words  # every word in exactly one segment, in order
    for s in segs:
        assert all(s.start <= w["start"] and w["end"] <= s.end for w in s.words)
        assert s.text == "".join(w["word"] for w in s.words).strip()


def test_clean_speech_is_cut_in_pauses_into_segments_of_at_most_30_s() -> None:
    """A 5-minute talk of 3 s sentences separated by 0.4-2.5 s pauses: segments tile it, end in pauses (never
    inside a word), last at most 30 s, and none is flagged (no false alarm on clean speech)."""
    rng = np.random.default_rng(0)
    starts, t = [], 0.7
    while t < 290:
        starts.append(round(t, 3))
        t += 8 * 0.35 + rng.uniform(0.4, 2.5)
    words = _sentences(starts)
    duration = starts[-1] + 8 * 0.35 + 1.0
    segs = cut_segments(words, duration_s=duration, speech_probs=_speech_of(words, duration))
    _assert_tiles(segs, words, duration)
    assert all(s.duration_s <= 30.0 for s in segs[1:-1]) and len(segs) >= duration / 30
    assert all(s.status == "ok" and not s.check and s.confidence == pytest.approx(0.9) for s in segs)
    # each cut lies in a pause between sentences (a sentence's words have no gap between them)
    sentence_of = {w["word"]: i // 8 for i, w in enumerate(words)}
    for a, b in zip(segs, segs[1:]):
        assert sentence_of[a.words[-1]["word"]] != sentence_of[b.words[0]["word"]]


def test_skipped_speech_becomes_a_low_confidence_segment_of_its_own() -> None:
    """Whisper wrote nothing for 6 s of speech between two sentences (VAD hears it): that stretch is a
    wordless segment with a low confidence (routing sends it to people); the sentences around it keep theirs,
    and a long quiet pause (9 s, no speech) is not a suspect segment."""
    words = _sentences([1.0, 5.0]) + _sentences([16.0]) + _sentences([29.0, 33.0])
    duration = 37.0
    probs = _speech(duration, [(w["start"], w["end"]) for w in words] + [(8.3, 14.3)])
    segs = cut_segments(words, duration_s=duration, speech_probs=probs)
    _assert_tiles(segs, words, duration)
    gaps = [s for s in segs if not s.words]
    assert len(gaps) == 1 and gaps[0].status == "no_speech" and gaps[0].text == ""
    assert gaps[0].start <= 8.3 and gaps[0].end >= 14.3 and gaps[0].confidence < 0.1
    assert all(s.confidence == pytest.approx(0.9) and not s.check for s in segs if s.words)
    # the same words with the 6 s stretch silent: no wordless segment (the pause just joins its neighbours)
    quiet = cut_segments(words, duration_s=duration, speech_probs=_speech_of(words, duration))
    assert all(s.words for s in quiet)
    # without VAD nothing says a wordless stretch is silent: a long one gets confidence 0
    long_gap = _sentences([1.0]) + _sentences([60.0])
    no_vad = cut_segments(long_gap, duration_s=64.0, speech_probs=None)
    assert [s.confidence for s in no_vad if not s.words] == [0.0, 0.0]


def test_engine_check_names_the_suspect_segment() -> None:
    """The file-level plausibility check only says that something in a long file is wrong; the work segments
    say where: a word stretched over 4 s of speech (the aligner's sign of missing words) flags its own
    segment (check entry, half the confidence) and no other."""
    words = _sentences([1.0, 5.0, 14.0, 18.0, 27.0, 31.0, 40.0, 44.0])
    duration = 48.0
    speech = [(w["start"], w["end"]) for w in words]
    words[20] = {**words[20], "end": round(words[20]["start"] + 4.0, 3)}  # " w20": 4 s long
    for w in words[21:24]:
        w["start"] = w["end"] = words[20]["end"]
    probs = _speech(duration, speech + [(words[20]["start"], words[20]["end"])])
    assert PlausibilityCheck().problems(words, probs, offset_s=0.0, length_s=duration)  # the file fails
    segs = [Segment.from_dict(d) for d in work_segments(words, duration_s=duration, speech_probs=probs)]
    flagged = [s for s in segs if s.check]
    assert len(flagged) == 1 and any("w20" in w["word"] for w in flagged[0].words)
    assert "stretched over 4.0 s of speech" in " ".join(flagged[0].check)
    assert flagged[0].confidence == pytest.approx(0.45, abs=0.01)
    assert all(s.confidence == pytest.approx(0.9) for s in segs if s is not flagged[0])
    # no engine check asked for: cut_segments' own checks only
    plain = work_segments(words, duration_s=duration, speech_probs=probs, check=None)
    assert sum(bool(s.get("check")) for s in plain) <= 1


def test_pause_cut_prefers_the_longest_quiet_run() -> None:
    probs = np.array([0.9] * 5 + [0.1] * 2 + [0.9] * 5 + [0.2] * 6 + [0.9] * 3, np.float32)
    assert pause_cut(probs, 0, len(probs)) == 12 + 3
    assert pause_cut(probs, 0, 10) == 6  # only the first pause in range
    assert pause_cut(np.array([0.9, 0.6, 0.8], np.float32), 0, 3) == 1  # no pause: the least speech-like frame
    with pytest.raises(ValueError):
        pause_cut(probs, 5, 5)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory):
    return long_recording(tmp_path_factory.mktemp("long") / "talk.wav", minutes=2.0, seed=3)


def test_chunks_tile_the_file_and_are_cut_in_pauses(recording) -> None:
    """A 2-minute recording read in 40 s chunks (real Silero VAD): the chunks put together are the file,
    every cut lies in a pause between the recording's clips, and the file's VAD probabilities cover it all.
    A chunk handed back in part (carry) starts the next one there."""
    chunks = AudioChunks(recording.path, chunk_s=40.0, search_s=10.0, block_s=15.0)
    got = list(chunks)
    audio = load_audio(recording.path)
    assert np.array_equal(np.concatenate([c.audio for c in got]), audio)
    assert all(c.start % VAD_FRAME == 0 for c in got) and got[-1].last and not any(c.last for c in got[:-1])
    assert len(got) >= 3 and all(30.0 <= c.length_s <= 40.0 for c in got[:-1])
    assert len(chunks.probs) == math.ceil(len(audio) / VAD_FRAME) == sum(len(c.probs) for c in got)
    for c in got[1:]:
        t = c.offset_s
        assert not any(lo + 0.1 < t < hi - 0.1 for _, lo, hi, _ in recording.clips), f"cut at {t} s in speech"
    # carry: hand back the second half of each chunk; the chunks then overlap exactly there
    chunks = AudioChunks(recording.path, chunk_s=40.0, search_s=10.0, block_s=15.0)
    starts = []
    for c in chunks:
        starts.append((c.start, len(c.audio)))
        if not c.last:
            chunks.carry(c.length_s / 2)
    for (s0, n0), (s1, _) in zip(starts, starts[1:]):
        assert s1 == s0 + (n0 // 2) // VAD_FRAME * VAD_FRAME


def test_stream_audio_refuses_a_truncated_file_at_the_end(recording, tmp_path: Path) -> None:
    data = recording.path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:len(data) // 2])
    blocks = []
    with pytest.raises(AudioError, match="truncated"):
        for b in stream_audio(cut, block_s=30.0):
            blocks.append(b)
    assert blocks  # what came before the end is never a result: the engine makes the file an error


# ---- the real model on a 2-minute recording ------------------------------------------------------------------


def _transcribe(job_dir: Path, source: Path, chunk_s: float | None = None, **options):
    from kdh_ai.engines.faster_whisper import Transcriber
    from kdh_ai.prelabel import run_prelabel

    opts = TranscribeOptions(**options)

    def make() -> Transcriber:
        t = Transcriber(opts)
        if chunk_s is not None:
            t.stream_chunk_s = chunk_s  # instance attribute: only this run
        return t

    return run_prelabel(job_dir, source, make_prelabeler=make, task="transcription", item_kind="audio",
                        options=dataclasses.asdict(opts))


def _check_work_segments(pred: Prediction, reference: str) -> list[Segment]:
    segs = pred.work_segments()
    words = [w for s in pred.payload["segments"] for w in s["words"]]
    _assert_tiles(segs, words, pred.payload["duration_s"])
    assert all(s.duration_s <= 31.0 for s in segs)
    assert " ".join(s.text for s in segs if s.text).split() == pred.text.split()
    assert all(0.0 <= s.confidence <= 1.0 for s in segs)
    units = pred.units()
    assert [u.key for u in units] == [f"{pred.item_id}#{i:04d}" for i in range(len(segs))]
    assert jiwer.wer(_norm(reference), _norm(pred.text)) < 0.08
    return segs


@pytest.mark.slow
def test_long_recording_streamed_in_chunks_gets_work_segments_and_resumes(recording, tmp_path: Path) -> None:
    """The default path on a 2-minute recording, read and decoded in chunks of at most 50 s (so that it has
    chunk boundaries; the default is 240 s): work segments tile it, their texts join to the file's text, every
    word lies inside its segment; the text is nearly the text of the file decoded whole (the path before
    chunking); clean read speech is not flagged. A second run does nothing and changes nothing."""
    from kdh_ai.job import Job

    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(recording.path, batch / "talk.wav")
    summary = _transcribe(tmp_path / "job", batch, chunk_s=50.0)
    pred = Job(tmp_path / "job").current_predictions()["talk"]
    assert summary.counts == {"ok": 1, "pending": 0} and pred.status == "ok"
    segs = _check_work_segments(pred, recording.reference)
    assert len(segs) >= 4 and sum(bool(s.check) for s in segs) <= 1
    whole = _transcribe(tmp_path / "whole", batch, chunk_s=1e9)
    loaded = Job(tmp_path / "whole").current_predictions()["talk"]
    assert whole.counts.get("ok") == 1
    _check_work_segments(loaded, recording.reference)
    assert jiwer.wer(_norm(loaded.text), _norm(pred.text)) < 0.03  # chunk boundaries change little
    before = (tmp_path / "job" / "predictions.jsonl").read_text()
    again = _transcribe(tmp_path / "job", batch, chunk_s=50.0)
    assert again.processed == 0 and again.skipped == 1
    assert (tmp_path / "job" / "predictions.jsonl").read_text() == before


@pytest.mark.slow
def test_packed_long_file_gets_work_segments_and_short_clips_stay_whole(recording, tmp_path: Path) -> None:
    """long_audio="packed" gives work segments too; a clip under segment_over_s has none (one unit)."""
    from kdh_ai.job import Job
    from kdh_ai.samples import ljspeech_clip

    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(recording.path, batch / "talk.wav")
    shutil.copy(ljspeech_clip("LJ001-0001"), batch / "short.wav")
    _transcribe(tmp_path / "job", batch, long_audio="packed")
    preds = Job(tmp_path / "job").current_predictions()
    _check_work_segments(preds["talk"], recording.reference)
    assert "work_segments" not in preds["short"].payload and preds["short"].units() == [preds["short"]]


def test_speech_without_pauses_gets_no_sliver_segments() -> None:
    """Words timed back to back with no pause (a stretch Whisper decoded without timestamps: its words spread
    over whole 30 s windows, 10 ms apart at window starts; seen on a 30-minute recording): cuts still fall
    at the widest gaps, and no segment is a sliver of one word (one was 0.01 s long before)."""
    words, t = [], 0.0
    for k in range(400):
        gap = 0.02 if k % 90 == 89 else 0.0
        words.append({"word": f" w{k}", "start": round(t + gap, 3), "end": round(t + gap + 0.33, 3),
                      "probability": 0.9})
        t += gap + 0.33
    segs = cut_segments(words, duration_s=t + 0.5, speech_probs=_speech_of(words, t + 0.5))
    _assert_tiles(segs, words, t + 0.5)
    assert all(s.duration_s <= 30.0 for s in segs[:-1])
    assert all(s.duration_s >= 3.0 for s in segs[:-1]), [s.duration_s for s in segs]


@pytest.mark.slow
def test_speech_a_chunk_decoding_skipped_is_decoded_again_and_put_in_place() -> None:
    """A chunk whose decoding skipped speech (Whisper's no-speech rule can drop a whole window of a noisy
    chunk: measured 143 words lost on a synthetic recording) gets that stretch decoded on its own: here the
    chunk's decoding found only the first clip's words, and the second clip comes back, timed in place."""
    from kdh_ai.engines.common import vad_probabilities
    from kdh_ai.engines.faster_whisper import Transcriber
    from kdh_ai.engines.streaming import Chunk
    from kdh_ai.samples import ljspeech_clip, load_ljspeech

    refs = dict(zip(load_ljspeech().item_id, load_ljspeech().reference))
    first, second = load_audio(ljspeech_clip("LJ001-0002")), load_audio(ljspeech_clip("LJ001-0008"))
    pause = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([pause, first, pause, second, pause])
    offset = 300 * SAMPLE_RATE // VAD_FRAME * VAD_FRAME  # the chunk lies 300 s into its recording
    chunk = Chunk(audio=audio, start=offset, probs=vad_probabilities(audio), last=False)
    t = Transcriber(TranscribeOptions())
    kept, segs, _ = t._loop(audio[:len(pause) + len(first)], chunk.offset_s, condition_on_previous_text=False)
    assert kept and _norm(" ".join(w["word"] for w in kept)) == _norm(refs["LJ001-0002"])

    words, segments = t._recover_skipped(chunk, chunk.length_s, list(kept), list(segs))
    second_start = chunk.offset_s + (2 * len(pause) + len(first)) / SAMPLE_RATE
    added = [w for w in words if w not in kept]
    assert jiwer.wer(_norm(refs["LJ001-0008"]), _norm(" ".join(w["word"] for w in added))) <= 0.15
    assert all(second_start - 0.5 <= w["start"] and w["end"] <= second_start + len(second) / SAMPLE_RATE + 0.5
               for w in added)
    assert words == sorted(words, key=lambda w: (w["start"], w["end"])) and len(segments) > len(segs)
    assert t.stats["recovered_words"] == len(added)
    # Speech already covered by words is not decoded again.
    again, _ = t._recover_skipped(chunk, chunk.length_s, words, segments)
    assert again == words
