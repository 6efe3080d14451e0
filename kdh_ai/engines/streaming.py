"""A long recording read in chunks cut at pauses, so that its memory stays flat however long it is.

A 2-hour file decoded whole is 460 MB of float32 samples, and its log-mel (230 MB) is computed twice (by
faster-whisper's loop and by the word alignment). :class:`AudioChunks` instead decodes the file block by block
(:func:`kdh_ai.audio.stream_audio`), runs voice activity detection on each block as it comes, and hands out
chunks of about ``chunk_s`` seconds, each cut in the longest pause VAD finds in its last ``search_s`` seconds
(never inside a word when there is a pause). Only the current chunk's audio is held, plus the VAD speech
probabilities of the whole file (one float per 32 ms: 0.9 MB for 2 hours), which the work segments need.

Example:
    >>> import numpy as np
    >>> probs = np.array([0.9] * 10 + [0.1] * 4 + [0.9] * 3 + [0.2] * 2 + [0.9], dtype=np.float32)
    >>> pause_cut(probs, 5, 20)   # the middle of the longest quiet run (frames 10-13)
    12
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdh_ai.audio import SAMPLE_RATE, stream_audio
from kdh_ai.engines.common import VAD_FRAME, vad_probabilities

__all__ = ["AudioChunks", "Chunk", "QUIET", "pause_cut", "resume_at"]

QUIET = 0.35
"""A VAD frame below this speech probability is quiet (Silero's own end-of-speech threshold)."""


def pause_cut(probs: np.ndarray, lo: int, hi: int) -> int:
    """The frame in ``[lo, hi)`` to cut at: the middle of the longest run of quiet frames (< :data:`QUIET`),
    the later one of equal runs; without a quiet frame, the least speech-like frame.

    Raises:
        ValueError: An empty range.
    """
    if not 0 <= lo < hi <= len(probs):
        raise ValueError(f"need 0 <= lo < hi <= {len(probs)}, got lo={lo}, hi={hi}")
    quiet = probs[lo:hi] < QUIET
    best, best_len, run_start = -1, 0, -1
    for i, q in enumerate(quiet.tolist() + [False]):
        if q and run_start < 0:
            run_start = i
        elif not q and run_start >= 0:
            if i - run_start >= best_len:
                best, best_len = run_start + (i - run_start) // 2, i - run_start
            run_start = -1
    if best < 0:
        best = int(np.argmin(probs[lo:hi][::-1]))
        best = hi - lo - 1 - best
    return lo + best


def resume_at(probs: np.ndarray, after_s: float, before_s: float) -> float:
    """Where to start decoding again after a word that ends at ``after_s``: the start of the first quiet VAD
    frame (< :data:`QUIET`) from there, but no later than ``before_s`` (times in seconds into ``probs``).

    Example:
        >>> resume_at(np.array([0.9, 0.9, 0.9, 0.2, 0.1, 0.9], np.float32), 0.05, 0.18)
        0.096
    """
    frame_s = VAD_FRAME / SAMPLE_RATE
    first = int(after_s / frame_s)
    quiet = np.flatnonzero(probs[first:] < QUIET)
    at = (first + int(quiet[0])) * frame_s if quiet.size else before_s
    return round(min(max(at, after_s), before_s), 3)


@dataclass
class Chunk:
    """A stretch of a long recording, cut at pauses.

    Attributes:
        audio: Its 16 kHz mono samples.
        start: Where it starts in the recording (samples; a multiple of :data:`VAD_FRAME`).
        probs: VAD speech probability per :data:`VAD_FRAME` samples of the chunk.
        last: The recording's last chunk.
    """

    audio: np.ndarray
    start: int
    probs: np.ndarray
    last: bool

    @property
    def offset_s(self) -> float:
        """Start in seconds."""
        return self.start / SAMPLE_RATE

    @property
    def length_s(self) -> float:
        """Length in seconds."""
        return len(self.audio) / SAMPLE_RATE


class AudioChunks:
    """The chunks of a long recording, decoded and cut as they are read (see the module docstring).

    Args:
        path: The audio file.
        chunk_s: Longest chunk (s).
        search_s: The cut lies in the longest pause of the chunk's last ``search_s`` seconds.
        block_s: Seconds decoded at a time (a multiple of a VAD frame is kept).
        vad: Speech probability per :data:`VAD_FRAME` samples of a block (default: Silero,
            :func:`kdh_ai.engines.common.vad_probabilities`).

    A reader that could not use the end of a chunk (Whisper's last window of a chunk sees less than 30 s of
    audio, and may stop early) hands it back with :meth:`carry` before asking for the next chunk: the next
    chunk then starts there.

    After iterating, :attr:`probs` holds the VAD speech probabilities of the whole recording and
    :attr:`n_samples` its length. A damaged or truncated file raises :class:`kdh_ai.audio.AudioError` at the
    end, after its chunks (see :func:`kdh_ai.audio.stream_audio`).
    """

    def __init__(self, path: str | Path, *, chunk_s: float = 240.0, search_s: float = 30.0, block_s: float = 60.0,
                 vad: Callable[[np.ndarray], np.ndarray] = vad_probabilities) -> None:
        if not 0 < search_s < chunk_s:
            raise ValueError(f"need 0 < search_s < chunk_s, got search_s={search_s!r}, chunk_s={chunk_s!r}")
        self.path = Path(path)
        self.chunk = int(chunk_s * SAMPLE_RATE) // VAD_FRAME  # frames
        self.search = int(search_s * SAMPLE_RATE) // VAD_FRAME
        self.block_s = max(1, int(block_s * SAMPLE_RATE) // VAD_FRAME) * VAD_FRAME / SAMPLE_RATE
        self.vad = vad
        self._probs: list[np.ndarray] = []
        self._carry_from: float | None = None
        self.n_samples = 0

    def carry(self, from_s: float) -> None:
        """Start the next chunk at ``from_s`` seconds into the chunk just handed out (rounded down to a VAD
        frame; ignored unless it lies inside the chunk, after its start)."""
        self._carry_from = from_s

    @property
    def probs(self) -> np.ndarray:
        """VAD speech probabilities of everything read so far."""
        if len(self._probs) > 1:
            self._probs = [np.concatenate(self._probs)]
        return self._probs[0] if self._probs else np.zeros(0, np.float32)

    def __iter__(self) -> Iterator[Chunk]:
        buf = np.zeros(0, np.float32)  # audio read but not handed out, from sample `start`
        start = 0
        for block in stream_audio(self.path, block_s=self.block_s):
            frames = math.ceil(len(block) / VAD_FRAME)
            self._probs.append(np.asarray(self.vad(block), np.float32).reshape(-1)[:frames])
            self.n_samples += len(block)
            buf = np.concatenate([buf, block])
            while len(buf) >= self.chunk * VAD_FRAME:
                first = start // VAD_FRAME
                probs = self.probs
                cut = pause_cut(probs, first + self.chunk - self.search, first + self.chunk) - first
                n = cut * VAD_FRAME
                self._carry_from = None
                yield Chunk(buf[:n], start, probs[first:first + cut], last=False)
                back = self._carried(n)
                buf, start = buf[n - back:].copy(), start + n - back
        probs = self.probs
        if len(buf):
            yield Chunk(buf, start, probs[start // VAD_FRAME:], last=True)

    def _carried(self, n: int) -> int:
        """Samples of the last chunk (``n`` long) handed back by :meth:`carry`."""
        if self._carry_from is None:
            return 0
        keep = int(self._carry_from * SAMPLE_RATE) // VAD_FRAME * VAD_FRAME
        return n - keep if 0 < keep < n else 0
