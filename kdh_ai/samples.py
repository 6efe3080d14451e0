"""Sample data bundled with kdh_ai, for the demo, the tests and the trainee notebooks."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ljspeech_dir", "ljspeech_manifest", "routing_pool", "sms_spam_texts"]

_DATA = Path(__file__).resolve().parent / "data"


def ljspeech_dir() -> Path:
    """Folder of the 12 bundled LJ Speech clips (public domain; see its ``MANIFEST.md``)."""
    return _DATA / "ljspeech"


def ljspeech_manifest() -> Path:
    """The kdh manifest (CSV: ``item_id, path, reference, ...``) of the bundled LJ Speech clips."""
    return ljspeech_dir() / "manifest.csv"


def routing_pool() -> Path:
    """Real tiny.en results on 300+ clips: ``item_id, confidence, errors, words`` (see ``routing_pool.md``).

    Made by ``benchmarks/routing.py --export-pool``: Whisper tiny.en pre-labels of LJ Speech clips and of
    synthetic flite/festival speech (clean, noisy, telephone band), with each clip's word errors against its
    exact reference. Used by the routing notebook.
    """
    return _DATA / "routing_pool.csv"


def sms_spam_texts() -> Path:
    """200 real SMS texts labelled ham or spam (CSV: ``item_id, text, reference``; CC BY 4.0, see the
    ``LICENSE`` beside it). Used by the demo, the tests and the classification qualification test."""
    return _DATA.parent.parent / "tests" / "data" / "text" / "sms_spam" / "texts.csv"
