"""Reading client audio: probing, decoding to 16 kHz mono, and clear errors for bad files.

Decoding goes through PyAV (FFmpeg), which faster-whisper already depends on, so wav, flac, mp3, ogg and
m4a at any sample rate, mono or stereo, all work without system packages.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_RATE", "AudioError", "load_audio", "probe_duration"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Sample rate of decoded audio (what Whisper expects)."""


class AudioError(Exception):
    """An audio file that cannot be used; the message says why and what to do."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"file not found: {path}; check the path in the manifest or restore the file")
    if not path.is_file():
        raise AudioError(f"not a regular file: {path}; give the path of an audio file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise AudioError(f"cannot read {path}: permission denied; fix the file's permissions") from None
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror}; check the disk or copy the file again") from None
    if size == 0:
        raise AudioError(f"empty file (0 bytes): {path}; the upload or copy probably failed, send it again")


def probe_duration(path: str | Path) -> float:
    """Duration of an audio file in seconds, read from its container without decoding it all.

    Raises:
        AudioError: The file is missing, unreadable, empty, or not audio.
    """
    import av

    p = Path(path)
    _check_file(p)
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                raise AudioError(f"no audio stream in {p.name}; it is not an audio file")
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return float(container.duration) / 1_000_000
            # No duration in the header: count decoded samples.
            total = 0
            for frame in container.decode(stream):
                total += frame.samples
            rate = stream.rate or stream.sample_rate
            return total / float(rate) if rate else 0.0
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        raise AudioError(f"cannot decode {p.name} as audio ({type(exc).__name__}: {exc}); the file is corrupt "
                         "or not audio: re-export it as WAV or FLAC and send it again") from None


def load_audio(path: str | Path) -> np.ndarray:
    """Decode a file to a float32 mono waveform at :data:`SAMPLE_RATE`.

    Raises:
        AudioError: The file is missing, unreadable, empty, or cannot be decoded.
    """
    from faster_whisper.audio import decode_audio

    p = Path(path)
    _check_file(p)
    try:
        audio = decode_audio(str(p), sampling_rate=SAMPLE_RATE)
    except Exception as exc:
        raise AudioError(f"cannot decode {p.name} as audio ({type(exc).__name__}: {exc}); the file is corrupt "
                         "or not audio: re-export it as WAV or FLAC and send it again") from None
    if audio.size == 0:
        raise AudioError(f"{p.name} decodes to no samples; the file holds no audio, send it again")
    return np.asarray(audio, dtype=np.float32)
