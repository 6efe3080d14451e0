"""`make demo`: the main job on bundled sample data.

Runs the flow on the 12 bundled LJ Speech clips (public domain) into ``demo_out/``. Each capability joins the
demo when it lands. Run with ``python -m pipelines.demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from kdh_ai.samples import ljspeech_manifest

console = Console()


def _kdh(*args: str) -> int:
    cmd = [sys.executable, "-m", "kdh_ai.cli", *args]
    console.print(f"[bold cyan]$ kdh {' '.join(args)}[/]")
    return subprocess.call(cmd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="where the demo writes (default: demo_out)")
    args = parser.parse_args()
    job = args.out / "transcription-job"
    console.rule("1. Pre-label: Whisper tiny.en, offline, on the bundled sample audio")
    rc = _kdh("prelabel", "transcribe", "--input", str(ljspeech_manifest()), "--out", str(job))
    if rc not in (0, 1):
        return rc
    console.rule("Done")
    console.print(f"Job directory: [bold]{job.resolve()}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
