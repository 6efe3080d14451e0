"""Reading client audio: probing, decoding to 16 kHz mono, and clear errors for bad files.

Decoding goes through PyAV (FFmpeg), which faster-whisper already depends on, so wav, flac, mp3, ogg and
m4a at any sample rate, mono or stereo, all work without system packages.

Damaged files are errors, never partial transcripts: where the file states its own length (a WAV's data
chunk size, a FLAC's total samples, an MP3's Xing/Info frame count or any duration in the container) and
less than :data:`MIN_DECODED_SHARE` of it can be decoded, or the decoder reports damaged data in the middle
of the stream, :func:`load_audio` raises :class:`AudioError` saying so (FFmpeg itself, and faster-whisper's
``decode_audio``, skip damaged frames silently and stop at the end of what is there).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kdh_ai.errors import KdhError

__all__ = ["MIN_DECODED_SHARE", "SAMPLE_RATE", "AudioError", "load_audio", "probe_duration", "stream_audio",
           "wav_header_duration"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Sample rate of decoded audio (what Whisper expects)."""


MIN_DECODED_SHARE = 0.95
"""A file whose decodable audio is shorter than this share of the length its header states is truncated."""


class AudioError(KdhError):
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


def wav_header_duration(path: str | Path) -> float | None:
    """The duration a WAV file's header promises (data chunk size / bytes per second), or ``None`` when the
    file is not a RIFF/WAVE file or its writer left the size open (0 or 0xFFFFFFFF, as streaming writers do).

    FFmpeg clamps a WAV's duration to the bytes that are there, so a truncated WAV looks whole to it; this
    reads the header itself.

    Raises:
        AudioError: The header is damaged (no format chunk before the data, zero rate or block size).
    """
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = 0
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = fh.read(size)
                if len(fmt) < 16:
                    raise AudioError(f"bad WAV header in {p.name}: its format chunk is cut short; the file is "
                                     "corrupt or not audio: ask the client for the file again")
                channels, rate, byte_rate, block_align = struct.unpack("<HIIH", fmt[2:14])
                if not channels or not rate or not byte_rate or not block_align:
                    raise AudioError(f"bad WAV header in {p.name}: {channels} channels, {rate} Hz, "
                                     f"{block_align}-byte frames; the file is corrupt or not audio: ask the "
                                     "client for the file again")
                if size % 2:
                    fh.read(1)
            elif cid == b"data":
                if not byte_rate:
                    raise AudioError(f"bad WAV header in {p.name}: audio data before the format chunk; the "
                                     "file is corrupt or not audio: ask the client for the file again")
                if size in (0, 0xFFFFFFFF):
                    return None
                return size / byte_rate
            else:
                fh.seek(size + (size % 2), 1)


def _declared_duration(path: Path, container: object, stream: object) -> float | None:
    """The length the file states for itself, in seconds (``None``: it states none)."""
    wav = wav_header_duration(path)
    if wav is not None:
        return wav
    if getattr(container, "format", None) is not None and container.format.name in ("ogg", "wav"):  # type: ignore[attr-defined]
        return None  # Ogg and headerless WAV: FFmpeg reads the length off the end of what is there
    duration, time_base = getattr(stream, "duration", None), getattr(stream, "time_base", None)
    if duration is not None and time_base is not None:
        return float(duration * time_base)
    total = getattr(container, "duration", None)
    return float(total) / 1_000_000 if total is not None else None


def load_audio(path: str | Path) -> np.ndarray:
    """Decode a file to a float32 mono waveform at :data:`SAMPLE_RATE`, refusing damaged files.

    Raises:
        AudioError: The file is missing, unreadable, empty, cannot be decoded, the decoder reports damaged
            data in it, or less than :data:`MIN_DECODED_SHARE` of the length its header states can be
            decoded (truncated).
    """
    return np.concatenate(list(_decode_s16(Path(path)))).astype(np.float32) / 32768.0


def stream_audio(path: str | Path, *, block_s: float = 60.0) -> Iterator[np.ndarray]:
    """Decode a file block by block: float32 mono blocks of ``block_s`` seconds at :data:`SAMPLE_RATE` (the
    last one shorter), so that a long recording is never held whole in memory.

    The file is refused as :func:`load_audio` refuses it; for a damaged or truncated file the
    :class:`AudioError` comes after the blocks decoded before the problem was known (at the end of the
    stream), so a reader must not keep a result made of them.

    Raises:
        AudioError: As :func:`load_audio`.

    Example:
        >>> from kdh_ai.samples import ljspeech_clip
        >>> path = ljspeech_clip("LJ001-0001")
        >>> blocks = list(stream_audio(path, block_s=2.0))
        >>> {len(b) for b in blocks[:-1]}, np.allclose(np.concatenate(blocks), load_audio(path))
        ({32000}, True)
    """
    size = max(1, int(block_s * SAMPLE_RATE))
    pending: list[np.ndarray] = []
    have = 0
    for chunk in _decode_s16(Path(path)):
        pending.append(chunk)
        have += len(chunk)
        while have >= size:
            joined = np.concatenate(pending)
            yield joined[:size].astype(np.float32) / 32768.0
            rest = joined[size:]
            pending, have = [rest], len(rest)
    if have:
        yield np.concatenate(pending).astype(np.float32) / 32768.0


def _decode_s16(p: Path) -> Iterator[np.ndarray]:
    """The file's 16-bit mono samples at :data:`SAMPLE_RATE`, frame by frame; raises :class:`AudioError` (at
    the end) for a damaged or truncated file and when no samples decode at all."""
    import av

    _check_file(p)
    decoded_s = 0.0
    n_samples = 0
    damaged_at: float | None = None
    try:
        with av.open(str(p), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"no audio stream in {p.name}; it is not an audio file")
            stream = container.streams.audio[0]
            declared = _declared_duration(p, container, stream)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            frames = container.decode(stream)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.InvalidDataError:
                    damaged_at = decoded_s if damaged_at is None else damaged_at
                    continue
                decoded_s += frame.samples / float(frame.sample_rate or stream.rate or 1)
                frame.pts = None
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    n_samples += len(samples)
                    yield samples
            for out in resampler.resample(None):
                samples = out.to_ndarray().reshape(-1)
                n_samples += len(samples)
                yield samples
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        raise AudioError(f"cannot decode {p.name} as audio ({type(exc).__name__}: {exc}); the file is corrupt "
                         "or not audio: re-export it as WAV or FLAC and send it again") from None
    if declared and decoded_s < MIN_DECODED_SHARE * declared and declared - decoded_s > 0.05:
        raise AudioError(f"truncated: the header of {p.name} says {declared:.1f} s, only {decoded_s:.1f} s can "
                         "be decoded; ask the client for the file again")
    if damaged_at is not None:
        of = f" of {declared:.1f} s" if declared else ""
        raise AudioError(f"damaged: the decoder found invalid data in {p.name} at {damaged_at:.1f} s{of}; ask "
                         "the client for the file again")
    if n_samples == 0:
        raise AudioError(f"{p.name} decodes to no samples; the file holds no audio, send it again")
