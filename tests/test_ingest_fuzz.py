"""Fuzz test of the ingest, both task types (issue 12 §2): hostile folders and manifests, seeded and bounded.

Each case mixes good items (known ids, real clips or plain texts) with hostile ones: random bytes, truncated
audio, empty files, special files (named pipes, ``/dev/zero``), symbolic links (loops, links out of the batch,
links to folders), paths with ``..``, NUL or undecodable bytes, huge fields, BOMs, other encodings, broken
JSON, cut-off files. The assertions, per case under a deadline (``SIGALRM``; a hang fails the case instead of
the whole run):

* no exception escapes but :class:`~kdh_ai.items.InputError` for a batch that cannot be read as a whole,
  and that one names the file and, for a CSV, the line;
* every good item is read as it was written (id, text or path), with no error, and hashed;
* nothing but the good items' files is ever hashed: hostile files are refused without being read.

Most cases stop after the ingest and hashing (model-free, milliseconds each). A sample of them runs through
:func:`kdh_ai.prelabel.run_prelabel` with the real Whisper tiny.en and MiniLM models, asserting that every
good item gets a prediction and every other item an ``error`` record.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kdh_ai.items import InputError, read_items, sha256_file
from kdh_ai.job import Job
from kdh_ai.prelabel import _content_hash, run_prelabel
from kdh_ai.samples import ljspeech_dir

SEED = 20261129
CASES = 320
REAL_MODEL_CASES = 3  # per task type
CASE_TIMEOUT_S = 10
WAVS = sorted((ljspeech_dir() / "wavs").glob("*.wav"), key=lambda p: p.stat().st_size)[:2]  # the shortest
SMS_LABELS = Path(__file__).parent / "data" / "text" / "sms_spam" / "labels.yaml"


@contextmanager
def deadline(seconds: int, what: str) -> Iterator[None]:
    """Fail (instead of hanging) when the block runs over ``seconds``."""
    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what}: still running after {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Case:
    """A generated batch: where it is, and what a correct ingest must give for its good items."""

    seed: int
    kind: str  # "audio" | "text"
    source: Path
    good: dict[str, str] = field(default_factory=dict)  # item_id -> text, or the real path of its audio
    batch_level: bool = False  # a hostile change that may make the whole batch unreadable (InputError)


def _rand_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghij klmnop,;\"'\n\t\r\\é€😀\u200b") for _ in range(n))


def _hostile_file(rng: random.Random, folder: Path, name: str, outside: Path) -> Path:
    """One hostile thing named ``name`` in ``folder``."""
    p = folder / name
    kind = rng.choice(["random", "truncated", "empty", "fifo", "devzero", "loop", "loop2", "out", "dir",
                       "dangling", "text_as_audio", "dirlink"])
    if kind == "random":
        p.write_bytes(rng.randbytes(rng.randint(1, 4000)))
    elif kind == "truncated":
        data = WAVS[0].read_bytes()
        p.write_bytes(data[:rng.randint(1, 60)])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "devzero":
        p.symlink_to("/dev/zero")
    elif kind == "loop":
        p.symlink_to(p)
    elif kind == "loop2":
        q = folder / f"{name}.other.wav"
        p.symlink_to(q)
        q.symlink_to(p)
    elif kind == "out":
        p.symlink_to(outside)
    elif kind == "dir":
        p.mkdir()
    elif kind == "dangling":
        p.symlink_to(folder / "nowhere" / "x.wav")
    elif kind == "text_as_audio":
        p.write_text("not audio at all\n" * rng.randint(1, 50))
    else:
        p.symlink_to(folder.parent)
    return p


def _audio_folder_case(rng: random.Random, root: Path, seed: int, outside: Path) -> Case:
    folder = root / "batch"
    folder.mkdir()
    case = Case(seed, "audio", folder)
    for i in range(rng.randint(0, 2)):
        dst = folder / f"good{i}.wav"
        shutil.copy(rng.choice(WAVS), dst)
        case.good[f"good{i}"] = str(dst.resolve())
    sub = folder / rng.choice(["", "sub", "deep/er"])
    sub.mkdir(parents=True, exist_ok=True)
    for j in range(rng.randint(1, 6)):
        name = rng.choice([f"bad{j}.wav", f"bad{j}.MP3", f"bad{j}.flac", f"notes{j}.txt", f".hidden{j}.wav",
                           f"caf\udce9{j}.wav" if rng.random() < 0.2 else f"bad{j}.ogg"])
        try:
            _hostile_file(rng, sub, name, outside)
        except (UnicodeEncodeError, FileExistsError):
            continue
    if not case.good and rng.random() < 0.5:  # sometimes nothing good at all: refused as a whole or errors
        case.batch_level = True
    return case


def _audio_manifest_case(rng: random.Random, root: Path, seed: int, outside: Path) -> Case:
    folder = root / "delivery"
    folder.mkdir()
    case = Case(seed, "audio", folder / rng.choice(["m.csv", "m.tsv", "m.jsonl"]))
    rows: list[dict[str, str]] = []
    for i in range(rng.randint(1, 3)):
        dst = folder / f"g{i}.wav"
        shutil.copy(rng.choice(WAVS), dst)
        path = rng.choice([dst.name, str(dst), f"./{dst.name}", f"../{folder.name}/{dst.name}"])
        rows.append({"item_id": f"good-{i}", "path": path})
        case.good[f"good-{i}"] = str(dst.resolve())
    for j in range(rng.randint(1, 6)):
        choice = rng.random()
        if choice < 0.5:
            p = _hostile_file(rng, folder, f"h{j}.wav", outside)
            path = rng.choice([p.name, str(p)])
        else:
            path = rng.choice(["/etc/hostname", "../../../../../../etc/hostname", "/dev/zero", str(outside),
                               "nul\x00byte.wav", "x" * 5000 + ".wav", "", "caf\udce9.wav", "~/nope.wav",
                               str(folder), "missing.wav", _rand_text(rng, 30)])
        rows.append({"item_id": f"bad-{j}", "path": path})
    rng.shuffle(rows)
    _write_manifest(rng, case, rows, ["item_id", "path"])
    return case


def _text_manifest_case(rng: random.Random, root: Path, seed: int) -> Case:
    folder = root / "texts"
    folder.mkdir()
    case = Case(seed, "text", folder / rng.choice(["t.csv", "t.tsv", "t.jsonl"]))
    rows: list[dict[str, str]] = []
    for i in range(rng.randint(1, 4)):
        text = rng.choice(["Are we still on for lunch?", "WINNER!! claim your prize", "ok, see you at 5",
                           'he said "hi"', "two\nlines"])
        rows.append({"item_id": f"good-{i}", "text": text})
        case.good[f"good-{i}"] = text
    for j in range(rng.randint(1, 5)):
        text = rng.choice([_rand_text(rng, rng.randint(0, 300)), "", " " * 10, "x" * rng.randint(131_000, 300_000),
                           "caf\udce9 cr\udce8me", "\x00nul", "\ufeffbom", "a\r\nb\rc"])
        rows.append({"item_id": rng.choice([f"bad-{j}", f"bad-{j}", "", f"bad-{max(0, j - 1)}"]), "text": text})
    rng.shuffle(rows)
    _write_manifest(rng, case, rows, ["item_id", "text"])
    return case


def _write_manifest(rng: random.Random, case: Case, rows: list[dict[str, str]], cols: list[str]) -> None:
    """Write rows (raw bytes kept through surrogateescape), then maybe damage the file as a whole."""
    suffix = case.source.suffix
    if suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=rng.random() < 0.5) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, delimiter="\t" if suffix == ".tsv" else ",",
                           quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
    data = text.encode("utf-8", "surrogatepass" if suffix == ".jsonl" else "surrogateescape")
    damage = rng.random()
    if damage < 0.08:
        data = data[:rng.randint(0, len(data))]  # cut off
        case.batch_level, case.good = True, {}
    elif damage < 0.12:
        data = text.encode("utf-16", "surrogatepass")  # another encoding
        case.batch_level, case.good = True, {}
    elif damage < 0.16:
        data = b"\xef\xbb\xbf" + data  # a BOM: must still read
    elif damage < 0.22:
        pos = rng.randint(0, len(data))
        data = data[:pos] + rng.randbytes(rng.randint(1, 40)) + data[pos:]  # random bytes anywhere
        case.batch_level, case.good = True, {}
    case.source.write_bytes(data)


def generate(seed: int, root: Path) -> Case:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    outside = root / "outside_secret.json"
    outside.write_text('{"token": "do-not-serve"}')
    which = rng.random()
    if which < 0.3:
        return _audio_folder_case(rng, root, seed, outside)
    if which < 0.6:
        return _audio_manifest_case(rng, root, seed, outside)
    return _text_manifest_case(rng, root, seed)


def check_ingest(case: Case) -> tuple[list, bool]:
    """Read and hash one case; assert the contract. Returns the items and whether the batch was refused."""
    try:
        items, issues = read_items(case.source, kind=case.kind)
    except InputError as exc:
        msg = str(exc)
        assert case.source.name in msg or str(case.source) in msg, msg
        if case.source.suffix in (".csv", ".tsv") and ("quote" in msg or "cannot be read" in msg):
            assert f"{case.source.name}:" in msg, msg  # names the line
        assert case.batch_level or not case.good, f"seed {case.seed}: good batch refused: {msg}"
        return [], True
    by_id = {it.item_id: it for it in items}
    for item_id, want in case.good.items():
        it = by_id.get(item_id)
        assert it is not None, f"seed {case.seed}: good item {item_id} lost ({issues})"
        assert it.error is None, f"seed {case.seed}: good item {item_id}: {it.error}"
        got = it.text if case.kind == "text" else it.path
        assert got == want, f"seed {case.seed}: good item {item_id} read as {str(got)[:80]!r}"
        assert _content_hash(it) is not None
    inside = (case.source if case.source.is_dir() else case.source.parent).resolve()
    for it in items:
        digest = _content_hash(it)  # hostile ones: refused, or hashed only when a regular file in the batch
        if case.kind == "audio" and digest is not None:
            real = Path(it.path).resolve()
            assert real.is_file() and inside in real.parents, f"seed {case.seed}: {it.item_id} hashed {real}"
        json.dumps(it.to_dict(), ensure_ascii=False).encode("utf-8")  # every record can be stored as UTF-8
    return items, False


def test_fuzz_ingest_model_free(tmp_path: Path) -> None:
    refused, good, bad = 0, 0, 0
    for n in range(CASES):
        case = generate(SEED + n, tmp_path / f"case{n:04d}")
        with deadline(CASE_TIMEOUT_S, f"case seed {case.seed} ({case.source.name})"):
            items, was_refused = check_ingest(case)
        refused += was_refused
        good += len(case.good) if not was_refused else 0
        bad += sum(1 for it in items if it.error)
        shutil.rmtree(tmp_path / f"case{n:04d}", ignore_errors=True)
    # the generator mostly makes batches that must be read, with good and hostile items in them
    assert refused < CASES / 4 and good > CASES and bad > CASES, (refused, good, bad)


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    from kdh_ai.labels import load_labels
    from kdh_ai.tasks.classification import Classifier, ClassifyOptions
    from kdh_ai.engines import TranscribeOptions
    from kdh_ai.engines.faster_whisper import Transcriber

    topts = TranscribeOptions()
    copts = ClassifyOptions(labels=str(SMS_LABELS), head="zero_shot")
    return {"audio": (Transcriber(topts), topts, "transcription"),
            "text": (Classifier(copts, labels=load_labels(SMS_LABELS)), copts, "classification")}


@pytest.mark.parametrize("kind", ["audio", "text"])
def test_fuzz_ingest_through_the_real_models(tmp_path: Path, models: dict[str, object], kind: str) -> None:
    prelabeler, opts, task = models[kind]  # type: ignore[misc]
    done, n = 0, 0
    while done < REAL_MODEL_CASES:
        case = generate(SEED + 10_000 + n, tmp_path / f"case{n:04d}")
        n += 1
        if case.kind != kind or not case.good:
            continue
        job_dir = tmp_path / f"job{n:04d}"
        with deadline(120, f"real {task} on case seed {case.seed}"):
            try:
                summary = run_prelabel(job_dir, case.source, make_prelabeler=lambda: prelabeler, task=task,
                                       item_kind=kind, options=dataclasses.asdict(opts))
            except InputError:
                assert case.batch_level, f"seed {case.seed}: good batch refused"
                continue
        preds = Job(job_dir).current_predictions()
        items = Job(job_dir).current_items()
        assert set(preds) == set(items) and summary.counts.get("pending", 0) == 0
        for item_id in case.good:
            assert preds[item_id].status in ("ok", "no_speech"), (case.seed, item_id, preds[item_id].error)
            assert preds[item_id].sha256
        for item_id, it in items.items():
            if it.get("error"):
                assert preds[item_id].status == "error" and preds[item_id].sha256 is None
        done += 1
