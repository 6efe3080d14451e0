"""Making test audio from the bundled real speech: noise, other formats, long files, silence."""

from __future__ import annotations

import csv
import wave
from pathlib import Path

import av
import numpy as np

from kdh_ai.audio import SAMPLE_RATE, load_audio
from kdh_ai.samples import ljspeech_dir, ljspeech_manifest

__all__ = ["add_noise", "encode", "ljspeech_rows", "write_wav"]


def ljspeech_rows() -> list[dict[str, str]]:
    """The bundled LJ Speech manifest rows (item_id, path, reference...)."""
    with open(ljspeech_manifest(), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["abs_path"] = str(ljspeech_dir() / r["path"])
    return rows


def write_wav(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    """Write float audio in [-1, 1] as 16-bit PCM WAV (``audio`` shaped (n,) or (n, channels))."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def add_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at a given signal-to-noise ratio."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(audio**2))
    noise = rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), size=audio.shape)
    return (audio + noise).astype(np.float32)


def encode(src: Path, dst: Path, *, rate: int = 48000, stereo: bool = False) -> Path:
    """Re-encode audio to ``dst``'s format (flac, mp3, ogg, m4a) with PyAV."""
    audio = load_audio(src)
    codec = {".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus", ".m4a": "aac"}[dst.suffix]
    fmt = {".m4a": "ipod", ".ogg": "ogg"}.get(dst.suffix)
    with av.open(str(dst), "w", format=fmt) as out:
        layout = "stereo" if stereo else "mono"
        stream = out.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format.name if stream.format else "fltp", layout=layout,
                                      rate=rate)
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for rf in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(rf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dst
