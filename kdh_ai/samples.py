"""Sample data bundled with kdh_ai, for the demo, the tests and the trainee notebooks: one way to find each set.

Each data set has a function for its folder or file and a ``load_*`` function that reads it into pandas:

=====================  ===================================================  ==================================
data set               what it is                                           loader
=====================  ===================================================  ==================================
LJ Speech (12 clips)   real speech with exact transcripts                   :func:`load_ljspeech`
a long recording       LJ clips joined with natural pauses, with reference  :func:`long_recording`
routing pool           Whisper tiny.en confidences and word errors          :func:`load_routing_pool`
SMS spam (200)         real SMS labelled ham or spam                        :func:`load_sms_spam`
BANKING77 subset       bank customer questions, 77 intents                  :func:`load_banking77`
CrowdSpeech subset     crowd transcriptions of LibriSpeech, references      :func:`load_crowdspeech`
Blue Birds             crowd yes/no labels of bird photos, with gold        :func:`load_bluebirds`
ActiveCrowd sets       crowd labels of three tasks, with gold               :func:`load_activecrowd`
=====================  ===================================================  ==================================

Crowd labels come in the data contract of :mod:`kdh_ai.quality`: a DataFrame with the columns ``task, worker,
label`` (``text`` for transcriptions). Each set's ``MANIFEST.md`` beside its files names its source and license.

LJ Speech and the routing pool are inside the package (``kdh_ai/data``). The text and crowd sets live in the
repository's ``tests/data`` (the tests use them too), so their loaders need a clone of the repository (an
editable install, as ``make`` makes); without one they raise
:class:`~kdh_ai.errors.InputFileNotFoundError` saying so.

Example:
    >>> from kdh_ai import samples
    >>> birds = samples.load_bluebirds()
    >>> list(birds.labels.columns), birds.gold.name
    (['task', 'worker', 'label'], 'gold')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kdh_ai.errors import InputFileNotFoundError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ACTIVECROWD_SETS",
    "CrowdLabels",
    "CrowdTranscripts",
    "banking77_dir",
    "crowd_dir",
    "ljspeech_clip",
    "ljspeech_dir",
    "ljspeech_manifest",
    "load_activecrowd",
    "load_banking77",
    "load_bluebirds",
    "load_crowdspeech",
    "load_ljspeech",
    "load_routing_pool",
    "load_sms_spam",
    "long_recording",
    "LongRecording",
    "routing_pool",
    "sms_spam_dir",
    "sms_spam_texts",
]

_DATA = Path(__file__).resolve().parent / "data"
_REPO_DATA = _DATA.parent.parent / "tests" / "data"

ACTIVECROWD_SETS = ("SP_amt", "CF_amt", "MS")
"""The ActiveCrowd sets: movie-review polarity (SP_amt), tweet sentiment (CF_amt), music genre (MS)."""


@dataclass
class CrowdLabels:
    """A crowd-labelled set with known answers.

    Attributes:
        labels: One row per answer: ``task, worker, label``.
        gold: The known answer of each task (index ``task``, name ``gold``).
    """

    labels: pd.DataFrame
    gold: pd.Series


@dataclass
class CrowdTranscripts:
    """Crowd transcriptions of the same recordings, with their references.

    Attributes:
        answers: One row per transcript: ``task, worker, text``.
        references: The exact reference transcript of each task (index ``task``, name ``ref``).
        baselines: The data set's own aggregation baselines (index ``audio``, one column per method).
    """

    answers: pd.DataFrame
    references: pd.Series
    baselines: pd.DataFrame


def _repo_data(*parts: str) -> Path:
    """A data set folder in the repository's ``tests/data``; refuses clearly when it is not there."""
    path = _REPO_DATA.joinpath(*parts)
    if not path.exists():
        raise InputFileNotFoundError(f"{path} is missing: this data set ships with the kdh_ai repository "
                                     "(tests/data), not inside the installed package; use a clone of the "
                                     "repository (`make` installs it in editable mode)")
    return path


# ---- speech ----------------------------------------------------------------------------------------------
def ljspeech_dir() -> Path:
    """Folder of the 12 bundled LJ Speech clips (public domain; see its ``MANIFEST.md``)."""
    return _DATA / "ljspeech"


def ljspeech_manifest() -> Path:
    """The kdh manifest (CSV: ``item_id, path, reference, ...``) of the bundled LJ Speech clips."""
    return ljspeech_dir() / "manifest.csv"


def ljspeech_clip(item_id: str) -> Path:
    """The WAV file of one bundled LJ Speech clip, e.g. ``ljspeech_clip("LJ001-0002")``.

    Raises:
        InvalidInputError: No bundled clip has that id (the message lists them).
    """
    path = ljspeech_dir() / "wavs" / f"{item_id}.wav"
    if not path.is_file():
        have = sorted(p.stem for p in (ljspeech_dir() / "wavs").glob("*.wav"))
        raise InvalidInputError(f"no bundled LJ Speech clip {item_id!r}; the clips are {have}")
    return path


@dataclass
class LongRecording:
    """A long recording built by :func:`long_recording`.

    Attributes:
        path: The WAV file (16 kHz mono, 16-bit).
        reference: The exact transcript of the whole recording (the clips' references, in order).
        duration_s: Its length (s).
        clips: Where each clip lies: ``(clip id, start s, end s, reference)`` in time order.
    """

    path: Path
    reference: str
    duration_s: float
    clips: list[tuple[str, float, float, str]]

    def segment_references(self, segments: Sequence[Any]) -> list[str]:
        """The reference text that belongs to each work segment of this recording (for simulated annotators
        and per-segment scoring of sample data).

        The reference words are aligned (``jiwer``, after lower-casing and dropping punctuation) to the words
        the segments hold (``text``); a reference word aligned to a segment's word belongs to that segment, one
        the model left out belongs to the segment at its time on the clip timeline (spread evenly over its
        clip), among the segments between its aligned neighbours. Every reference word lands in exactly one
        segment, in order, so the texts joined give :attr:`reference` back.

        Args:
            segments: The recording's work segments in time order (:class:`kdh_ai.records.Segment`, or
                anything with ``start`` and ``text``).

        Example:
            >>> from kdh_ai.records import Segment
            >>> rec = LongRecording(Path("talk.wav"), "Hello there. Good day to you.", 9.0,
            ...                     [("a", 0.5, 2.0, "Hello there."), ("b", 4.0, 8.0, "Good day to you.")])
            >>> segs = [Segment(index=0, start=0.0, end=3.0, text="Hello, hair.", confidence=0.5, words=[]),
            ...         Segment(index=1, start=3.0, end=9.0, text="day to you", confidence=0.9, words=[])]
            >>> rec.segment_references(segs)
            ['Hello there.', 'Good day to you.']
        """
        return _segment_references(self.clips, segments)


def long_recording(path: str | Path, *, minutes: float = 10.0, seed: int = 0, clips_dir: str | Path | None = None,
                   pause_s: tuple[float, float] = (0.3, 1.8), long_pause_every: int = 9,
                   long_pause_s: tuple[float, float] = (4.0, 9.0), noise_db: float = -55.0) -> LongRecording:
    """Write a long recording made of real speech clips joined by natural pauses, and return its reference.

    Clips of ``clips_dir`` (an LJ Speech style folder: ``manifest.csv`` with ``item_id, path, reference``;
    default: the bundled clips) are drawn in a shuffled order, each clip once before any repeats, until the
    recording is ``minutes`` long. Between clips: a pause drawn from ``pause_s``; every ``long_pause_every``
    clips a longer one from ``long_pause_s`` (a speaker thinking, a page turned). A faint noise floor
    (``noise_db`` dBFS) runs under everything, as in a real room. Deterministic for a given ``seed``.

    Args:
        path: Where to write the WAV file (its folder is created).
        minutes: Length to reach (the last clip ends it, so the result can be a few seconds longer).
        seed: Random seed of the order, the pauses and the noise.
        clips_dir: A folder of clips with a ``manifest.csv`` (default: :func:`ljspeech_dir`).
        pause_s: Range of the pause between clips (s).
        long_pause_every: Every this many clips, the pause is drawn from ``long_pause_s`` (0: never).
        long_pause_s: Range of the longer pauses (s).
        noise_db: Level of the noise floor in dBFS (``None``-like very low values such as -120 give silence).

    Raises:
        InvalidInputError: ``minutes`` not positive, or a pause range out of order.

    Example:
        >>> import tempfile
        >>> rec = long_recording(Path(tempfile.mkdtemp()) / "talk.wav", minutes=0.5, seed=1)
        >>> rec.duration_s >= 30, rec.clips[0][1] > 0, len(rec.reference.split()) > 50
        (True, True, True)
    """
    import wave

    import numpy as np
    import pandas as pd

    from kdh_ai.audio import SAMPLE_RATE, load_audio

    if minutes <= 0:
        raise InvalidInputError(f"minutes must be positive, got {minutes!r}")
    if not (0 <= pause_s[0] <= pause_s[1] and 0 <= long_pause_s[0] <= long_pause_s[1]):
        raise InvalidInputError(f"pause ranges must be (low, high) with 0 <= low <= high, got {pause_s!r} and "
                                f"{long_pause_s!r}")
    folder = Path(clips_dir) if clips_dir is not None else ljspeech_dir()
    table = pd.read_csv(folder / "manifest.csv", keep_default_na=False)
    audio = {r.item_id: load_audio(folder / r.path) for r in table.itertuples()}
    refs = dict(zip(table.item_id, table.reference))
    rng = np.random.default_rng(seed)
    parts, placed, t, order = [], [], 0.0, []
    while t < minutes * 60:
        if not order:
            order = [str(c) for c in rng.permutation(list(audio))]
        long_one = long_pause_every and len(placed) % long_pause_every == long_pause_every - 1
        pause = rng.uniform(*(long_pause_s if long_one else pause_s)) if placed else rng.uniform(0.5, 1.0)
        parts.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        t += len(parts[-1]) / SAMPLE_RATE
        cid = order.pop()
        parts.append(audio[cid])
        placed.append((cid, round(t, 3), round(t + len(audio[cid]) / SAMPLE_RATE, 3), str(refs[cid])))
        t += len(audio[cid]) / SAMPLE_RATE
    parts.append(np.zeros(int(0.8 * SAMPLE_RATE), np.float32))
    signal = np.concatenate(parts)
    signal += rng.normal(0.0, 10 ** (noise_db / 20), len(signal)).astype(np.float32)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return LongRecording(out, " ".join(p[3] for p in placed), round(len(signal) / SAMPLE_RATE, 3), placed)


def _plain(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum() or ch == "'") or word.lower()


def _segment_references(clips: Sequence[tuple[str, float, float, str]], segments: Sequence[Any]) -> list[str]:
    """See :meth:`LongRecording.segment_references`."""
    import bisect

    import jiwer

    ref: list[str] = []
    times: list[float] = []
    for _cid, start, end, text in clips:
        words = str(text).split()
        ref += words
        times += [start + (end - start) * (i + 0.5) / len(words) for i in range(len(words))]
    hyp_seg = [k for k, seg in enumerate(segments) for _w in str(seg.text or "").split()]
    hyp = [_plain(w) for seg in segments for w in str(seg.text or "").split()]
    starts = [float(seg.start) for seg in segments]
    out: list[list[str]] = [[] for _ in segments]

    def at(t: float, lo: int, hi: int) -> int:
        return min(max(bisect.bisect_right(starts, t) - 1, lo), hi)

    if not segments:
        return []
    if not hyp or not ref:
        for w, t in zip(ref, times):
            out[at(t, 0, len(segments) - 1)].append(w)
        return [" ".join(ws) for ws in out]
    for c in jiwer.process_words(" ".join(_plain(w) for w in ref), " ".join(hyp)).alignments[0]:
        if c.type in ("equal", "substitute"):
            for r, h in zip(range(c.ref_start_idx, c.ref_end_idx), range(c.hyp_start_idx, c.hyp_end_idx)):
                out[hyp_seg[h]].append(ref[r])
        elif c.type == "delete":
            lo = hyp_seg[c.hyp_start_idx - 1] if c.hyp_start_idx > 0 else 0
            hi = hyp_seg[c.hyp_start_idx] if c.hyp_start_idx < len(hyp) else len(segments) - 1
            for r in range(c.ref_start_idx, c.ref_end_idx):
                out[at(times[r], lo, hi)].append(ref[r])
    return [" ".join(ws) for ws in out]


def load_ljspeech() -> pd.DataFrame:
    """The bundled LJ Speech manifest: ``item_id, path`` (relative to :func:`ljspeech_dir`), ``reference``,
    ``duration_s`` and the rest of its columns."""
    import pandas as pd

    return pd.read_csv(ljspeech_manifest())


def routing_pool() -> Path:
    """Real tiny.en results on 300+ clips: ``item_id, confidence, errors, words`` (see ``routing_pool.md``).

    Made by ``benchmarks/routing.py --export-pool``: Whisper tiny.en pre-labels of LJ Speech clips and of
    synthetic flite/festival speech (clean, noisy, telephone band), with each clip's word errors against its
    exact reference. Used by the routing notebook.
    """
    return _DATA / "routing_pool.csv"


def load_routing_pool() -> pd.DataFrame:
    """:func:`routing_pool` read into a DataFrame."""
    import pandas as pd

    return pd.read_csv(routing_pool())


# ---- text ------------------------------------------------------------------------------------------------
def sms_spam_dir() -> Path:
    """Folder of the SMS spam set: ``texts.csv``, ``labels.yaml`` (ham, spam), ``MANIFEST.md`` (CC BY 4.0)."""
    return _repo_data("text", "sms_spam")


def sms_spam_texts() -> Path:
    """200 real SMS texts labelled ham or spam (CSV: ``item_id, text, reference``; CC BY 4.0, see the
    ``LICENSE`` beside it). Used by the demo, the tests and the classification qualification test."""
    return sms_spam_dir() / "texts.csv"


def load_sms_spam() -> pd.DataFrame:
    """The 200 SMS: ``item_id, text, reference`` (``ham`` or ``spam``)."""
    import pandas as pd

    return pd.read_csv(sms_spam_texts(), keep_default_na=False)


def banking77_dir() -> Path:
    """Folder of the BANKING77 subset: ``texts.csv``, ``train_labels.csv``, ``labels.yaml``, ``MANIFEST.md``."""
    return _repo_data("text", "banking77")


def load_banking77(*, with_train: bool = True) -> pd.DataFrame:
    """The BANKING77 subset: ``item_id, text, reference`` (the intent).

    Args:
        with_train: Also the rows of ``train_labels.csv`` (their label as ``reference``), after the test rows.
    """
    import pandas as pd

    folder = banking77_dir()
    frames = [pd.read_csv(folder / "texts.csv", keep_default_na=False)]
    if with_train:
        frames.append(pd.read_csv(folder / "train_labels.csv", keep_default_na=False)
                      .rename(columns={"label": "reference"}))
    return pd.concat(frames, ignore_index=True)[["item_id", "text", "reference"]]


# ---- crowd labels ----------------------------------------------------------------------------------------
def crowd_dir(name: str) -> Path:
    """Folder of a crowd data set: ``crowdspeech``, ``bluebirds`` or ``activecrowd``.

    Raises:
        InvalidInputError: Another name.
    """
    if name not in ("crowdspeech", "bluebirds", "activecrowd"):
        raise InvalidInputError(f"unknown crowd data set {name!r}; valid: 'crowdspeech', 'bluebirds', "
                                "'activecrowd'")
    return _repo_data("crowd", name)


def load_crowdspeech() -> CrowdTranscripts:
    """The CrowdSpeech subset: crowd transcripts of LibriSpeech sentences, their references and baselines."""
    import pandas as pd

    folder = crowd_dir("crowdspeech")
    answers = pd.read_csv(folder / "crowd.tsv", sep="\t", keep_default_na=False).rename(
        columns={"INPUT:audio": "task", "OUTPUT:transcription": "text", "ASSIGNMENT:worker_id": "worker"})
    refs = pd.read_csv(folder / "gt.txt", sep="\t", header=None, names=["task", "ref"], keep_default_na=False,
                       quoting=3).set_index("task")["ref"]
    baselines = pd.read_csv(folder / "baselines.tsv", sep="\t", keep_default_na=False, quoting=3).set_index("audio")
    return CrowdTranscripts(answers=answers, references=refs, baselines=baselines)


def load_bluebirds() -> CrowdLabels:
    """Blue Birds: 39 workers' yes/no answers on 108 bird photos, with the gold answer of each."""
    import pandas as pd

    folder = crowd_dir("bluebirds")
    labels = pd.read_csv(folder / "labels.csv")[["task", "worker", "label"]]
    return CrowdLabels(labels=labels, gold=pd.read_csv(folder / "gold.csv").set_index("task")["gold"])


def load_activecrowd(name: str) -> CrowdLabels:
    """One ActiveCrowd set (:data:`ACTIVECROWD_SETS`): crowd labels with the gold answer of each task.

    Raises:
        InvalidInputError: Not one of :data:`ACTIVECROWD_SETS`.
    """
    import pandas as pd

    if name not in ACTIVECROWD_SETS:
        raise InvalidInputError(f"unknown ActiveCrowd set {name!r}; valid: {list(ACTIVECROWD_SETS)}")
    folder = crowd_dir("activecrowd")
    labels = pd.read_csv(folder / f"{name}_labels.csv")[["task", "worker", "label"]]
    return CrowdLabels(labels=labels, gold=pd.read_csv(folder / f"{name}_gold.csv").set_index("task")["gold"])
