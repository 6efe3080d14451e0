"""Nothing leaves the machine: ``kdh prelabel transcribe`` and ``kdh prelabel classify`` run in a network
namespace made for the test (no route out: ``unshare --net``), under a trace of every ``connect``/``send*``
system call of every thread and child; not one may aim at a non-loopback address. The run also must not create
onnxruntime's telemetry store (``~/.cache/Microsoft/DeveloperTools/.onnxruntime``) in a fresh home directory.

Before the fix (kdh_ai.offline), onnxruntime's 1DS telemetry (loaded by faster-whisper's Silero VAD) wrote that
store and looked up ``mobile.events.data.microsoft.com`` about 5 s after the VAD model loaded: both checks
failed on the transcription run. Needs root (for the namespace; CI runs as root) and strace
(``make system-deps`` installs it).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO / "kdh_ai" / "data" / "ljspeech" / "manifest.csv"
SMS = REPO / "tests" / "data" / "text" / "sms_spam"
_TRACED = "connect,sendto,sendmsg,sendmmsg"
_ADDR = re.compile(r'sa_family=(AF_INET6?),[^}]*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


def _tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("a network namespace and a syscall trace of the whole process tree need root (CI runs as root)")
    for tool in ("unshare", "strace"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make system-deps` installs it (apt-get install strace util-linux)")


def _namespace() -> list[str]:
    """``unshare --net --`` where this machine allows a new network namespace; else nothing (a container
    without CAP_SYS_ADMIN): the syscall trace alone still sees every attempt."""
    ok = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True).returncode == 0
    return ["unshare", "--net", "--"] if ok else []


def outbound_attempts(trace: str) -> list[str]:
    """The traced system calls that aim at an IPv4/IPv6 address outside loopback (DNS included).

    Example:
        >>> outbound_attempts('12 connect(3, {sa_family=AF_INET, sin_port=htons(53), '
        ...                   'sin_addr=inet_addr("10.0.0.53")}, 16) = -1 ENETUNREACH')[0][:10]
        '12 connect'
        >>> outbound_attempts('12 connect(3, {sa_family=AF_INET, sin_port=htons(8080), '
        ...                   'sin_addr=inet_addr("127.0.0.1")}, 16) = 0')
        []
    """
    out = []
    for line in trace.splitlines():
        for m in _ADDR.finditer(line):
            addr = m.group(2) or m.group(3) or ""
            if not (addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")):
                out.append(line)
                break
    return out


def run_offline(cmd: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str, Path]:
    """Run ``cmd`` with no network, traced; returns the result, the trace and the fresh home directory used."""
    home = tmp_path / "home"
    home.mkdir()
    trace = tmp_path / "trace.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORT_", "XDG_CACHE"))}
    env.update(HOME=str(home), COLUMNS="200")
    full = [*_namespace(), "strace", "-f", "-qq", "--seccomp-bpf", "-e", f"trace={_TRACED}",
            "-o", str(trace), *cmd]
    res = subprocess.run(full, env=env, capture_output=True, text=True, timeout=900)
    return res, trace.read_text(encoding="utf-8", errors="replace"), home


def assert_nothing_left(res: subprocess.CompletedProcess[str], trace: str, home: Path) -> None:
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    leaks = outbound_attempts(trace)
    assert not leaks, "outbound connection attempts:\n" + "\n".join(leaks[:10])
    store = home / ".cache" / "Microsoft"
    assert not store.exists(), f"onnxruntime telemetry store created: {sorted(p.name for p in store.rglob('*'))}"


def test_trace_sees_an_outbound_attempt(tmp_path: Path) -> None:
    """The harness itself can fail: a DNS lookup in the namespace is caught."""
    _tools()
    res, trace, _ = run_offline([sys.executable, "-c", "import socket\ntry:\n socket.getaddrinfo("
                                 "'mobile.events.data.microsoft.com', 443)\nexcept OSError:\n pass"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert outbound_attempts(trace), trace[-2000:]


def test_transcription_makes_no_outbound_connection(tmp_path: Path) -> None:
    _tools()
    res, trace, home = run_offline([sys.executable, "-m", "kdh_ai.cli", "prelabel", "transcribe", "-i",
                                    str(CLIPS), "-o", str(tmp_path / "job"), "--no-progress"], tmp_path)
    assert_nothing_left(res, trace, home)
    assert (tmp_path / "job" / "predictions.jsonl").read_text().count("\n") == 12


def test_classification_makes_no_outbound_connection(tmp_path: Path) -> None:
    _tools()
    with open(SMS / "texts.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:30]
    manifest = tmp_path / "texts.csv"
    with open(manifest, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    labels = tmp_path / "labels.csv"
    labels.write_text("item_id,label\n" + "".join(f"{r['item_id']},{r['reference']}\n" for r in rows[:20]),
                      encoding="utf-8")
    res, trace, home = run_offline([sys.executable, "-m", "kdh_ai.cli", "prelabel", "classify", "-i", str(manifest),
                                    "-l", str(SMS / "labels.yaml"), "-o", str(tmp_path / "job"),
                                    "--train-labels", str(labels), "--no-progress"], tmp_path)
    assert_nothing_left(res, trace, home)
    assert (tmp_path / "job" / "predictions.jsonl").read_text().count("\n") == 30
