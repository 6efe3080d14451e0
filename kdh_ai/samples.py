"""Sample data bundled with kdh_ai, for the demo, the tests and the trainee notebooks: one way to find each set.

Each data set has a function for its folder or file and a ``load_*`` function that reads it into pandas:

=====================  ===================================================  ==================================
data set               what it is                                           loader
=====================  ===================================================  ==================================
LJ Speech (12 clips)   real speech with exact transcripts                   :func:`load_ljspeech`
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
from typing import TYPE_CHECKING

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
