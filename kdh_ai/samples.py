"""Sample data bundled with kdh_ai, for the demo, the tests and the trainee notebooks."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ljspeech_dir", "ljspeech_manifest"]

_DATA = Path(__file__).resolve().parent / "data"


def ljspeech_dir() -> Path:
    """Folder of the 12 bundled LJ Speech clips (public domain; see its ``MANIFEST.md``)."""
    return _DATA / "ljspeech"


def ljspeech_manifest() -> Path:
    """The kdh manifest (CSV: ``item_id, path, reference, ...``) of the bundled LJ Speech clips."""
    return ljspeech_dir() / "manifest.csv"
