"""Realistic synthetic English speech with exact reference text, for the transcription benchmark.

Debian's ``flite`` voices and ``festival`` voices read sentences written for this benchmark (released here
into the public domain) and the LJ Speech transcripts bundled with kdh_ai. Each rendition gets a random
voice, tempo (0.8-1.25x, pitch kept) and condition: clean, white or pink noise at 20/10/5/0 dB SNR, or a
telephone band (300-3400 Hz, 8 kHz). Everything is seeded, so the same command gives the same audio.

Output (cached; nothing here is ever committed, see ``.gitignore``)::

    benchmarks/.cache/speech/<key>/short/manifest.csv   short clips (about 2-15 s) + a few no-speech clips
    benchmarks/.cache/speech/<key>/long/manifest.csv    long files (2-3 min of sentences with pauses)

Manifests use the kdh format (``item_id, path, reference, ...``); no-speech clips have an empty reference
and ``kind=nospeech``. Install the voices with::

    apt-get install -y flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox

Missing voices are skipped with a message; at least one voice must exist.

Usage::

    .venv/bin/python benchmarks/make_speech.py [--minutes 22] [--out benchmarks/.cache/speech]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["SENTENCES", "Voice", "available_voices", "make_speech"]

logger = logging.getLogger(__name__)

SR = 16000
VERSION = 4  # bump when the generation changes (invalidates the cache)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / ".cache" / "speech"

# Written for this benchmark; public domain. Mixed lengths and topics close to what the hub's clients send
# (customer calls, field reports, instructions, news), numbers spelled out as a reader would say them.
SENTENCES = [
    "Good morning, thank you for calling the help desk.",
    "Please hold while I check your account.",
    "The water pump in the eastern block stopped working on Monday night.",
    "We need three more boxes of printing paper before the end of the week.",
    "Could you tell me your full name and the date of your last visit?",
    "The clinic opens at eight in the morning and closes at five in the afternoon.",
    "Our team finished the survey of the northern villages ahead of schedule.",
    "I would like to change the delivery address for my order.",
    "The rain came early this year, so the farmers planted their maize in March.",
    "Thank you for waiting.",
    "Please repeat the last number slowly.",
    "The training room on the second floor has twenty new computers.",
    "Every student must bring a pen, a notebook and a copy of the timetable.",
    "The bus to the market leaves from the main gate every hour.",
    "Prices of sugar and cooking oil went up again last month.",
    "She said the package arrived damaged and asked for a replacement.",
    "Wash your hands with soap before you prepare food for the children.",
    "The meeting has been moved to Thursday at two o'clock.",
    "If the light turns red, switch off the machine and call the supervisor.",
    "We recorded the interviews in a quiet room to reduce background noise.",
    "How many people live in your household?",
    "The new road will connect the camp to the nearest town within a year.",
    "My phone battery is almost empty, so I will call you back later.",
    "The library lends books for two weeks, and you can renew them once.",
    "Yes, that is correct.",
    "No, I did not receive the confirmation message.",
    "The football match was cancelled because the field was flooded.",
    "Doctors recommend at least eight hours of sleep for teenagers.",
    "A strong wind blew the roof off the storage shed during the storm.",
    "The committee approved the budget after a long discussion.",
    "Please write your answer in the box at the bottom of the page.",
    "I have been waiting for the technician since early this morning.",
    "The river is low at this time of year, so the boats cannot reach the village.",
    "Our office will be closed on Friday for the public holiday.",
    "Solar panels now provide most of the electricity for the school.",
    "The nurse checked his temperature and gave him some water.",
    "Can you send me the report by email before noon?",
    "The children planted trees along the path to the health centre.",
    "Most of the customers asked about the price of the internet bundle.",
    "He speaks English, Swahili and a little French.",
    "The goats were sold at the market for a good price.",
    "Turn left at the water tank and walk straight for about two hundred metres.",
    "The exam results will be announced at the end of the month.",
    "We lost the connection twice during the video call.",
    "Bring your identity card when you come to collect the supplies.",
    "The kitchen serves lunch from twelve to two every weekday.",
    "A good transcript writes down exactly what the speaker says, including repeated words.",
    "I am sorry, the line is very bad, could you speak a little louder?",
    "The shop on the corner sells bread, milk and fresh vegetables.",
    "After the fire, the community rebuilt the school in only six weeks.",
    "Her brother works as a driver for an aid organisation.",
    "The price includes delivery and installation.",
    "Please confirm that you have read and understood the safety rules.",
    "The old bridge is closed to trucks heavier than ten tonnes.",
    "We counted four hundred and fifty bags of rice in the warehouse.",
    "The radio station broadcasts the news in five languages.",
    "Keep the medicine in a cool, dry place, away from sunlight.",
    "Several families moved to the new settlement last year.",
    "The teacher asked the class to read the first chapter aloud.",
    "I think the problem is with the cable, not with the computer.",
    "What time does the next flight to Nairobi leave?",
    "The tailor finished the school uniforms just before the term started.",
    "Heavy traffic delayed the delivery by almost three hours.",
    "This call may be recorded for training and quality purposes.",
    "Press one for account questions, or press two to speak to an agent.",
    "The bakery sold out of bread before seven o'clock.",
    "Farmers in the valley grow beans, sorghum and cassava.",
    "The new water point serves about two thousand people.",
    "Please leave your message after the tone.",
    "The manager thanked everyone for their hard work during the busy season.",
    "Remember to save your work every few minutes.",
    "The cat slept all afternoon in the shade of the mango tree.",
    "We will start the lesson with a short quiz on last week's topic.",
    "He fixed the bicycle with a spare chain and a piece of wire.",
    "Your request has been forwarded to the finance department.",
    "The hospital needs volunteers to help in the children's ward.",
    "It was so hot that the workers rested under the trees at midday.",
    "Check the spelling of every name before you submit the form.",
    "The community radio asked listeners to report broken water taps.",
    "Mobile money made it easier to pay school fees on time.",
    "The singer thanked the crowd and promised to return next year.",
    "We have received your payment, thank you.",
    "The generator uses about twenty litres of diesel a day.",
    "Please do not park your car in front of the gate.",
    "The map shows the location of every clinic in the district.",
    "She opened a small restaurant near the bus station.",
    "The software update fixed the problem with the login page.",
    "Sorry, I did not catch that.",
    "The library received a donation of five hundred books.",
    "He forgot his keys at home and had to wait outside for an hour.",
    "The warehouse keeps a record of everything that comes in and goes out.",
    "Many young people in the camp are learning to code.",
    "Let me put you through to my colleague.",
    "A cold wind came down from the hills in the evening.",
    "Fill in the form in capital letters and sign at the bottom.",
    "The carpenter built new desks for the primary school.",
    "All visitors must sign the book at the reception.",
    "The price of the ticket depends on how early you book it.",
    "Our team transcribes about three hours of recordings every day.",
    "The seeds should be planted about five centimetres deep.",
    "The baby was born healthy early on Sunday morning.",
    "Please switch off your phone during the examination.",
    "The driver said the road was too muddy after the rain.",
    "The quality check found only two mistakes in the whole file.",
    "You can pick up your order from the counter near the entrance.",
    "The chairman opened the meeting with a short prayer.",
    "He has worked at the hospital for more than fifteen years.",
    "The printer on the first floor is out of ink again.",
    "Keep the receipt in case you need to return the item.",
    "The children were excited to see the elephants at the park.",
    "Our engineers are working to restore the service as quickly as possible.",
    "Drink plenty of clean water when the weather is hot.",
    "The vote will take place next Tuesday in the community hall.",
    "Please spell your surname for me.",
    "My name is Amina and I am calling about my electricity bill.",
    "The storm knocked down power lines across the whole district, and repairs may take several days.",
    "The tomatoes were ripe, so we picked them and carried them to the market in baskets.",
    "The company hired forty new workers to handle the growing number of customer calls.",
    "If you have any other questions, please do not hesitate to contact us again.",
    "The course covers basic computer skills, typing, spreadsheets and how to search the internet safely.",
    "Because the exam hall was too small, half of the students wrote their papers in the dining room.",
    "The volunteers painted the walls of the clinic bright blue and planted flowers by the door.",
    "Before you start the transcription, listen to the whole recording once without typing anything.",
    "The council promised to repair the road before the rainy season, but nothing has happened yet.",
    "When the power came back on, everyone in the office cheered and went straight back to work.",
    "The recipe needs two cups of flour, one egg, a pinch of salt and a little warm milk.",
    "Although the journey was long and tiring, the travellers arrived safely before sunset.",
    "The market is busiest on Saturday mornings, when farmers bring their produce from the hills.",
    "The new policy allows staff to work from home two days a week if their manager agrees.",
    "Our records show that the last payment was made on the third of June.",
    "The museum displays tools, pots and jewellery that are more than a thousand years old.",
    "Please make sure that the audio files are named correctly before you upload them.",
    "The fishermen went out before dawn and came back with their nets full.",
    "It is important to label each recording with the speaker's language and region.",
    "The football team trained every evening for a month before the final.",
    "A small fire started in the kitchen, but the staff put it out quickly.",
    "The students who finish the course will receive a certificate at a ceremony in December.",
    "We apologise for the delay and thank you for your patience.",
    "The old man told stories about the village as it was fifty years ago.",
    "You should back up important files on a second drive or in the cloud.",
    "The government announced a new programme to train teachers in rural areas.",
    "Most calls last less than five minutes, but some take much longer.",
    "The path to the river is steep and slippery after the rain, so walk carefully.",
    "The doctor explained the treatment and answered all of the family's questions.",
    "Hello, is anyone there?",
    "Thank you very much.",
    "Goodbye, and have a nice day.",
    "That will be all for today.",
    "Please wait a moment.",
    "I understand.",
    "The train was late again this morning.",
    "We will call you back within twenty four hours.",
    "The lights in the hall flickered and then went out.",
    "Write down the reference number for your complaint.",
]

NOISE_SNRS = (20.0, 10.0, 5.0, 0.0)


@dataclass(frozen=True)
class Voice:
    """A synthetic voice: ``engine`` is ``flite`` or ``festival``; ``name`` is the engine's voice name."""

    engine: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.engine}-{self.name}"


CANDIDATE_VOICES = (
    Voice("flite", "slt"), Voice("flite", "awb"), Voice("flite", "rms"), Voice("flite", "kal16"),
    Voice("flite", "kal"), Voice("festival", "cmu_us_slt_arctic_hts"), Voice("festival", "kal_diphone"),
    Voice("festival", "ked_diphone"),
)


def _run(cmd: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, text=True, capture_output=True, timeout=120, check=False)


def _synth(voice: Voice, text: str, out: Path) -> bool:
    if voice.engine == "flite":
        r = _run(["flite", "-voice", voice.name, "-t", text, "-o", str(out)])
    else:
        r = _run(["text2wave", "-eval", f"(voice_{voice.name})", "-o", str(out)], stdin=text)
    return r.returncode == 0 and out.exists() and out.stat().st_size > 1000


def available_voices() -> list[Voice]:
    """The candidate voices that work on this machine (each is tried once on a short sentence)."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in CANDIDATE_VOICES:
            exe = "flite" if v.engine == "flite" else "text2wave"
            if shutil.which(exe) is None:
                logger.warning("voice %s skipped: %s is not installed", v.label, exe)
                continue
            if _synth(v, "Testing one two three.", Path(tmp) / "t.wav"):
                found.append(v)
            else:
                logger.warning("voice %s skipped: not installed (see benchmarks/README.md for the apt line)",
                               v.label)
    return found


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        n, ch, width = w.getnframes(), w.getnchannels(), w.getsampwidth()
        if width != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        data = np.frombuffer(w.readframes(n), dtype=np.int16).astype(np.float32) / 32768.0
    return data.reshape(-1, ch).mean(axis=1) if ch > 1 else data


def _write_wav(path: Path, audio: np.ndarray, sr: int = SR) -> None:
    pcm = np.clip(audio, -1.0, 1.0)
    pcm = (pcm * 32767.0).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def _render(voice: Voice, text: str, tempo: float, telephone: bool, tmp: Path) -> np.ndarray | None:
    """Speech of ``text`` at 16 kHz, tempo-changed (pitch kept), optionally telephone-band."""
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    if not _synth(voice, text, raw):
        return None
    effects = ["tempo", "-s", f"{tempo:.3f}"] if abs(tempo - 1.0) > 1e-3 else []
    if telephone:
        effects += ["sinc", "300-3400", "rate", "8000"]
    effects += ["rate", str(SR)]
    r = _run(["sox", str(raw), "-b", "16", "-c", "1", str(out), *effects])
    if r.returncode != 0:
        raise RuntimeError(f"sox failed: {r.stderr.strip()}")
    audio = _read_wav(out)
    peak = float(np.max(np.abs(audio))) or 1.0
    return audio * (0.5 / peak)


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if kind == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), n).astype(np.float32)
    return pink / (pink.std() + 1e-9)


def _add_noise(speech: np.ndarray, pad: tuple[int, int], kind: str, snr_db: float,
               rng: np.random.Generator) -> np.ndarray:
    """Pad ``speech`` with silence and add noise at ``snr_db`` relative to the speech's power."""
    p_speech = float(np.mean(speech**2))
    out = np.concatenate([np.zeros(pad[0], np.float32), speech, np.zeros(pad[1], np.float32)])
    if kind == "clean":
        return out
    noise = _noise(kind, len(out), rng)
    scale = np.sqrt(p_speech / (10 ** (snr_db / 10)) / (float(np.mean(noise**2)) + 1e-12))
    out = out + noise * scale
    peak = float(np.max(np.abs(out)))
    return out * (0.9 / peak) if peak > 0.95 else out


def _condition(rng: np.random.Generator) -> tuple[str, float, bool]:
    """(noise kind, SNR, telephone): 40% clean, 10% telephone, 50% noisy at 20/10/5/0 dB."""
    u = rng.random()
    if u < 0.40:
        return "clean", float("inf"), False
    if u < 0.50:
        return "clean", float("inf"), True
    kind = "white" if rng.random() < 0.5 else "pink"
    snr = float(rng.choice(NOISE_SNRS, p=[0.35, 0.35, 0.2, 0.1]))
    return kind, snr, False


def _ljspeech_rows() -> list[dict[str, str]]:
    path = REPO / "kdh_ai" / "data" / "ljspeech" / "manifest.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [row for row in csv.DictReader(fh) if row.get("reference")]
    for row in rows:
        row["path"] = str(path.parent / row["path"])
    return rows


def _ljspeech_texts() -> list[str]:
    return [row["reference"] for row in _ljspeech_rows()]


def _load_16k(path: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "x.wav"
        r = _run(["sox", path, "-b", "16", "-c", "1", str(out), "rate", str(SR)])
        if r.returncode != 0:
            raise RuntimeError(f"sox failed on {path}: {r.stderr.strip()}")
        return _read_wav(out)


def _cache_key(voices: list[Voice], minutes: float, long_files: int, seed: int) -> str:
    spec = {"version": VERSION, "voices": [v.label for v in voices], "minutes": minutes, "long": long_files,
            "seed": seed, "sentences": hashlib.sha256("\n".join(SENTENCES).encode()).hexdigest()[:12]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _write_manifest(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def make_speech(out: Path = DEFAULT_OUT, *, minutes: float = 22.0, long_files: int = 4, seed: int = 0,
                voices: list[Voice] | None = None) -> Path:
    """Generate (or reuse) the benchmark's synthetic speech; return its folder (``short/`` and ``long/``).

    Args:
        out: Cache root.
        minutes: Minutes of short clips to make (references included).
        long_files: Number of long files (each about 2-3 minutes, one voice).
        seed: Random seed (voices, tempos, noise).
        voices: Voices to use (default: every installed candidate voice).

    Raises:
        RuntimeError: No voice is installed, or sox is missing.
    """
    voices = available_voices() if voices is None else voices
    if not voices:
        raise RuntimeError("no flite/festival voice is installed; run: apt-get install -y flite festival "
                           "festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox")
    if shutil.which("sox") is None:
        raise RuntimeError("sox is not installed; run: apt-get install -y sox")
    root = out / _cache_key(voices, minutes, long_files, seed)
    if (root / "short" / "manifest.csv").exists() and (root / "long" / "manifest.csv").exists():
        logger.info("synthetic speech cached in %s", root)
        make_mixed_long(root, voices, seed=seed)
        return root
    logger.info("generating synthetic speech in %s with voices %s", root, [v.label for v in voices])
    rng = np.random.default_rng(seed)
    texts = SENTENCES + _ljspeech_texts()
    (root / "short").mkdir(parents=True, exist_ok=True)
    (root / "long").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    total = 0.0
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        order = rng.permutation(len(texts))
        k = 0
        while total < minutes * 60:
            text = texts[int(order[k % len(order)])]
            k += 1
            if rng.random() < 0.15:  # some longer items (two sentences, 8-15 s)
                text = f"{text} {texts[int(rng.integers(len(texts)))]}"
            voice = voices[int(rng.integers(len(voices)))]
            tempo = float(rng.uniform(0.8, 1.25))
            kind, snr, tel = _condition(rng)
            speech = _render(voice, text, tempo, tel, tmp)
            if speech is None:
                logger.warning("%s could not read %r; skipped", voice.label, text)
                continue
            pad = (int(rng.uniform(0.1, 0.8) * SR), int(rng.uniform(0.1, 0.8) * SR))
            audio = _add_noise(speech, pad, kind, snr, rng)
            item_id = f"syn{k:04d}"
            _write_wav(root / "short" / f"{item_id}.wav", audio)
            dur = len(audio) / SR
            total += dur
            cond = "telephone" if tel else ("clean" if kind == "clean" else f"{kind}{snr:.0f}dB")
            rows.append({"item_id": item_id, "path": f"{item_id}.wav", "reference": text, "kind": "speech",
                         "voice": voice.label, "tempo": round(tempo, 3), "condition": cond,
                         "duration_s": round(dur, 3)})
        # No-speech clips: silence, white/pink noise, a click train (must come back as no_speech).
        for i, kind in enumerate(("silence", "white", "pink", "white", "pink", "clicks")):
            n = int(rng.uniform(2.0, 8.0) * SR)
            if kind == "silence":
                audio = np.zeros(n, np.float32)
            elif kind == "clicks":
                audio = np.zeros(n, np.float32)
                audio[:: SR // 3] = 0.5
            else:
                audio = _noise(kind, n, rng) * 0.05
            item_id = f"nospeech{i}"
            _write_wav(root / "short" / f"{item_id}.wav", audio)
            rows.append({"item_id": item_id, "path": f"{item_id}.wav", "reference": "", "kind": "nospeech",
                         "voice": "", "tempo": 1.0, "condition": kind, "duration_s": round(n / SR, 3)})
        _write_manifest(root / "short" / "manifest.csv", rows)

        long_rows: list[dict[str, object]] = []
        for f in range(long_files):
            voice = voices[f % len(voices)]
            kind, snr = ("clean", float("inf")) if f % 2 == 0 else ("pink", 20.0)
            tempo = float(rng.uniform(0.9, 1.1))
            parts, refs = [], []
            length = 0.0
            target = float(rng.uniform(120, 180))
            while length < target:
                text = texts[int(rng.integers(len(texts)))]
                speech = _render(voice, text, tempo, False, tmp)
                if speech is None:
                    continue
                parts += [speech, np.zeros(int(rng.uniform(0.3, 1.2) * SR), np.float32)]
                refs.append(text)
                length += (len(speech) + len(parts[-1])) / SR
            audio = _add_noise(np.concatenate(parts), (int(0.5 * SR), int(0.5 * SR)), kind, snr, rng)
            item_id = f"long{f}"
            _write_wav(root / "long" / f"{item_id}.wav", audio)
            cond = "clean" if kind == "clean" else f"{kind}{snr:.0f}dB"
            long_rows.append({"item_id": item_id, "path": f"{item_id}.wav", "reference": " ".join(refs),
                              "kind": "speech", "voice": voice.label, "tempo": round(tempo, 3),
                              "condition": cond, "duration_s": round(len(audio) / SR, 3)})
        lj = _ljspeech_rows()
        if lj:  # real speech: the bundled LJ Speech clips end to end, 0.5 s apart
            gap = np.zeros(SR // 2, np.float32)
            audio = np.concatenate([x for r in lj for x in (_load_16k(r["path"]), gap)])
            _write_wav(root / "long" / "long_ljspeech.wav", audio)
            long_rows.append({"item_id": "long_ljspeech", "path": "long_ljspeech.wav",
                              "reference": " ".join(r["reference"] for r in lj), "kind": "speech",
                              "voice": "ljspeech", "tempo": 1.0, "condition": "real",
                              "duration_s": round(len(audio) / SR, 3)})
        _write_manifest(root / "long" / "manifest.csv", long_rows)
    make_mixed_long(root, voices, seed=seed)
    (root / "spec.json").write_text(json.dumps({"voices": [asdict(v) for v in voices], "minutes": minutes,
                                                "long_files": long_files, "seed": seed}, indent=1))
    return root


def make_mixed_long(root: Path, voices: list[Voice], *, seed: int = 0, minutes: float = 5.0) -> None:
    """Add ``long_mixed``, a recording like those that lost speech in issue 11, to ``root/long`` (once).

    About five minutes of the bundled real LJ Speech clips alternating with stretches of synthetic speech
    in noise (white or pink, 5-20 dB SNR, the noise covering the stretch and its pauses), joined with
    pauses of 0.6-2 s, with its exact reference.
    """
    manifest = root / "long" / "manifest.csv"
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if any(r["item_id"] == "long_mixed" for r in rows) or not voices:
        return
    rng = np.random.default_rng(seed + 1011)
    lj = _ljspeech_rows()
    texts = SENTENCES + _ljspeech_texts()
    parts: list[np.ndarray] = []
    refs: list[str] = []
    length, i = 0.0, 0
    with tempfile.TemporaryDirectory() as td:
        while length < minutes * 60:
            if lj and i % 2 == 0:
                r = lj[(i // 2) % len(lj)]
                speech, ref = _load_16k(r["path"]), r["reference"]
                pause = np.zeros(int(rng.uniform(0.6, 2.0) * SR), np.float32)
                stretch = np.concatenate([speech, pause])
            else:
                voice = voices[int(rng.integers(len(voices)))]
                ref = texts[int(rng.integers(len(texts)))]
                rendered = _render(voice, ref, float(rng.uniform(0.9, 1.15)), False, Path(td))
                if rendered is None:
                    i += 1
                    continue
                speech = rendered
                kind = "white" if rng.random() < 0.5 else "pink"
                snr = float(rng.choice([20.0, 10.0, 5.0]))
                stretch = _add_noise(speech, (0, int(rng.uniform(0.6, 2.0) * SR)), kind, snr, rng)
            parts.append(stretch.astype(np.float32))
            refs.append(ref)
            length += len(stretch) / SR
            i += 1
    audio = np.concatenate(parts)
    _write_wav(root / "long" / "long_mixed.wav", audio)
    rows.append({"item_id": "long_mixed", "path": "long_mixed.wav", "reference": " ".join(refs),
                 "kind": "speech", "voice": "ljspeech+synthetic", "tempo": 1.0, "condition": "mixed-noisy",
                 "duration_s": round(len(audio) / SR, 3)})
    _write_manifest(manifest, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache root")
    ap.add_argument("--minutes", type=float, default=22.0, help="minutes of short clips")
    ap.add_argument("--long-files", type=int, default=4, help="number of long files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = make_speech(args.out, minutes=args.minutes, long_files=args.long_files, seed=args.seed)
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
