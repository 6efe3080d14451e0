"""`make demo`: the whole loop on bundled sample data, with a real Label Studio server.

pre-label -> route (calibration slice) -> Label Studio -> pull -> route (threshold) -> Label Studio -> pull ->
audit check -> quality -> deliver -> client report -> trainee feedback; the transcription batch holds one long
recording (2.5 minutes), which is cut into work segments, routed segment by segment (a segment for people is a
Label Studio task of its own, with context; in a batch this small every unit is in the calibration slice, see
``benchmarks/long_recordings.py --end-to-end`` for an hour where only the uncertain segments go to people) and
delivered with SRT and WebVTT subtitles; then the same job flow for text
classification (zero-shot pre-labels -> Label Studio -> pull -> retrained head -> next round chosen by
uncertainty -> route to a target accuracy -> audit check -> quality -> report); it ends with one trainee's
progress page across both jobs (``kdh trainee``) and a failed qualification.

Qualification is enforced at pull (:mod:`kdh_ai.qualify`): the demo keeps its own hub folder
(``DIR/hub``, so its simulated trainees never enter a real hub's ledger), and its simulated annotators take
``kdh qualify`` tests before their work counts: they pass (a script knows the answers), a third simulated
trainee answers wrongly and fails.

The audio is real (12 LJ Speech clips, public domain, and a long recording made of them joined with natural
pauses: :func:`kdh_ai.samples.long_recording`), so are the 60 SMS texts (SMS Spam Collection, CC BY
4.0, see ``tests/data/text/sms_spam``), the models, the server and every kdh step.
The **annotators are simulated**: two accounts named ``simulated.*@kdh.demo`` take tasks from Label Studio's
label stream through its API and submit the reference transcript with a few deliberate mistakes, and a
plausible working time. Their work is labelled SIMULATED everywhere the demo prints it.

At the end the server keeps running so that a person can open it, log in and annotate: the URL and the logins
are printed. Stop it with ``.venv/bin/kdh labelstudio stop --data-dir demo_out/labelstudio``.

Run with ``python -m pipelines.demo [--out DIR]``; each run starts from scratch in DIR.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from kdh_ai.records import unit_key
from kdh_ai.samples import LongRecording, ljspeech_dir, long_recording, sms_spam_dir

console = Console()
SMS = sms_spam_dir()
GOLD_ITEMS = ("LJ001-0011", "LJ001-0012")
SIMULATED = ("simulated.amina@kdh.demo", "simulated.brian@kdh.demo")
FAILING = "simulated.chen@kdh.demo"  # takes a qualification test and fails it
DEMO_PASSWORD = "kakuma-demo-2026"
LONG_ID = "interview-demo"  # the batch's long recording


def _kdh(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> int:
    console.print(f"[bold cyan]$ kdh {' '.join(args)}[/]")
    rc = subprocess.call([sys.executable, "-m", "kdh_ai.cli", *args], env=env)
    if rc not in ok:
        raise SystemExit(f"`kdh {args[0]}` failed with exit code {rc}")
    return rc


def _free_port(preferred: int = 8080) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _simulated_answer(reference: str, rng: np.random.Generator, error_rate: float) -> str:
    """A simulated annotator's transcript: the reference with a few dropped or misspelt words."""
    words = reference.split()
    out = []
    for w in words:
        r = rng.random()
        if r < error_rate / 2:
            continue
        out.append(w[:-1] if r < error_rate and len(w) > 3 else w)
    return " ".join(out)


def _simulated_label(reference: str, rng: np.random.Generator, error_rate: float) -> str:
    """A simulated annotator's label: the right one, or now and then the other one."""
    return reference if rng.random() >= error_rate else ("spam" if reference == "ham" else "ham")


def _simulate_annotators(project_id: int, references: dict[str, str], durations: dict[str, float],
                         clients: list[tuple[str, object]], seed: int, *, text: bool = False,
                         error_rates: dict[str, float] | None = None) -> int:
    """SIMULATED annotators: each takes every task Label Studio's label stream serves them and submits it.

    ``error_rates`` gives each annotator's rate of deliberate mistakes by e-mail (default: 3% for Amina, 8% for
    the others)."""
    from kdh_ai.labelstudio.client import LabelStudioError, LabelStudioUnavailable
    from kdh_ai.tasks.classification import ClassificationTask
    from kdh_ai.tasks.transcription import TranscriptionTask

    task_type = ClassificationTask(["ham", "spam"]) if text else TranscriptionTask()
    answer_of = _simulated_label if text else _simulated_answer
    rng = np.random.default_rng(seed)
    done = 0
    for email, client in clients:
        error_rate = (error_rates or {}).get(email, 0.03 if "amina" in email else 0.08)
        while True:
            try:
                task = client.get_json(f"api/projects/{project_id}/next/", what="next task")  # type: ignore[attr-defined]
            except LabelStudioUnavailable:
                # a busy server judged unavailable: wait until it answers again, then go on (not "nothing left")
                if not any(client.health() or time.sleep(5) for _ in range(24)):  # type: ignore[attr-defined]
                    raise
                continue
            except LabelStudioError:
                break  # nothing left for this annotator
            data = task.get("data") or {}
            if not data.get("item_id"):
                break
            # a unit: a clip, or one work segment of a long recording (data.segment)
            item_id = unit_key(str(data["item_id"]), None if data.get("segment") is None else int(data["segment"]))
            if item_id not in references:
                break
            prelabeled = bool(task.get("predictions"))
            seconds = durations.get(item_id, 5.0) * (2.5 if prelabeled else 5.0) * float(rng.lognormal(0, 0.25))
            answer = answer_of(references[item_id], rng, error_rate)
            client.request("POST", f"api/tasks/{task['id']}/annotations/", what="annotate",  # type: ignore[attr-defined]
                           json_body={"result": task_type.answer_to_result(answer), "lead_time": round(seconds, 1)})
            done += 1
    return done


def _qualify_simulated(email: str, client: object, task: str, *, env: dict[str, str], size: int, seed: int,
                       wrong: bool = False) -> None:
    """`kdh qualify` for a SIMULATED trainee: start a test, answer it through the API (right, since a script
    knows the answers, or all wrong), then score it into the demo hub's trainee ledger."""
    from kdh_ai.qualify import TraineeLedger
    from kdh_ai.tasks import get_task

    _kdh("qualify", email, "--task", task, "--size", str(size), "--seed", str(seed), env=env)
    test = TraineeLedger(Path(env["KDH_HUB_DIR"]) / "trainees.jsonl").latest_test(email, task)
    if test is None or test.project_id is None:
        raise SystemExit(f"`kdh qualify {email}` recorded no {task} test in {env['KDH_HUB_DIR']}")
    task_type = get_task(task)
    for t in client.iter_tasks(test.project_id, fields="all"):  # type: ignore[attr-defined]
        known = test.items[t["data"]["kdh_item_id"]]
        answer = (("ham" if known == "spam" else "spam") if task == "classification" else "no idea") if wrong \
            else known
        client.request("POST", f"api/tasks/{t['id']}/annotations/",  # type: ignore[attr-defined]
                       what="answer a test item", json_body={"result": task_type.answer_to_result(answer), "lead_time": 20.0})
    console.print(f"[yellow]SIMULATED trainee {email} answered the {task} test "
                  f"({'deliberately wrong' if wrong else 'with the known answers'}).[/]")
    _kdh("qualify", email, "--task", task, "--score", env=env, ok=(1,) if wrong else (0,))


def _check_audit(job: Path, project_id: int, references: dict[str, str], durations: dict[str, float],
                 clients: list[tuple[str, object]], *, env: dict[str, str], seed: int, text: bool = False) -> None:
    """`kdh route --check-audit`: the answered audit items against the promise; items it re-routes to people
    are pushed and answered (by the SIMULATED annotators) so that the report is final, not a draft."""
    from kdh_ai.job import Job
    from kdh_ai.routing import current_roles

    if not any(r == "audit" for r in current_roles(Job(job)).values()):
        console.print("No audit items were drawn in this small batch: there is no audit to check.")
        return
    _kdh("route", str(job), "--check-audit", env=env, ok=(0, 1))
    audit = ((Job(job).read_manifest().get("routing") or {}).get("details") or {}).get("audit") or {}
    if audit.get("rerouted"):
        _kdh("push", str(job), "--no-progress", env=env)
        n = _simulate_annotators(project_id, references, durations, clients, seed=seed, text=text)
        console.print(f"[yellow]SIMULATED annotators answered {n} items the audit re-routed.[/]")
        _kdh("pull", str(job), env=env)


def _demo_batch(out: Path) -> tuple[Path, LongRecording]:
    """The demo's transcription batch: the 12 bundled LJ Speech clips and one long recording made of them
    (2.5 minutes with natural pauses, its exact reference known), with their manifest."""
    batch = out / "batch"
    shutil.copytree(ljspeech_dir(), batch)
    rec = long_recording(batch / "wavs" / f"{LONG_ID}.wav", minutes=2.5, seed=4)
    with open(batch / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows.append({**{k: "" for k in rows[0]}, "item_id": LONG_ID, "path": f"wavs/{LONG_ID}.wav",
                 "reference": rec.reference, "duration_s": f"{rec.duration_s:.3f}", "speaker": "LJ"})
    with open(batch / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return batch / "manifest.csv", rec


def _segment_references(job: Path, rec: LongRecording, references: dict[str, str]) -> None:
    """The long recording's work segments, shown; each segment's reference (what a SIMULATED annotator types)."""
    from kdh_ai.job import Job

    segments = Job(job).current_predictions()[LONG_ID].work_segments()
    if not segments:
        raise SystemExit(f"{LONG_ID} ({rec.duration_s:.0f} s) came back without work segments")
    for seg, text in zip(segments, rec.segment_references(segments)):
        references[unit_key(LONG_ID, seg.index)] = text
    console.print(f"{LONG_ID}: {rec.duration_s / 60:.1f} min cut into {len(segments)} work segments, each with its "
                  "own text, word times and confidence:")
    for seg in segments:
        console.print(f"  #{seg.index:<2} {seg.start:6.1f}-{seg.end:6.1f} s  confidence {seg.confidence:.2f}  "
                      f"{seg.text[:70]}")


def _show_segment_roles(job: Path) -> None:
    """Where routing sent each segment of the long recording (its units), in one line."""
    from collections import Counter

    from kdh_ai.job import Job

    roles = Counter(str(r.role.value) for key, r in Job(job).roles().items() if key.startswith(f"{LONG_ID}#"))
    console.print(f"{LONG_ID}'s segments by role: {dict(sorted(roles.items()))}. This batch has about 20 units, so all "
                  "of them are in the calibration slice (kdh route draws at least 30); in a larger batch only the "
                  "uncertain segments go to people (benchmarks/README.md, 'Long recordings').")


def _show_subtitles(delivery: Path, rec: LongRecording) -> None:
    """The long recording's subtitles, as delivered."""
    srt, vtt = (next(delivery.rglob(f"{LONG_ID}.{ext}"), None) for ext in ("srt", "vtt"))
    if srt is None or vtt is None:
        raise SystemExit(f"kdh deliver wrote no SRT/VTT subtitles for the long recording {LONG_ID}")
    cues = srt.read_text(encoding="utf-8").strip().split("\n\n")
    console.print(f"Subtitles of {LONG_ID} ({rec.duration_s / 60:.1f} min): {len(cues)} cues in {srt} and {vtt}; "
                  "the first three:")
    console.print("\n\n".join(cues[:3]), markup=False, highlight=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="where the demo writes (default: demo_out)")
    args = parser.parse_args()
    out = args.out.resolve()
    ls_dir = out / "labelstudio"
    hub_dir = out / "hub"  # the demo's own trainee ledger (qualification), never a real hub's
    env = {**os.environ, "KDH_LS_DATA_DIR": str(ls_dir), "KDH_HUB_DIR": str(hub_dir),
           "COLUMNS": os.environ.get("COLUMNS", "110")}
    env.pop("KDH_LS_URL", None)
    env.pop("KDH_LS_TOKEN", None)
    env.pop("KDH_QUALIFICATION", None)
    os.environ.update({"KDH_LS_DATA_DIR": str(ls_dir), "KDH_HUB_DIR": str(hub_dir)})
    os.environ.pop("KDH_QUALIFICATION", None)
    os.environ.pop("KDH_LS_URL", None)
    os.environ.pop("KDH_LS_TOKEN", None)

    from kdh_ai.job import Job
    from kdh_ai.labelstudio.client import Connection, LabelStudioClient
    from kdh_ai.labelstudio.push import read_ls_state
    from kdh_ai.labelstudio.accounts import add_annotator, login_token
    from kdh_ai.labelstudio.server import ServerOptions, local_connection, start_server, stop_server

    if ls_dir.exists():
        stop_server(ls_dir)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    job = out / "transcription-job"

    console.rule("1. Pre-label: Whisper tiny.en, offline, on 12 real LJ Speech clips and one 2.5-minute recording")
    manifest, rec = _demo_batch(out)
    _kdh("prelabel", "transcribe", "--input", str(manifest), "--out", str(job), env=env)

    references: dict[str, str] = {}
    with open(manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            references[row["item_id"]] = row["reference"]
    _segment_references(job, rec, references)
    gold_csv = out / "gold.csv"
    with open(gold_csv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "answer"])
        for k in GOLD_ITEMS:
            w.writerow([k, references[k]])

    console.rule("2. Route, step 1: a random calibration slice for people, plus gold items, planned for the target")
    _kdh("route", str(job), "--calibration", "0.2", "--gold", str(gold_csv), "--target-wer", "0.10", env=env)

    console.rule("3. Label Studio: a real server on 127.0.0.1, annotators, push with pre-annotations")
    port = _free_port()
    info = start_server(ServerOptions(data_dir=ls_dir, port=port, start_timeout_s=600.0))
    conn = local_connection(ls_dir)
    console.print(f"Label Studio at {info.url} (started in {info.startup_s:.0f} s)")
    clients = []
    for email in SIMULATED:
        add_annotator(conn, email, password=DEMO_PASSWORD, last_name=email.split("@")[0], simulated=True)
        token = login_token(conn.url, email, DEMO_PASSWORD)
        clients.append((email, LabelStudioClient(Connection(url=conn.url, token=token))))
    console.print(f"[yellow]Annotators {', '.join(SIMULATED)} are SIMULATED by this script.[/]")
    console.print("Qualification before paid work: pull keeps apart the answers of annotators not qualified for "
                  "the task type, so each simulated annotator first takes a short test (real clips, known answers).")
    for i, (email, client) in enumerate(clients):
        _qualify_simulated(email, client, "transcription", env=env, size=2, seed=10 + i)
    _kdh("push", str(job), "--project", "Demo: LJ Speech transcription", "--overlap", "0.3", "--no-progress",
         env=env)
    project_id = int(read_ls_state(Job(job))["project_id"])

    durations = {k: float(u.payload.get("duration_s") or 5.0) for k, u in Job(job).units().items()}
    n = _simulate_annotators(project_id, references, durations, clients, seed=1)
    console.print(f"[yellow]SIMULATED annotators submitted {n} annotations through the Label Studio API.[/]")
    _kdh("pull", str(job), env=env)

    console.rule("4. Route, step 2: the threshold from the calibration slice, for a target WER of 10%")
    _kdh("route", str(job), "--target-wer", "0.10", env=env, ok=(0, 1))
    _kdh("push", str(job), "--no-progress", env=env)
    n = _simulate_annotators(project_id, references, durations, clients, seed=2)
    console.print(f"[yellow]SIMULATED annotators submitted {n} more annotations.[/]")
    _kdh("pull", str(job), env=env)
    _check_audit(job, project_id, references, durations, clients, env=env, seed=5)
    _show_segment_roles(job)
    _kdh("status", str(job), "--no-pull", env=env)

    console.rule("5. Quality, delivery, client report, trainee feedback")
    _kdh("quality", str(job), env=env)
    _kdh("deliver", str(job), "--out", str(out / "delivery"), env=env)
    _show_subtitles(out / "delivery", rec)
    _kdh("report", str(job), "--out", str(out / "report" / "report.html"), "--client", "Demo client", env=env)
    _kdh("feedback", str(job), "--annotator", SIMULATED[1], "--out", str(out / "feedback.html"), env=env, ok=(0, 2))

    console.rule("6. Text classification, same job flow: 60 SMS, spam or not")
    texts = out / "sms.csv"
    sms_truth: dict[str, str] = {}
    with open(SMS / "texts.csv", newline="", encoding="utf-8") as fh, \
            open(texts, "w", newline="", encoding="utf-8") as dst:
        w = csv.writer(dst)
        w.writerow(["item_id", "text"])  # the client sends no labels
        for row in list(csv.DictReader(fh))[:60]:
            sms_truth[row["item_id"]] = row["reference"]
            w.writerow([row["item_id"], row["text"]])
    sms_gold = out / "sms_gold.csv"
    with open(sms_gold, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "answer"])
        for k in sorted(sms_truth)[:10]:
            w.writerow([k, sms_truth[k]])
    cjob = out / "classification-job"
    labels = str(SMS / "labels.yaml")
    _kdh("prelabel", "classify", "--input", str(texts), "--labels", labels, "--out", str(cjob), "--no-progress",
         env=env)
    _kdh("route", str(cjob), "--calibration", "24", "--gold", str(sms_gold), "--target-accuracy", "0.80", env=env)
    _kdh("push", str(cjob), "--project", "Demo: SMS spam (text)", "--overlap", "0.3", "--no-progress", env=env)
    for i, (email, client) in enumerate(clients):
        _qualify_simulated(email, client, "classification", env=env, size=10, seed=20 + i)
    cproject = int(read_ls_state(Job(cjob))["project_id"])
    n = _simulate_annotators(cproject, sms_truth, {}, clients, seed=3, text=True)
    console.print(f"[yellow]SIMULATED annotators submitted {n} labels through the Label Studio API.[/]")
    _kdh("pull", str(cjob), env=env)
    console.print("Same command again: the head is retrained on the people's labels (zero-shot before).")
    _kdh("prelabel", "classify", "--input", str(texts), "--labels", labels, "--out", str(cjob), "--no-progress",
         env=env)
    console.print("Active learning: which items would people label next? (--dry-run: look, do not record)")
    _kdh("select", str(cjob), "--n", "8", "--dry-run", "--show", "8", env=env)
    _kdh("route", str(cjob), "--target-accuracy", "0.80", env=env, ok=(0, 1))
    _kdh("push", str(cjob), "--no-progress", env=env)
    n = _simulate_annotators(cproject, sms_truth, {}, clients, seed=4, text=True)
    console.print(f"[yellow]SIMULATED annotators submitted {n} more labels.[/]")
    _kdh("pull", str(cjob), env=env)
    _check_audit(cjob, cproject, sms_truth, {}, clients, env=env, seed=6, text=True)
    _kdh("quality", str(cjob), env=env)
    _kdh("report", str(cjob), "--out", str(out / "report" / "sms-report.html"), "--client", "Demo client", env=env)

    console.rule("7. Training: one trainee's progress across both jobs, and a qualification that fails")
    _kdh("trainee", SIMULATED[1], "--job", str(job), "--job", str(cjob), "--out",
         str(out / "trainee" / "simulated.brian.html"), env=env)
    add_annotator(conn, FAILING, password=DEMO_PASSWORD, last_name=FAILING.split("@")[0], simulated=True)
    failing = LabelStudioClient(Connection(url=conn.url, token=login_token(conn.url, FAILING, DEMO_PASSWORD)))
    _qualify_simulated(FAILING, failing, "classification", env=env, size=10, seed=30, wrong=True)
    console.print(f"[yellow]{FAILING} is SIMULATED; not qualified, so `kdh pull` would keep their answers apart "
                  "from delivery (`kdh status` names them and how to qualify them).[/]")

    console.rule("Try it yourself")
    console.print(f"Label Studio is running: open [bold]{info.url}[/] in a browser.")
    console.print(f"  log in as {SIMULATED[0]} / {DEMO_PASSWORD} (a demo account) and press 'Label All Tasks';")
    console.print(f"  the admin password is in {info.secrets_path}.")
    console.print(f"Client report: [bold]{out / 'report' / 'report.html'}[/]; delivered data: {out / 'delivery'}; "
                  f"job directory: {job}")
    console.print(f"Text classification: job {cjob}, report {out / 'report' / 'sms-report.html'}")
    console.print(f"Trainee progress page (SIMULATED trainee): {out / 'trainee' / 'simulated.brian.html'}; "
                  f"trainee ledger: {hub_dir / 'trainees.jsonl'}")
    console.print(f"Stop the server: .venv/bin/kdh labelstudio stop --data-dir {ls_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
